#!/usr/bin/env python3
"""PyTorch + transformers reference for primer's fine-tuning speed (`primer bench finetune`).

    python3 scripts/torch_finetune_bench.py MODEL_DIR DATA.tsv [--batch 32] [--max-len 128]
                                            [--steps 30] [--warmup 3] [--threads 2] [--full-rows]

BertForSequenceClassification from MODEL_DIR (a BERT directory with config.json, model.safetensors and
tokenizer.json, e.g. all-MiniLM-L6-v2), fp32, train mode (dropout as its config says). The first
(warmup + steps) * batch rows of DATA (TSV with columns `sentence` and `label`) in file order; consecutive rows
form a batch, tokenized by the model's fast tokenizer with truncation at max-len and padded to the longest row
of the batch. AdamW lr 5e-5, betas (0.9, 0.999), eps 1e-8, weight decay 0.01. One step = forward, loss,
backward, optimizer step; tokenization is not timed. Tokens are the real (unpadded) ones, as primer counts.
With --full-rows, only rows of at least max-len tokens are used, cut to max-len: batches with no padding.
Prints one JSON line: {"tokens_per_s": ..., "median_step_ms": ..., "peak_rss_mib": ...}.
"""

import argparse
import csv
import json
import resource
import statistics
import time

import torch
from transformers import AutoTokenizer, BertForSequenceClassification


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--full-rows", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    n = (a.warmup + a.steps) * a.batch
    with open(a.data, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    tok = AutoTokenizer.from_pretrained(a.model)
    if a.full_rows:
        lens = tok([r["sentence"] for r in rows], truncation=True, max_length=a.max_len)["input_ids"]
        rows = [r for r, ids in zip(rows, lens) if len(ids) == a.max_len]
        if len(rows) < n:
            raise SystemExit(f"{a.data} has {len(rows)} rows of at least {a.max_len} tokens; {n} are needed")
    rows = rows[:n]
    labels = sorted({r["label"] for r in rows})
    model = BertForSequenceClassification.from_pretrained(a.model, num_labels=len(labels))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    times, tokens = [], 0
    for i in range(0, len(rows) - a.batch + 1, a.batch):
        chunk = rows[i : i + a.batch]
        enc = tok([r["sentence"] for r in chunk], truncation=True, max_length=a.max_len,
                  padding="longest", return_tensors="pt")
        y = torch.tensor([labels.index(r["label"]) for r in chunk])
        t0 = time.perf_counter()
        out = model(**enc, labels=y)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        if i // a.batch >= a.warmup:
            times.append(dt)
            tokens += int(enc["attention_mask"].sum())
    print(json.dumps({
        "tokens_per_s": tokens / sum(times),
        "median_step_ms": statistics.median(times) * 1e3,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "steps": len(times),
    }))


if __name__ == "__main__":
    main()
