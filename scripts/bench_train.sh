#!/usr/bin/env bash
# Compare primer's training step with the PyTorch reference on the same GPT preset.
#
#   scripts/bench_train.sh PRESET [STEPS]      # PRESET: small | big, STEPS default 50
#
# Runs `primer bench train` (building it first if the binary is missing) and
# scripts/torch_gpt_train.py, both on 2 threads, then prints one line:
#   preset=… primer_ms=… torch_ms=… speedup=…x primer_rss_mib=… torch_rss_mib=… memory_ratio=…
# speedup = torch_ms / primer_ms, memory_ratio = primer_rss / torch_rss.
set -euo pipefail

usage() {
    echo "usage: $0 PRESET [STEPS]   (PRESET: small | big; STEPS default 50)" >&2
    exit 2
}

[ $# -ge 1 ] && [ $# -le 2 ] || usage
preset=$1
steps=${2:-50}
case $preset in small | big) ;; *) usage ;; esac
case $steps in '' | *[!0-9]*) usage ;; esac

root=$(cd "$(dirname "$0")/.." && pwd)
primer=${CARGO_TARGET_DIR:-$root/target}/release/primer

if ! command -v python3 >/dev/null 2>&1; then
    echo "python3 not found: install Python 3, then torch with: pip install torch" >&2
    exit 1
fi
if ! python3 -c 'import torch' >/dev/null 2>&1; then
    echo "PyTorch not found for python3: install it with: pip install torch" >&2
    exit 1
fi

if [ ! -x "$primer" ]; then
    echo "building $primer ..." >&2
    (cd "$root" && cargo build --release -p primer-cli) >&2
fi

# value KEY LINE: the value of KEY=value in LINE (empty if absent).
value() {
    printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | tail -n 1
}

# require NAME KEY LINE OUTPUT: the value, or a clear error naming the tool and the key.
require() {
    local v
    v=$(value "$2" "$3")
    if [ -z "$v" ]; then
        echo "could not read $2= from $1 output; its last line was: $(printf '%s\n' "$4" | tail -n 1)" >&2
        exit 1
    fi
    printf '%s' "$v"
}

primer_out=$("$primer" bench train --preset "$preset" --steps "$steps" --threads 2) || {
    echo "primer bench train failed:" >&2
    printf '%s\n' "$primer_out" >&2
    exit 1
}
primer_line=$(printf '%s\n' "$primer_out" | grep 'median_step_ms=' | tail -n 1 || true)
primer_ms=$(require primer median_step_ms "$primer_line" "$primer_out")
primer_rss=$(require primer peak_rss_mib "$primer_line" "$primer_out")

torch_out=$(python3 "$root/scripts/torch_gpt_train.py" "$preset" "$steps") || {
    echo "scripts/torch_gpt_train.py failed:" >&2
    printf '%s\n' "$torch_out" >&2
    exit 1
}
torch_line=$(printf '%s\n' "$torch_out" | grep '^RESULT ' | tail -n 1 || true)
torch_ms=$(require torch median_step_ms "$torch_line" "$torch_out")
torch_rss=$(require torch peak_rss_mib "$torch_line" "$torch_out")

awk -v p="$preset" -v pm="$primer_ms" -v tm="$torch_ms" -v pr="$primer_rss" -v tr="$torch_rss" 'BEGIN {
    if (pm <= 0 || tr <= 0) { print "non-positive timing or memory reading" > "/dev/stderr"; exit 1 }
    printf "preset=%s primer_ms=%.2f torch_ms=%.2f speedup=%.2fx primer_rss_mib=%.1f torch_rss_mib=%.1f memory_ratio=%.2f\n",
        p, pm, tm, tm / pm, pr, tr, pr / tr
}'
