#!/usr/bin/env python3
"""Reference outputs from PyTorch / transformers for primer's parity tests (llm.c style).

Run by hand from the repository root:

    python3 scripts/make_fixtures.py            # writes crates/primer/tests/fixtures/

Everything is fp32 on the CPU, seeded, with deterministic algorithms, so a rerun with
the same torch / transformers versions gives the same tensors. One section per model
family; BERT and T5 sections are to be added next to `gpt2_fixtures`.

Each fixture directory holds the model as `save_pretrained` writes it (config.json,
generation_config.json, model.safetensors) plus `reference.safetensors`:

    input_ids  int64 [B, T]          random ids from the vocabulary
    targets    int64 [B, T]          input_ids shifted left by one in each row, last
                                     position and 3 more random positions = -100
    logits     f32   [B, T, V]       model(input_ids).logits, eval mode
    loss       f32   [1]             cross entropy, mean over non-ignored targets
    grad.<p>   f32   shape of p      d loss / d p, for every saved parameter p
    losses     f32   [10]            loss at each AdamW step, before its update
    step10.<p> f32   shape of p      parameters after 10 AdamW steps on the same batch
"""

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

IGNORE_INDEX = -100
BATCH, SEQ = 3, 16
EXTRA_IGNORED = 3
ADAM_STEPS = 10
ADAM = dict(lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
WEIGHT_DECAY = 0.1


def setup_torch():
    torch.set_default_dtype(torch.float32)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)


def make_batch(vocab, seed):
    """Random ids and next-token targets with some positions ignored."""
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, vocab, (BATCH, SEQ), generator=g, dtype=torch.int64)
    targets = torch.full_like(input_ids, IGNORE_INDEX)
    targets[:, :-1] = input_ids[:, 1:]
    # Ignore a few more positions, distinct and not already ignored (last column).
    candidates = torch.arange(BATCH * SEQ).view(BATCH, SEQ)[:, :-1].reshape(-1)
    picked = candidates[torch.randperm(candidates.numel(), generator=g)[:EXTRA_IGNORED]]
    targets.view(-1)[picked] = IGNORE_INDEX
    return input_ids, targets


def lm_loss(logits, targets):
    v = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, v), targets.reshape(-1), ignore_index=IGNORE_INDEX)


def saved_names(path):
    with safe_open(path, "pt") as f:
        return set(f.keys())


def name_mapping(model, saved):
    """In-memory parameter name -> name in model.safetensors.

    Identity where the name was saved; otherwise find the saved tensor that shares
    storage with the parameter (a tie). Fails loudly if a parameter is not saved.
    """
    mapping = {}
    by_ptr = {}
    state = model.state_dict()
    for n in saved:
        by_ptr.setdefault(state[n].data_ptr(), n)
    for n, p in model.named_parameters():
        if n in saved:
            mapping[n] = n
        elif p.data_ptr() in by_ptr:
            mapping[n] = by_ptr[p.data_ptr()]
        else:
            sys.exit(f"parameter {n} is neither saved nor tied to a saved tensor")
    return mapping


def adamw_groups(model):
    """nanoGPT's rule: decay matrices and embeddings, not biases or norm gains."""
    params = list(model.named_parameters())  # a tied tensor appears once
    decay = [p for _, p in params if p.dim() >= 2]
    no_decay = [p for _, p in params if p.dim() < 2]
    return [
        {"params": decay, "weight_decay": WEIGHT_DECAY},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def reference_tensors(model, input_ids, targets):
    """Logits, loss, gradients and the 10-step AdamW trajectory, keyed by in-memory name."""
    model.eval()
    out = {"input_ids": input_ids, "targets": targets}

    logits = model(input_ids).logits
    loss = lm_loss(logits, targets)
    model.zero_grad(set_to_none=True)
    loss.backward()
    out["logits"] = logits.detach().clone()
    out["loss"] = loss.detach().reshape(1).clone()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}

    opt = torch.optim.AdamW(adamw_groups(model), **ADAM)
    losses = []
    for step in range(ADAM_STEPS):
        opt.zero_grad(set_to_none=True)
        step_loss = lm_loss(model(input_ids).logits, targets)
        step_loss.backward()
        if step == 0:
            for n, p in model.named_parameters():
                assert torch.equal(p.grad, grads[n]), f"first-step gradient of {n} differs"
        losses.append(step_loss.item())
        opt.step()
    out["losses"] = torch.tensor(losses, dtype=torch.float32)
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert losses[0] == out["loss"].item()
    assert losses[-1] < losses[0], "10 AdamW steps on one batch should lower the loss"
    return out, grads, params


