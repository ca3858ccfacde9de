#!/usr/bin/env python3
"""PyTorch CPU reference for BERT encoder inference latency (MiniLM-L6), for primer's benchmark.

    python3 scripts/torch_bert_infer.py MODEL_DIR [--threads 2] [--warmup 3] [--runs 20] [--attn sdpa|eager]

MODEL_DIR is all-MiniLM-L6-v2 as scripts/fetch_minilm.sh unpacks it. Times one forward of
transformers AutoModel (BertModel: embeddings, 6 layers, pooler; fp32, eval mode, under
torch.inference_mode) at seq 128 for batch 1 and batch 32. Inputs are seeded random word
ids, [CLS] first and [SEP] last, all 128 positions real (no padding). Pooling and
normalisation are not timed. After the warmup runs, prints the median of the timed runs,
one JSON line per batch size:
    {"batch": 1, "seq": 128, "ms": ...}
"""

import argparse
import json
import time

import torch

SEQ = 128
BATCHES = (1, 32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs per batch size (default 3)")
    ap.add_argument("--runs", type=int, default=20, help="timed runs per batch size (default 20)")
    ap.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa",
                    help="attention kernel: sdpa (HF default) or eager")
    args = ap.parse_args()

    from transformers import AutoConfig, AutoModel

    torch.set_num_threads(args.threads)
    config = AutoConfig.from_pretrained(args.model_dir)
    model = AutoModel.from_pretrained(args.model_dir, attn_implementation=args.attn, dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(0)
    cls_id, sep_id = 101, 102  # all-MiniLM-L6-v2 / bert-base-uncased vocabulary
    print(f"model={config.model_type} layers={config.num_hidden_layers} hidden={config.hidden_size} "
          f"torch={torch.__version__} threads={torch.get_num_threads()} attn={args.attn} "
          f"warmup={args.warmup} runs={args.runs}")

    for batch in BATCHES:
        ids = torch.randint(1000, config.vocab_size, (batch, SEQ), generator=g)
        ids[:, 0] = cls_id
        ids[:, -1] = sep_id
        inputs = {
            "input_ids": ids,
            "token_type_ids": torch.zeros_like(ids),
            "attention_mask": torch.ones_like(ids),
        }
        times = []
        with torch.inference_mode():
            for i in range(args.warmup + args.runs):
                t0 = time.perf_counter()
                out = model(**inputs).last_hidden_state
                dt = time.perf_counter() - t0
                assert out.shape == (batch, SEQ, config.hidden_size)
                if i >= args.warmup:
                    times.append(dt)
        times.sort()
        med = times[len(times) // 2]
        print(json.dumps({"batch": batch, "seq": SEQ, "ms": round(med * 1e3, 3)}))


if __name__ == "__main__":
    main()
