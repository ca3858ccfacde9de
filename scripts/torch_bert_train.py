#!/usr/bin/env python3
"""PyTorch CPU reference for BERT pretraining speed (MLM + NSP), for primer's BERT benchmark.

    python3 scripts/torch_bert_train.py [--steps 20] [--warmup 3] [--threads 2] [--attn sdpa|eager]

transformers BertForPreTraining, fp32: 4 layers, hidden 256, 4 heads, FFN 1024, vocab 8192,
512 positions, exact GELU, tied MLM decoder, dropout 0 (hidden and attention, so the timing
does not include dropout masks). Batch 16 x 128 tokens of synthetic data, seeded: each row
is [CLS] A [SEP] B [SEP] with random word ids and a random split, no padding; 15% of the
word positions are MLM targets (their input replaced by [MASK]), NSP labels random.
AdamW lr 1e-4, betas (0.9, 0.999), eps 1e-8, weight decay 0.01 on every parameter (like
scripts/torch_gpt_train.py). HF computes the MLM logits at every position (B*T*V).

One step = forward, loss, backward, optimizer step; batch generation is not timed.
Prints an info line, then one JSON line:
    {"tokens_per_s": ..., "ms_per_step": ..., "peak_rss_mib": ..., ...}
ms_per_step is the median over the timed steps; tokens_per_s = batch*seq / median;
peak_rss_mib is ru_maxrss (KiB on Linux) / 1024, as in scripts/torch_gpt_train.py.
"""

import argparse
import json
import resource
import time

import torch

CFG = dict(vocab=8192, hidden=256, layers=4, heads=4, ffn=1024, positions=512, seq=128, batch=16)
PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
FIRST_WORD = 5
MLM_FRACTION = 0.15
IGNORE_INDEX = -100


def make_batch(g, batch, seq, vocab):
    ids = torch.randint(FIRST_WORD, vocab, (batch, seq), generator=g)
    token_type = torch.zeros((batch, seq), dtype=torch.long)
    word = torch.ones((batch, seq), dtype=torch.bool)  # positions that may be MLM targets
    ids[:, 0] = CLS
    ids[:, -1] = SEP
    word[:, 0] = word[:, -1] = False
    splits = torch.randint(2, seq - 2, (batch,), generator=g)
    for row, s in enumerate(splits.tolist()):
        ids[row, s] = SEP
        word[row, s] = False
        token_type[row, s + 1 :] = 1
    picked = (torch.rand((batch, seq), generator=g) < MLM_FRACTION) & word
    labels = torch.where(picked, ids, torch.full_like(ids, IGNORE_INDEX))
    ids = torch.where(picked, torch.full_like(ids, MASK), ids)
    nsp = torch.randint(0, 2, (batch,), generator=g)
    return {
        "input_ids": ids,
        "token_type_ids": token_type,
        "attention_mask": torch.ones_like(ids),
        "labels": labels,
        "next_sentence_label": nsp,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa",
                    help="attention kernel: sdpa (HF default) or eager (softmax(QK^T)V by hand)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from transformers import BertConfig, BertForPreTraining

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    c = CFG
    config = BertConfig(
        vocab_size=c["vocab"],
        hidden_size=c["hidden"],
        num_hidden_layers=c["layers"],
        num_attention_heads=c["heads"],
        intermediate_size=c["ffn"],
        max_position_embeddings=c["positions"],
        type_vocab_size=2,
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=PAD,
        tie_word_embeddings=True,
    )
    model = BertForPreTraining._from_config(config, attn_implementation=args.attn, dtype=torch.float32)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    g = torch.Generator().manual_seed(args.seed + 1)
    B, T = c["batch"], c["seq"]

    times, first, last = [], None, None
    for i in range(args.warmup + args.steps):
        batch = make_batch(g, B, T, c["vocab"])
        t0 = time.perf_counter()
        loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        l = loss.item()
        dt = time.perf_counter() - t0
        first = l if i == 0 else first
        last = l
        if i >= args.warmup:
            times.append(dt)
    times.sort()
    med = times[len(times) // 2]
    nparams = sum(p.numel() for p in model.parameters())
    print(f"params={nparams} torch={torch.__version__} threads={torch.get_num_threads()} attn={args.attn} "
          f"batch={B} seq={T} steps={args.steps} warmup={args.warmup}")
    print(json.dumps({
        "framework": "torch",
        "model": "bert",
        "attn": args.attn,
        "tokens_per_s": round(B * T / med, 1),
        "ms_per_step": round(med * 1e3, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "loss_first": round(first, 4),
        "loss_last": round(last, 4),
    }))


if __name__ == "__main__":
    main()