def write_reference(out_dir, model, base, grads, params, meta):
    """Store grads and step-10 params under their saved names; return the name mapping."""
    mapping = name_mapping(model, saved_names(os.path.join(out_dir, "model.safetensors")))
    tensors = dict(base)
    for mem, saved in mapping.items():
        tensors[f"grad.{saved}"] = grads[mem]
        tensors[f"step10.{saved}"] = params[mem]
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    save_file(tensors, os.path.join(out_dir, "reference.safetensors"), metadata=meta)
    return mapping


# ---------------------------------------------------------------------------
# GPT-2
# ---------------------------------------------------------------------------

GPT2_FIXTURES = {
    "gpt2_tiny": dict(tie_word_embeddings=True, activation_function="gelu", seed=1234),
    "gpt2_tiny_untied": dict(tie_word_embeddings=False, activation_function="gelu_new", seed=4321),
}


def gpt2_config(tie, activation):
    from transformers import GPT2Config

    vocab = 97
    return GPT2Config(
        vocab_size=vocab,
        n_positions=32,
        n_embd=48,
        n_layer=2,
        n_head=4,
        activation_function=activation,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,
        tie_word_embeddings=tie,
        # The default 50256 lies outside this vocabulary; keep the config self-consistent.
        bos_token_id=vocab - 1,
        eos_token_id=vocab - 1,
    )


def gpt2_fixtures(root):
    from transformers import GPT2LMHeadModel

    report = {}
    for name, spec in GPT2_FIXTURES.items():
        out_dir = os.path.join(root, name)
        os.makedirs(out_dir, exist_ok=True)
        config = gpt2_config(spec["tie_word_embeddings"], spec["activation_function"])
        # Eager attention is the textbook softmax(QK^T/sqrt(d))V that primer implements.
        config._attn_implementation = "eager"
        torch.manual_seed(spec["seed"])
        model = GPT2LMHeadModel(config).float()
        model.save_pretrained(out_dir, safe_serialization=True)

        input_ids, targets = make_batch(config.vocab_size, spec["seed"] + 1)
        base, grads, params = reference_tensors(model, input_ids, targets)
        # One metadata key holding sorted JSON: safetensors writes several keys in a
        # random order, which would make reruns differ byte-wise.
        meta = {
            "fixture": json.dumps(
                {
                    "model": "gpt2",
                    "seed": spec["seed"],
                    "torch": torch.__version__,
                    "transformers": __import__("transformers").__version__,
                    "adamw": {**ADAM, "weight_decay": WEIGHT_DECAY, "decay_rule": "dim>=2"},
                },
                sort_keys=True,
            )
        }
        mapping = write_reference(out_dir, model, base, grads, params, meta)

        # Loading the saved directory must reproduce the logits (save/load surprises).
        loaded = GPT2LMHeadModel.from_pretrained(out_dir, attn_implementation="eager").float().eval()
        with torch.no_grad():
            relogits = loaded(input_ids).logits
        diff = (relogits - base["logits"]).abs().max().item()
        assert diff <= 1e-6, f"{name}: from_pretrained logits differ by {diff}"
        report[name] = {"mapping": mapping, "reload_max_abs_diff": diff}
    return report


def dir_size(path):
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="crates/primer/tests/fixtures", help="fixtures root directory")
    args = ap.parse_args()
    setup_torch()
    report = gpt2_fixtures(args.out)
    for name, r in report.items():
        renamed = {k: v for k, v in r["mapping"].items() if k != v}
        print(f"{name}: {len(r['mapping'])} parameters, renamed on save: {renamed or 'none'}, "
              f"reload diff {r['reload_max_abs_diff']:.1e}, {dir_size(os.path.join(args.out, name)) // 1024} KiB")


if __name__ == "__main__":
    main()
