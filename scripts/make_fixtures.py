#!/usr/bin/env python3
"""Reference outputs from PyTorch / transformers for primer's parity tests (llm.c style).

Run by hand from the repository root:

    python3 scripts/make_fixtures.py               # writes crates/primer/tests/fixtures/
    python3 scripts/make_fixtures.py --only bert   # one section (gpt2 | bert | heads | beams | stops | fill | tasks)

Everything is fp32 on the CPU, seeded, with deterministic algorithms, so a rerun with
the same torch / transformers versions gives the same tensors. One section per model
family (GPT-2, BERT); a T5 section is to be added next to them.

Each fixture directory holds the model as `save_pretrained` writes it (config.json,
model.safetensors, and generation_config.json for GPT-2) plus `reference.safetensors`.
Parameters are named as in model.safetensors; a tied parameter appears once, under its
saved name, with the gradient summed over all its uses.

GPT-2 (gpt2_tiny, gpt2_tiny_untied, gpt2_tiny_unscaled):

    input_ids  int64 [B, T]          random ids from the vocabulary
    targets    int64 [B, T]          input_ids shifted left by one in each row, last
                                     position and 3 more random positions = -100
    logits     f32   [B, T, V]       model(input_ids).logits, eval mode
    loss       f32   [1]             cross entropy, mean over non-ignored targets
    grad.<p>   f32   shape of p      d loss / d p, for every saved parameter p
    losses     f32   [10]            loss at each AdamW step, before its update
    step10.<p> f32   shape of p      parameters after 10 AdamW steps on the same batch

BERT (bert_tiny, BertForPreTraining, biases and LayerNorm gains perturbed after init):

    input_ids               int64 [B, T]     [CLS]=2 A [SEP]=3 B [SEP]=3 then [PAD]=0;
                                             word ids in [5, V); real lengths 16, 11, 7
    token_type_ids          int64 [B, T]     0 up to the first [SEP], 1 for B and its
                                             [SEP], 0 on padding
    attention_mask          int64 [B, T]     1 on real tokens, 0 on padding
    mlm_labels              int64 [B, T]     -100 except ~15% (at least 2) word positions
                                             per row, which hold random ids in [5, V)
    nsp_labels              int64 [B]        0 or 1
    prediction_logits       f32   [B, T, V]  MLM head, eval mode (padding positions too)
    seq_relationship_logits f32   [B, 2]     NSP head
    hidden                  f32   [B, T, H]  model.bert(...).last_hidden_state
    pooled                  f32   [B, H]     model.bert(...).pooler_output
    mlm_loss                f32   [1]        cross entropy, mean over labelled positions
    nsp_loss                f32   [1]        cross entropy, mean over the batch
    loss                    f32   [1]        mlm_loss + nsp_loss (HF's total loss)
    grad.<p>, losses, step10.<p>             as for GPT-2, of `loss`

AdamW everywhere: lr 1e-3, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on tensors
with dim >= 2 (all matrices and embeddings, BERT's position and token-type tables
included), none on biases and LayerNorm parameters.
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


def adamw_trajectory(model, loss_fn, first_grads):
    """Run ADAM_STEPS AdamW steps of loss_fn(); return the losses and the final parameters.

    The first step's gradients must equal first_grads (the reference gradients), so
    the trajectory starts from exactly the state the gradients were taken in.
    """
    opt = torch.optim.AdamW(adamw_groups(model), **ADAM)
    losses = []
    for step in range(ADAM_STEPS):
        opt.zero_grad(set_to_none=True)
        step_loss = loss_fn()
        step_loss.backward()
        if step == 0:
            for n, p in model.named_parameters():
                assert torch.equal(p.grad, first_grads[n]), f"first-step gradient of {n} differs"
        losses.append(step_loss.item())
        opt.step()
    assert losses[-1] < losses[0], "10 AdamW steps on one batch should lower the loss"
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    return torch.tensor(losses, dtype=torch.float32), params


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

    out["losses"], params = adamw_trajectory(
        model, lambda: lm_loss(model(input_ids).logits, targets), grads
    )
    assert out["losses"][0].item() == out["loss"].item()
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


def fixture_metadata(model, seed, **extra):
    """safetensors metadata for reference.safetensors.

    One key holding sorted JSON: safetensors writes several keys in a random order,
    which would make reruns differ byte-wise.
    """
    info = {
        "model": model,
        "seed": seed,
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "adamw": {**ADAM, "weight_decay": WEIGHT_DECAY, "decay_rule": "dim>=2"},
        **extra,
    }
    return {"fixture": json.dumps(info, sort_keys=True)}


# ---------------------------------------------------------------------------
# GPT-2
# ---------------------------------------------------------------------------

GPT2_FIXTURES = {
    "gpt2_tiny": dict(tie_word_embeddings=True, activation_function="gelu", seed=1234),
    "gpt2_tiny_untied": dict(tie_word_embeddings=False, activation_function="gelu_new", seed=4321),
    # scale_attn_weights=False: attention scores QK^T without the 1/sqrt(head_dim)
    "gpt2_tiny_unscaled": dict(tie_word_embeddings=True, activation_function="gelu_new", seed=2468,
                               scale_attn_weights=False),
}


def gpt2_config(tie, activation, scale_attn_weights=True):
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
        scale_attn_weights=scale_attn_weights,
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
        config = gpt2_config(spec["tie_word_embeddings"], spec["activation_function"],
                             spec.get("scale_attn_weights", True))
        # Eager attention is the textbook softmax(QK^T/sqrt(d))V that primer implements.
        config._attn_implementation = "eager"
        torch.manual_seed(spec["seed"])
        model = GPT2LMHeadModel(config).float()
        model.save_pretrained(out_dir, safe_serialization=True)

        input_ids, targets = make_batch(config.vocab_size, spec["seed"] + 1)
        base, grads, params = reference_tensors(model, input_ids, targets)
        meta = fixture_metadata("gpt2", spec["seed"])
        mapping = write_reference(out_dir, model, base, grads, params, meta)

        # Loading the saved directory must reproduce the logits (save/load surprises).
        loaded = GPT2LMHeadModel.from_pretrained(out_dir, attn_implementation="eager").float().eval()
        with torch.no_grad():
            relogits = loaded(input_ids).logits
        diff = (relogits - base["logits"]).abs().max().item()
        assert diff <= 1e-6, f"{name}: from_pretrained logits differ by {diff}"
        report[name] = {"mapping": mapping, "reload_max_abs_diff": diff}
    return report


# ---------------------------------------------------------------------------
# BERT
# ---------------------------------------------------------------------------

BERT_SEED = 5678
BERT_PAD, BERT_CLS, BERT_SEP = 0, 2, 3
BERT_FIRST_WORD = 5  # ids 0..4 are special ([PAD], [UNK], [CLS], [SEP], [MASK])
BERT_LENGTHS = (16, 11, 7)  # real tokens per row; the rest of each row is [PAD]
MLM_FRACTION = 0.15
MLM_MIN_PER_ROW = 2
BIAS_NOISE = 0.1  # std of the noise added to every bias and LayerNorm shift
GAIN_NOISE = 0.2  # std of the noise added to every LayerNorm gain (around 1)


def bert_config():
    from transformers import BertConfig

    return BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        type_vocab_size=2,
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        layer_norm_eps=1e-12,
        # 10x HF's 0.02: at 0.02 attention is nearly uniform and the [CLS] state (hence
        # the pooler and NSP logits) hardly depends on the input.
        initializer_range=0.2,
        pad_token_id=BERT_PAD,
        tie_word_embeddings=True,
    )


def perturb_biases_and_norms(model, seed):
    """Make biases and LayerNorm gains non-trivial (HF initialises them to 0 and 1).

    With the default init a test that forgets a bias, or swaps a LayerNorm's gain and
    shift, would still pass; after this it cannot.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith(".bias"):
                p.add_(BIAS_NOISE * torch.randn(p.shape, generator=g))
            elif n.endswith("LayerNorm.weight"):
                p.add_(GAIN_NOISE * torch.randn(p.shape, generator=g))


