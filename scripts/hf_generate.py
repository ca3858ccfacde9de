"""Greedy (or beam search) continuation of a prompt by Hugging Face transformers from a primer checkpoint directory.

Checks by hand that primer's checkpoints load in transformers and compute the same thing:

    python3 scripts/hf_generate.py runs/quickstart/gpt "The weather"
    cargo run --release -- generate --model runs/quickstart/gpt --prompt "The weather" --temperature 0 --max-new-tokens 30

    python3 scripts/hf_generate.py runs/quickstart/gpt "The weather" --num-beams 4
    cargo run --release -- generate --model runs/quickstart/gpt --prompt "The weather" --num-beams 4 --max-new-tokens 30

The two continuations must be identical. Needs `pip install torch transformers`.
"""
import argparse

from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir")
    ap.add_argument("prompt")
    ap.add_argument("--num-beams", type=int, default=1)
    ap.add_argument("--max-new-tokens", type=int, default=30)
    args = ap.parse_args()
    model = GPT2LMHeadModel.from_pretrained(args.model_dir).eval()
    tok = PreTrainedTokenizerFast(tokenizer_file=f"{args.model_dir}/tokenizer.json")
    ids = tok(args.prompt, return_tensors="pt").input_ids
    out = model.generate(ids, attention_mask=ids * 0 + 1, max_new_tokens=args.max_new_tokens, do_sample=False,
                         num_beams=args.num_beams, pad_token_id=0)
    print(args.prompt + tok.decode(out[0][ids.shape[1]:], skip_special_tokens=True))


if __name__ == "__main__":
    main()
