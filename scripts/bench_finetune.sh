#!/usr/bin/env bash
# Compare primer's fine-tuning throughput with PyTorch + transformers on the same model, rows and batches.
#
#   scripts/bench_finetune.sh MODEL_DIR DATA.tsv [STEPS [EXTRA…]]   # e.g. target/minilm ../shared/data/sst2/train.tsv
#
# Runs `primer bench finetune` and scripts/torch_finetune_bench.py, both on 2 threads, batch 32, max length 128
# (EXTRA flags go to both, e.g. `--max-len 32 --full-rows` for batches with no padding), and prints:
# primer_tokens_per_s=… torch_tokens_per_s=… speedup=…x primer_rss_mib=… torch_rss_mib=…
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 MODEL_DIR DATA.tsv [STEPS [EXTRA…]]" >&2; exit 2; }
model=$1
data=$2
steps=${3:-30}
shift $(( $# < 3 ? $# : 3 ))
root=$(cd "$(dirname "$0")/.." && pwd)
primer=${CARGO_TARGET_DIR:-$root/target}/release/primer
python3 -c 'import torch, transformers' 2>/dev/null || {
    echo "PyTorch and transformers are needed: pip install torch transformers" >&2
    exit 1
}
if [ ! -x "$primer" ]; then
    (cd "$root" && cargo build --release -p primer-cli) >&2
fi
p=$("$primer" bench finetune --model "$model" --data "$data" --steps "$steps" --threads 2 "$@" | tail -n 1)
t=$(python3 "$root/scripts/torch_finetune_bench.py" "$model" "$data" --steps "$steps" --threads 2 "$@" | tail -n 1)
python3 - "$p" "$t" <<'PY'
import json, sys
p, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("primer_tokens_per_s=%.0f torch_tokens_per_s=%.0f speedup=%.2fx primer_rss_mib=%.0f torch_rss_mib=%.0f" % (
    p["tokens_per_s"], t["tokens_per_s"], p["tokens_per_s"] / t["tokens_per_s"], p["peak_rss_mib"], t["peak_rss_mib"]))
PY