def make_bert_batch(vocab, seed):
    """Sentence pairs [CLS] A [SEP] B [SEP] [PAD]..., MLM labels and NSP labels."""
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.full((BATCH, SEQ), BERT_PAD, dtype=torch.int64)
    token_type_ids = torch.zeros((BATCH, SEQ), dtype=torch.int64)
    attention_mask = torch.zeros((BATCH, SEQ), dtype=torch.int64)
    mlm_labels = torch.full((BATCH, SEQ), IGNORE_INDEX, dtype=torch.int64)
    for row, length in enumerate(BERT_LENGTHS):
        words = length - 3  # minus [CLS] and two [SEP]
        len_a = int(torch.randint(1, words, (1,), generator=g))  # both segments non-empty
        sep_a = 1 + len_a
        input_ids[row, :length] = torch.randint(BERT_FIRST_WORD, vocab, (length,), generator=g)
        input_ids[row, 0] = BERT_CLS
        input_ids[row, sep_a] = BERT_SEP
        input_ids[row, length - 1] = BERT_SEP
        token_type_ids[row, sep_a + 1 : length] = 1
        attention_mask[row, :length] = 1
        # Label about 15% of the word positions (never [CLS], [SEP] or padding).
        positions = torch.tensor([i for i in range(1, length - 1) if i != sep_a])
        n = max(MLM_MIN_PER_ROW, round(MLM_FRACTION * positions.numel()))
        picked = positions[torch.randperm(positions.numel(), generator=g)[:n]]
        mlm_labels[row, picked] = torch.randint(BERT_FIRST_WORD, vocab, (n,), generator=g)
    nsp_labels = torch.randint(0, 2, (BATCH,), generator=g, dtype=torch.int64)
    return {
        "input_ids": input_ids,
        "token_type_ids": token_type_ids,
        "attention_mask": attention_mask,
        "mlm_labels": mlm_labels,
        "nsp_labels": nsp_labels,
    }


def bert_losses(out, batch):
    v = out.prediction_logits.shape[-1]
    mlm = F.cross_entropy(
        out.prediction_logits.reshape(-1, v), batch["mlm_labels"].reshape(-1), ignore_index=IGNORE_INDEX
    )
    nsp = F.cross_entropy(out.seq_relationship_logits, batch["nsp_labels"])
    return mlm, nsp


