#!/usr/bin/env python3
"""Embed a file of texts with primer and with sentence-transformers, 2 threads each, and compare time and vectors.

    python3 scripts/bench_embed.py MODEL_DIR TEXTS_FILE [--rounds 3] [--batch 32]

TEXTS_FILE has one text per line (e.g. SST-2's dev sentences: `tail -n +2 dev.tsv | cut -f1`). primer's time is
the whole `primer embed --input TEXTS_FILE --out …` process (loading the model and tokenizing included);
sentence-transformers' is `encode()` alone, on a model loaded beforehand, so the ratio flatters PyTorch. Both
normalize, both cut texts at 512 tokens. Prints one line per round and the medians:
    round=R primer_s=... torch_s=... time_ratio=...   (primer / torch; lower is better)
    median of N rounds: ... min_cosine=...
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from bench_bert import PRIMER, build_primer


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir")
    ap.add_argument("texts")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32, help="sentence-transformers' batch size (primer's is 32)")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    build_primer()
    import torch
    from safetensors.numpy import load_file
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    model = SentenceTransformer(args.model_dir, device="cpu")
    model.max_seq_length = 512
    with open(args.texts, encoding="utf-8") as f:
        texts = f.read().removesuffix("\n").split("\n")
    texts = [t.removesuffix("\r") for t in texts]
    model.encode(texts[:64], batch_size=args.batch)  # warm-up
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "embeddings.safetensors")
        for r in range(1, args.rounds + 1):
            t = time.perf_counter()
            subprocess.run([PRIMER, "--threads", "2", "embed", "--model", args.model_dir, "--normalize",
                            "--max-length", "512", "--input", args.texts, "--out", out, "--overwrite"],
                           check=True, capture_output=True)
            primer_s = time.perf_counter() - t
            t = time.perf_counter()
            ref = model.encode(texts, batch_size=args.batch, normalize_embeddings=True)
            torch_s = time.perf_counter() - t
            ours = load_file(out)["embeddings"]
            if ours.shape != ref.shape:
                sys.exit(f"primer wrote {ours.shape}, sentence-transformers gives {ref.shape}")
            cos = float((ours * ref).sum(axis=1).min())
            rows.append(dict(primer_s=primer_s, torch_s=torch_s, time_ratio=primer_s / torch_s, min_cosine=cos))
            print(f"round={r} {fmt(rows[-1])}", flush=True)
    med = {k: statistics.median(row[k] for row in rows) for k in rows[0]}
    med["min_cosine"] = min(row["min_cosine"] for row in rows)
    print(f"median of {args.rounds} rounds ({len(texts)} texts): {fmt(med)}")


def fmt(row):
    return " ".join(f"{k}={v:.7f}" if k == "min_cosine" else f"{k}={v:.3f}" for k, v in row.items())


if __name__ == "__main__":
    main()
