"""Greedy continuation of a prompt by Hugging Face transformers from a primer checkpoint directory.

Checks by hand that primer's checkpoints load in transformers and compute the same thing:

    python3 scripts/hf_generate.py runs/quickstart "The weather"
    cargo run --release -- generate --model runs/quickstart --prompt "The weather" --temperature 0 --max-new-tokens 30

The two continuations must be identical. Needs `pip install torch transformers`.
"""
import sys

from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: hf_generate.py MODEL_DIR PROMPT")
    model_dir, prompt = sys.argv[1], sys.argv[2]
    model = GPT2LMHeadModel.from_pretrained(model_dir).eval()
    tok = PreTrainedTokenizerFast(tokenizer_file=f"{model_dir}/tokenizer.json")
    ids = tok(prompt, return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=30, do_sample=False, pad_token_id=0)
    print(prompt + tok.decode(out[0][ids.shape[1]:]))


if __name__ == "__main__":
    main()