def bert_reference_tensors(model, batch):
    """Heads, encoder outputs, losses, gradients and the AdamW trajectory (in-memory names)."""
    model.eval()
    inputs = {k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask")}

    def forward():
        return model(**inputs, labels=batch["mlm_labels"], next_sentence_label=batch["nsp_labels"])

    out = forward()
    mlm, nsp = bert_losses(out, batch)
    # HF's total loss is the plain sum of the two means.
    assert torch.equal(out.loss, mlm + nsp), (out.loss, mlm, nsp)
    model.zero_grad(set_to_none=True)
    out.loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}

    with torch.no_grad():
        enc = model.bert(**inputs)
        heads = model.cls(enc.last_hidden_state, enc.pooler_output)
    assert torch.equal(heads[0], out.prediction_logits) and torch.equal(heads[1], out.seq_relationship_logits)

    ref = dict(batch)
    ref.update(
        prediction_logits=out.prediction_logits.detach().clone(),
        seq_relationship_logits=out.seq_relationship_logits.detach().clone(),
        loss=out.loss.detach().reshape(1).clone(),
        mlm_loss=mlm.detach().reshape(1).clone(),
        nsp_loss=nsp.detach().reshape(1).clone(),
        hidden=enc.last_hidden_state.clone(),
        pooled=enc.pooler_output.clone(),
    )
    ref["losses"], params = adamw_trajectory(model, lambda: forward().loss, grads)
    assert ref["losses"][0].item() == ref["loss"].item()
    return ref, grads, params


def bert_fixtures(root):
    from transformers import BertForPreTraining

    name = "bert_tiny"
    out_dir = os.path.join(root, name)
    os.makedirs(out_dir, exist_ok=True)
    config = bert_config()
    config._attn_implementation = "eager"
    torch.manual_seed(BERT_SEED)
    model = BertForPreTraining(config).float()
    perturb_biases_and_norms(model, BERT_SEED + 2)
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    model.save_pretrained(out_dir, safe_serialization=True)

    batch = make_bert_batch(config.vocab_size, BERT_SEED + 1)
    base, grads, params = bert_reference_tensors(model, batch)
    meta = fixture_metadata(
        "bert",
        BERT_SEED,
        bias_noise=BIAS_NOISE,
        gain_noise=GAIN_NOISE,
        special_ids={"pad": BERT_PAD, "cls": BERT_CLS, "sep": BERT_SEP},
    )
    mapping = write_reference(out_dir, model, base, grads, params, meta)

    loaded = BertForPreTraining.from_pretrained(out_dir, attn_implementation="eager").float().eval()
    with torch.no_grad():
        relogits = loaded(**{k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask")})
    diff = max(
        (relogits.prediction_logits - base["prediction_logits"]).abs().max().item(),
        (relogits.seq_relationship_logits - base["seq_relationship_logits"]).abs().max().item(),
    )
    assert diff <= 1e-6, f"{name}: from_pretrained logits differ by {diff}"
    return {name: {"mapping": mapping, "reload_max_abs_diff": diff}}


# ---------------------------------------------------------------------------
# Output heads stored apart from the embeddings (forward only)
# ---------------------------------------------------------------------------


def add_tensors(path, extra):
    """Rewrites the safetensors file `path` with the tensors `extra` added (or replaced)."""
    with safe_open(path, framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata()
    tensors.update({k: v.contiguous() for k, v in extra.items()})
    save_file(tensors, path, metadata=meta)


def head_fixtures(root):
    """Checkpoints whose output layer is not simply the input embeddings, as transformers reads them.

    bert_untied_head  BertForMaskedLM with tie_word_embeddings false: an untied head computes its
                      logits with cls.predictions.decoder.bias; cls.predictions.bias is unused (zero
                      here, as training leaves it).
    bert_stray_head   tied config, but the file also holds a decoder weight and bias that differ
                      from the word embeddings and cls.predictions.bias: transformers uses them.
    gpt2_stray_head   tied GPT-2 config whose file also holds an lm_head.weight differing from wte.

    reference.safetensors: the inputs (input_ids, and for BERT token_type_ids, attention_mask) and
    the logits of the directory loaded with from_pretrained (`prediction_logits` or `logits`).
    """
    from transformers import BertForMaskedLM, GPT2LMHeadModel

    report = {}
    g = torch.Generator().manual_seed(HEAD_SEED)
    batch = make_bert_batch(bert_config().vocab_size, HEAD_SEED + 1)
    inputs = {k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
    for name, tie in (("bert_untied_head", False), ("bert_stray_head", True)):
        out_dir = os.path.join(root, name)
        os.makedirs(out_dir, exist_ok=True)
        config = bert_config()
        config.tie_word_embeddings = tie
        torch.manual_seed(HEAD_SEED)
        model = BertForMaskedLM(config).float()
        perturb_biases_and_norms(model, HEAD_SEED + 2)
        with torch.no_grad():
            model.cls.predictions.bias.zero_()
        if not tie:
            with torch.no_grad():
                model.cls.predictions.decoder.bias.copy_(BIAS_NOISE * torch.randn(config.vocab_size, generator=g))
        model.save_pretrained(out_dir, safe_serialization=True)
        if tie:
            emb = model.bert.embeddings.word_embeddings.weight.detach()
            add_tensors(os.path.join(out_dir, "model.safetensors"), {
                "cls.predictions.decoder.weight": emb + 0.5 * torch.randn(emb.shape, generator=g),
                "cls.predictions.decoder.bias": BIAS_NOISE * torch.randn(config.vocab_size, generator=g),
            })
        loaded = BertForMaskedLM.from_pretrained(out_dir, attn_implementation="eager").float().eval()
        assert loaded.cls.predictions.decoder.weight is not loaded.bert.embeddings.word_embeddings.weight
        with torch.no_grad():
            logits = loaded(**inputs).logits
        save_file(dict(inputs, prediction_logits=logits.contiguous()),
                  os.path.join(out_dir, "reference.safetensors"))
        report[name] = None

    name = "gpt2_stray_head"
    out_dir = os.path.join(root, name)
    os.makedirs(out_dir, exist_ok=True)
    config = gpt2_config(True, "gelu")
    torch.manual_seed(HEAD_SEED)
    model = GPT2LMHeadModel(config).float()
    model.save_pretrained(out_dir, safe_serialization=True)
    wte = model.transformer.wte.weight.detach()
    add_tensors(os.path.join(out_dir, "model.safetensors"),
                {"lm_head.weight": wte + 0.5 * torch.randn(wte.shape, generator=g)})
    loaded = GPT2LMHeadModel.from_pretrained(out_dir, attn_implementation="eager").float().eval()
    assert loaded.lm_head.weight is not loaded.transformer.wte.weight
    input_ids, _ = make_batch(config.vocab_size, HEAD_SEED + 1)
    with torch.no_grad():
        logits = loaded(input_ids).logits
    save_file({"input_ids": input_ids, "logits": logits.contiguous()}, os.path.join(out_dir, "reference.safetensors"))
    report[name] = None
    return report


HEAD_SEED = 4321


# ---------------------------------------------------------------------------
# Beam search and greedy decoding (transformers' generate on gpt2_tiny_untied and gpt2_stray_head)
# ---------------------------------------------------------------------------

BEAM_FILE = "beam_search.json"
BEAM_MODELS = ("gpt2_tiny_untied", "gpt2_stray_head")  # varied texts; flat and peaked distributions
BEAM_PROMPTS = ([5, 17, 33], [40], [7, 7, 60, 2, 81, 15])


def beam_generate(model, prompt, case):
    """transformers' beam search, or greedy decoding for one beam: its texts, best first (all num_beams of
    them), each (generated ids, with the end token if one finished it; the beam score, None for greedy)."""
    ids = torch.tensor([prompt])
    eos = case["eos_token_id"]
    out = model.generate(
        ids, attention_mask=torch.ones_like(ids), do_sample=False,
        num_beams=case["num_beams"], length_penalty=case["length_penalty"],
        early_stopping=case["early_stopping"], max_new_tokens=case["max_new_tokens"],
        repetition_penalty=case["repetition_penalty"], no_repeat_ngram_size=case["no_repeat_ngram_size"],
        min_new_tokens=case["min_new_tokens"], eos_token_id=eos, pad_token_id=eos[0],
        bad_words_ids=case.get("bad_words_ids"),
        num_return_sequences=case["num_beams"], return_dict_in_generate=True, output_scores=True)
    texts = []
    for k in range(out.sequences.shape[0]):
        generated = out.sequences[k, len(prompt):].tolist()
        ends = [i for i, t in enumerate(generated) if t in eos]
        if ends:  # anything after the first end token is padding
            generated = generated[:ends[0] + 1]
        texts.append((generated, out.sequences_scores[k].item() if case["num_beams"] > 1 else None))
    return texts


def record(case, texts):
    """Stores the best text in case["tokens"] and case["score"], and all of them in case["texts"] (pruned by
    beam_fixtures to those that do not hang on a near tie)."""
    case["tokens"], case["score"] = texts[0]
    case["texts"] = [{"tokens": t, "score": s} for t, s in texts]


def beam_cases(model, differing):
    """Settings that exercise the search's rules: ends taken mid-way (one and two end tokens), each early_stopping
    value, length penalties above, below and at 0, a repetition penalty, no repeated 2-grams, a minimum length,
    greedy decoding (one beam) with the penalty and the bans, one- to six-token prompts. The end
    tokens are tokens the unconstrained search picks, so that beams do end early. Adds to the set `differing`
    each pair of early_stopping values that gives two texts here."""
    base = dict(num_beams=3, length_penalty=1.0, early_stopping=False, max_new_tokens=10,
                repetition_penalty=1.0, no_repeat_ngram_size=0, min_new_tokens=0, eos_token_id=[96])
    free, _ = beam_generate(model, BEAM_PROMPTS[0], base)[0]
    one_end = [free[2]]
    two_ends = [free[1], next(t for t in free[4:] if t != free[1])]
    specs = [
        dict(),
        dict(eos_token_id=one_end, num_beams=4),
        dict(eos_token_id=one_end, num_beams=4, early_stopping=True),
        dict(eos_token_id=one_end, num_beams=4, early_stopping="never", length_penalty=2.0),
        dict(eos_token_id=one_end, early_stopping="never", length_penalty=0.0),
        dict(eos_token_id=one_end, length_penalty=-1.0),
        dict(eos_token_id=two_ends, num_beams=2, max_new_tokens=12),
        dict(eos_token_id=one_end, repetition_penalty=1.5, num_beams=5),
        dict(eos_token_id=one_end, no_repeat_ngram_size=2),
        dict(eos_token_id=one_end, min_new_tokens=6, num_beams=4),
        dict(num_beams=1, eos_token_id=one_end, no_repeat_ngram_size=2, min_new_tokens=3, max_new_tokens=14),
        dict(num_beams=1, repetition_penalty=1.5),
    ]
    cases = []
    for prompt in BEAM_PROMPTS:
        for spec in specs:
            case = dict(base, **spec, prompt=prompt)
            record(case, beam_generate(model, prompt, case))
            cases.append(case)
    cases += bad_word_cases(model, base, one_end)
    # pairs whose texts differ by early_stopping alone, so that each value is seen to matter: the first end
    # token, beam count and length penalty that make them differ, after each prompt that has one
    for values, penalties in [((True, False), (1.0, 2.0)), (("never", False), (2.0, 1.0, 0.5))]:
        found = 0
        for prompt in BEAM_PROMPTS:
            pair = first_difference(model, dict(base, prompt=prompt), values, penalties)
            if pair:
                cases.extend(pair)
                found += 1
        if found:
            differing.add(values)
    return cases


def bad_word_cases(model, base, one_end):
    """Bans (bad_words_ids) cut from the text greedy decoding writes after each prompt without them: its first
    token; a two-token sequence whose first token is the prompt's last, with a later pair; with three beams, a
    later token and pair; and, with an end token, a ban of that token alone, which transformers drops (so the
    texts end as without it), beside one of a pair."""
    cases = []
    for prompt in BEAM_PROMPTS:
        greedy = dict(base, num_beams=1, max_new_tokens=12)
        g, _ = beam_generate(model, prompt, greedy)[0]
        for start, bans in [
            (greedy, dict(bad_words_ids=[[g[0]]])),
            (greedy, dict(bad_words_ids=[[prompt[-1], g[0]], [g[2], g[3]]])),
            (base, dict(bad_words_ids=[[g[1]], [g[3], g[4]]])),
            (base, dict(eos_token_id=one_end, bad_words_ids=[one_end, [g[2], g[3]]])),
        ]:
            case = dict(start, **bans, prompt=prompt)
            record(case, beam_generate(model, prompt, case))
            cases.append(case)
    return cases


def first_difference(model, base, values, penalties):
    """Two cases, one per early_stopping value in `values`, whose texts differ (None when none do)."""
    for num_beams in (2, 3, 4):
        for length_penalty in penalties:
            for end in range(model.config.vocab_size):
                pair = [dict(base, num_beams=num_beams, length_penalty=length_penalty, eos_token_id=[end],
                             early_stopping=v) for v in values]
                for case in pair:
                    record(case, beam_generate(model, case["prompt"], case))
                if pair[0]["tokens"] != pair[1]["tokens"]:
                    return pair
    return None


def model_and_nudged(out_dir):
    """The GPT-2 saved in out_dir, twice: as saved, and with every weight nudged by 1e-5 of its size (primer's
    logits differ from PyTorch's by about that much)."""
    from transformers import GPT2LMHeadModel
    load = lambda: GPT2LMHeadModel.from_pretrained(out_dir, attn_implementation="eager").float().eval()
    model, nudged = load(), load()
    g = torch.Generator().manual_seed(99)
    with torch.no_grad():
        for p in nudged.parameters():
            p.mul_(1 + 1e-5 * torch.randn(p.shape, generator=g))
    return model, nudged


def prune_near_ties(name, cases, generate_nudged):
    """Checks that each case's best text is the nudged model's too (no case hangs on a near tie) and keeps its
    runners-up (case["texts"]) up to the first that a near tie could reorder. generate_nudged(case) gives the
    nudged model's texts."""
    for case in cases:
        again = [t for t, _ in generate_nudged(case)]
        assert again[0] == case["tokens"], f"{name}: a near tie decides {case}: {again[0]}"
        same = next((k for k, (a, b) in enumerate(zip(again, case["texts"])) if a != b["tokens"]), len(again))
        case["texts"] = case["texts"][:same]


def write_cases(path, cases):
    import transformers
    doc = {"transformers": transformers.__version__, "torch": torch.__version__, "cases": cases}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def beam_fixtures(root):
    """<model>/beam_search.json for each of BEAM_MODELS: cases of transformers' beam search on the committed
    weights, each checked to give the same texts when every weight is nudged (see model_and_nudged), so that no
    case hangs on a near tie."""
    differing = set()
    for name in BEAM_MODELS:
        out_dir = os.path.join(root, name)
        model, nudged = model_and_nudged(out_dir)
        cases = beam_cases(model, differing)
        prune_near_ties(name, cases, lambda case: beam_generate(nudged, case["prompt"], case))
        write_cases(os.path.join(out_dir, BEAM_FILE), cases)
        ended = sum(c["tokens"][-1] in c["eos_token_id"] and len(c["tokens"]) < c["max_new_tokens"]
                    for c in cases)
        print(f"{name}/{BEAM_FILE}: {len(cases)} cases, {ended} ended early")
    for values in [(True, False), ("never", False)]:
        if values not in differing:
            sys.exit(f"no case makes early_stopping {values} differ: its test would not see it matter")
    return {}


STOP_FILE = "stop_strings.json"
STOP_TOKENIZER = "stop_tokenizer.json"
# 96 token texts for the 97 ids of the tiny GPT-2 fixtures (the last id is <|endoftext|>): single characters,
# then pieces of two to four, so that a stop string can begin or end inside a token
STOP_VOCAB = (list("etaoinshrdlucmfwypvbgkqjxz") + list("ETAOIN") + list(" .,!?'\n")
              + "th he in er an re on at en nd ti es or te of ed is it al ar st to nt ng se ha as ou io le ve co me "
                "de hi ri ro ic ne ea ra ce li ch ll be ma si om ur".split()
              + ["the", "ing", "and", "ion", " the", " a", "e "])


def stop_tokenizer(path):
    """Writes a tokenizer with STOP_VOCAB's token texts and <|endoftext|> (id 96): one token per character when
    it encodes, concatenation when it decodes, so that every id decodes to its own text."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    assert len(STOP_VOCAB) == 96 and len(set(STOP_VOCAB)) == 96
    vocab = {t: i for i, t in enumerate(STOP_VOCAB)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    tok.add_special_tokens(["<|endoftext|>"])
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.save(path)


def stop_generate(model, tok, prompt, case):
    """transformers' generate with stop_strings: the texts, best first, each (generated ids, beam score or None
    for greedy decoding). A text ends with the token that completes a stop string, or an end token."""
    ids = torch.tensor([prompt])
    beams = case["num_beams"]
    out = model.generate(
        ids, attention_mask=torch.ones_like(ids), do_sample=False, num_beams=beams,
        max_new_tokens=case["max_new_tokens"], eos_token_id=[96], pad_token_id=96,
        stop_strings=case["stop_strings"] or None, tokenizer=tok, num_return_sequences=beams,
        return_dict_in_generate=True, output_scores=True)
    texts = []
    for k in range(out.sequences.shape[0]):
        generated = out.sequences[k, len(prompt):].tolist()
        if beams > 1:
            # a finished beam is followed by padding; its indices tell how many tokens it has
            generated = generated[:int((out.beam_indices[k] >= 0).sum())]
        texts.append((generated, out.sequences_scores[k].item() if beams > 1 else None))
    return texts


def stop_cases(model, tok):
    """Greedy decoding and 3-beam search after each prompt, stopped by strings cut from the text greedy
    decoding writes without them: three characters from the middle of one token into the next (a stop string
    overhung by tokens at both ends), one whole token, two strings at once, the prompt's last two characters
    (seen before the new tokens: no stop until they come again), and one that never comes."""
    cases = []
    for prompt in BEAM_PROMPTS:
        free = dict(num_beams=1, max_new_tokens=12, stop_strings=[])
        tokens, _ = stop_generate(model, tok, prompt, free)[0]
        pieces = [tok.decode([t]) for t in tokens]
        start = sum(len(p) for p in pieces[:4])
        text = "".join(pieces)
        mid = text[start + 1:start + 4] if len(pieces[4]) > 1 else text[start:start + 3]
        whole = next(p for p in pieces[6:] if p.strip())
        late = text[sum(len(p) for p in pieces[:9]):][:2]
        prompt_end = "".join(tok.decode([t]) for t in prompt)[-2:]
        for stops in ([mid], [whole], [late, mid], [prompt_end], ["zzqq"]):
            for beams in (1, 3):
                case = dict(num_beams=beams, max_new_tokens=12, stop_strings=stops, prompt=prompt)
                record(case, stop_generate(model, tok, prompt, case))
                cases.append(case)
    return cases


def stop_fixtures(root):
    """STOP_TOKENIZER beside the fixtures and <model>/stop_strings.json for each of BEAM_MODELS: cases of
    transformers' stop_strings with greedy decoding and beam search, checked against nudged weights as the beam
    cases are."""
    from transformers import PreTrainedTokenizerFast

    tok_path = os.path.join(root, STOP_TOKENIZER)
    stop_tokenizer(tok_path)
    tok = PreTrainedTokenizerFast(tokenizer_file=tok_path, eos_token="<|endoftext|>")
    for name in BEAM_MODELS:
        out_dir = os.path.join(root, name)
        model, nudged = model_and_nudged(out_dir)
        cases = stop_cases(model, tok)
        prune_near_ties(name, cases, lambda case: stop_generate(nudged, tok, case["prompt"], case))
        write_cases(os.path.join(out_dir, STOP_FILE), cases)
        stopped = sum(len(c["tokens"]) < c["max_new_tokens"] for c in cases)
        print(f"{name}/{STOP_FILE}: {len(cases)} cases, {stopped} stopped early")
    return {}


FILL_TOKENIZER = "fill_mask_tokenizer.json"
FILL_FILE = "fill_mask.json"
# bert_tiny's 99 ids: the five specials, then words and word pieces
FILL_VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
              + "the a an cat dog bird fish man woman child city house tree river sun rain day night book song "
                "sat ran saw ate sang read went was is are were has had not never always very big small old new "
                "red green happy sad on in under over to from with and but or of at by it she he they we you "
                "i this that there here what who why how paris rome london mat children tea milk school".split()
              + ["##s", "##ed", "##ing", "##ly", "##er", "##est", "##y", "##n", ".", ",", "?", "!", "'"])
FILL_TEXTS = [
    "the cat sat on the [MASK].",
    "[MASK] dog ran under a big tree.",
    "she read a [MASK] book and he sang a [MASK] song.",
    "they went to paris, rome and [MASK] with the children.",
    "[MASK]",
    "why is the sun [MASK] red at night? it was a very old and happy day in the small city by the green river.",
    "the birds sang [MASK] [MASK] in the rain.",
]
# (text index, top_k, targets): targets include a repeat, a word the tokenizer must lowercase, and a piece
FILL_CASES = ([(i, 5, None) for i in range(len(FILL_TEXTS))]
              + [(0, 3, None), (2, 1, None), (0, 5, ["mat", "house", "tree", "house"]),
                 (3, 5, ["London", "rome", "##s"]), (6, 2, ["happy", "sad", "very"])])


def fill_tokenizer(path):
    """Writes a lowercasing WordPiece tokenizer with FILL_VOCAB as its vocabulary (BERT's normalizer,
    pre-tokenizer, post-processor and decoder)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    assert len(FILL_VOCAB) == 99 and len(set(FILL_VOCAB)) == 99
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(FILL_VOCAB)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.add_special_tokens(FILL_VOCAB[:5])
    tok.save(path)


def fill_fixtures(root):
    """FILL_TOKENIZER beside the fixtures and bert_tiny/fill_mask.json: transformers' fill-mask pipeline on
    bert_tiny's weights (as BertForMaskedLM) for each of FILL_CASES. Each result lists, per [MASK], the
    candidates' ids, tokens and probabilities; a case whose ranking a near tie (1e-5) could change is refused."""
    from transformers import BertForMaskedLM, PreTrainedTokenizerFast, pipeline

    tok_path = os.path.join(root, FILL_TOKENIZER)
    fill_tokenizer(tok_path)
    tok = PreTrainedTokenizerFast(tokenizer_file=tok_path, unk_token="[UNK]", pad_token="[PAD]",
                                  cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    model = BertForMaskedLM.from_pretrained(os.path.join(root, "bert_tiny")).float().eval()
    fill = pipeline("fill-mask", model=model, tokenizer=tok, device="cpu")
    cases = []
    for text_index, top_k, targets in FILL_CASES:
        text = FILL_TEXTS[text_index]
        kwargs = dict(top_k=top_k) if targets is None else dict(top_k=top_k, targets=targets)
        got = fill(text, **kwargs)
        masks = got if isinstance(got[0], list) else [got]
        out = [[dict(id=c["token"], token=c["token_str"], prob=c["score"]) for c in m] for m in masks]
        for m in out:
            probs = [c["prob"] for c in m]
            gaps = [a - b for a, b in zip(probs, probs[1:])]
            assert min(gaps, default=1) > 1e-5, f"a near tie orders {text!r}: {probs}"
        cases.append(dict(text=text, top_k=top_k, targets=targets, masks=out))
    write_cases(os.path.join(root, "bert_tiny", FILL_FILE), cases)
    print(f"bert_tiny/{FILL_FILE}: {len(cases)} cases, {sum(len(c['masks']) for c in cases)} masks")
    return {}


TASK_SEED = 8642
TASK_FILE = "task_reference.json"
TASK_TEXTS = [
    "the cat sat on the mat.",
    "why is the sun red at night? it was a very old and happy day in the small city by the green river.",
    "she read a book",
    "paris",
]
TASK_WORDS = [
    "she went to paris with the children".split(),
    "the old man sat by the river in london".split(),
    ["rome"],
]
TASK_QUESTIONS = [
    ("who sat on the mat?", "the cat sat on the mat and the dog ran under a big tree."),
    ("what is red?", "why is the sun red at night? it was a very old day."),
]
# the last ends in the padding token (<|endoftext|>), which transformers' classifier reads the text without
GPT_TASK_TEXTS = ["the cat sat on the mat.", "hello there", "a", "stop! what is this, then?", "so long<|endoftext|>",
                  "<|endoftext|><|endoftext|>"]


def task_fixtures(root):
    """Hugging Face task models as transformers saves them (no task.json), for `primer predict` and `eval` on
    models fine-tuned elsewhere:

    bert_classifier  BertForSequenceClassification, labels neg / neu / pos
    bert_tagger      BertForTokenClassification, labels O B-PER I-PER B-LOC I-LOC
    bert_qa          BertForQuestionAnswering
    gpt2_classifier  GPT2ForSequenceClassification, labels no / yes, pad_token_id = <|endoftext|>

    Each has bert_tiny's or gpt2_tiny's shape (biases and LayerNorm gains perturbed), the fill-mask (BERT) or
    stop-string (GPT-2) fixture tokenizer as tokenizer.json, and task_reference.json: per input (a text, the
    words of a sentence, or a question and its context) the ids and token type ids transformers' tokenizer
    gives and the eval-mode logits, one input at a time (`logits`: per class, or per token and class, flat;
    for qa the start logits then the end logits)."""
    from tokenizers import Tokenizer
    from transformers import (BertForQuestionAnswering, BertForSequenceClassification,
                              BertForTokenClassification, GPT2ForSequenceClassification)

    def save(out_dir, model, write_tokenizer):
        os.makedirs(out_dir, exist_ok=True)
        model.save_pretrained(out_dir, safe_serialization=True)
        write_tokenizer(os.path.join(out_dir, "tokenizer.json"))
        return Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json"))

    def bert_model(cls, labels, **extra):
        config = bert_config()
        if labels:
            config.id2label = dict(enumerate(labels))
            config.label2id = {l: i for i, l in enumerate(labels)}
        for k, v in extra.items():
            setattr(config, k, v)
        torch.manual_seed(TASK_SEED)
        model = cls(config).float()
        perturb_biases_and_norms(model, TASK_SEED + 1)
        return model.eval()

    def case(enc, logits, **inputs):
        return dict(inputs, ids=enc.ids, type_ids=enc.type_ids,
                    logits=[float(x) for x in logits.reshape(-1).tolist()])

    def run(model, enc, **kw):
        ids = torch.tensor([enc.ids])
        with torch.no_grad():
            if kw.get("gpt"):
                return model(ids).logits[0]
            out = model(ids, token_type_ids=torch.tensor([enc.type_ids]),
                        attention_mask=torch.ones_like(ids))
        return out

    written = {}
    model = bert_model(BertForSequenceClassification, ["neg", "neu", "pos"], classifier_dropout=None)
    tok = save(os.path.join(root, "bert_classifier"), model, fill_tokenizer)
    cases = []
    for text in TASK_TEXTS:
        enc = tok.encode(text)
        cases.append(case(enc, run(model, enc).logits[0], text=text))
    enc = tok.encode(TASK_TEXTS[0], TASK_TEXTS[2])
    cases.append(case(enc, run(model, enc).logits[0], text=TASK_TEXTS[0], pair=TASK_TEXTS[2]))
    written["bert_classifier"] = cases

    model = bert_model(BertForTokenClassification, ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    tok = save(os.path.join(root, "bert_tagger"), model, fill_tokenizer)
    cases = []
    for words in TASK_WORDS:
        enc = tok.encode(words, is_pretokenized=True)
        cases.append(case(enc, run(model, enc).logits[0], words=words))
    written["bert_tagger"] = cases

    model = bert_model(BertForQuestionAnswering, None)
    tok = save(os.path.join(root, "bert_qa"), model, fill_tokenizer)
    cases = []
    for question, context in TASK_QUESTIONS:
        enc = tok.encode(question, context)
        out = run(model, enc)
        cases.append(case(enc, torch.cat([out.start_logits[0], out.end_logits[0]]), question=question,
                          context=context))
    written["bert_qa"] = cases

    config = gpt2_config(True, "gelu_new")
    config.id2label, config.label2id = {0: "no", 1: "yes"}, {"no": 0, "yes": 1}
    config.pad_token_id = config.eos_token_id
    torch.manual_seed(TASK_SEED)
    model = GPT2ForSequenceClassification(config).float()
    perturb_biases_and_norms(model, TASK_SEED + 1)
    with torch.no_grad():
        model.score.weight.mul_(20)  # GPT-2's 0.02 init leaves class logits of ±0.1: too close for a parity test
    model.eval()
    tok = save(os.path.join(root, "gpt2_classifier"), model, stop_tokenizer)
    cases = []
    for text in GPT_TASK_TEXTS:
        enc = tok.encode(text)
        cases.append(case(enc, run(model, enc, gpt=True), text=text))
    written["gpt2_classifier"] = cases

    for name, cases in written.items():
        with open(os.path.join(root, name, TASK_FILE), "w") as f:
            f.write("[\n" + ",\n".join(json.dumps(c) for c in cases) + "\n]\n")
        print(f"{name}/{TASK_FILE}: {len(cases)} inputs")
    return {}


def dir_size(path):
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


SECTIONS = {"gpt2": gpt2_fixtures, "bert": bert_fixtures, "heads": head_fixtures, "beams": beam_fixtures,
            "stops": stop_fixtures, "fill": fill_fixtures, "tasks": task_fixtures}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="crates/primer/tests/fixtures", help="fixtures root directory")
    ap.add_argument("--only", choices=sorted(SECTIONS), action="append",
                    help="write only this model family's fixtures (repeatable; default: all)")
    args = ap.parse_args()
    setup_torch()
    report = {}
    for section in args.only or SECTIONS:
        report.update(SECTIONS[section](args.out))
    for name, r in report.items():
        size = f"{dir_size(os.path.join(args.out, name)) // 1024} KiB"
        if r is None:
            print(f"{name}: forward logits only, {size}")
            continue
        renamed = {k: v for k, v in r["mapping"].items() if k != v}
        print(f"{name}: {len(r['mapping'])} parameters, renamed on save: {renamed or 'none'}, "
              f"reload diff {r['reload_max_abs_diff']:.1e}, {size}")


if __name__ == "__main__":
    main()
