#!/usr/bin/env bash
# Compare primer's training step with the PyTorch reference on the same GPT preset.
#
#   scripts/bench_train.sh PRESET [STEPS [ROUNDS]]   # PRESET: small | big, STEPS default 50, ROUNDS default 3
#
# Runs `primer bench train` (building it first if the binary is missing) and
# scripts/torch_gpt_train.py, both on 2 threads, ROUNDS times, taking turns at going first, and prints a line
# per round, then the median of the rounds:
#   round=… preset=… primer_ms=… torch_ms=… speedup=…x primer_rss_mib=… torch_rss_mib=… memory_ratio=…
#   median of N rounds: preset=… primer_ms=… torch_ms=… speedup=…x … memory_ratio=…
# speedup = torch_ms / primer_ms, memory_ratio = primer_rss / torch_rss; the median line takes the median of each
# column on its own. On a shared machine one run of each side can be off by a third; the rounds show how much.
set -euo pipefail

usage() {
    echo "usage: $0 PRESET [STEPS [ROUNDS]]   (PRESET: small | big; STEPS default 50; ROUNDS default 3)" >&2
    exit 2
}

[ $# -ge 1 ] && [ $# -le 3 ] || usage
preset=$1
steps=${2:-50}
rounds=${3:-3}
case $preset in small | big) ;; *) usage ;; esac
case $steps in '' | *[!0-9]*) usage ;; esac
case $rounds in '' | *[!0-9]* | 0) usage ;; esac

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

# run_side NAME PATTERN COMMAND...: runs one side and sets side_ms and side_rss from its last line matching PATTERN.
run_side() {
    local name=$1 pattern=$2 out line
    shift 2
    out=$("$@") || {
        echo "$name failed:" >&2
        printf '%s\n' "$out" >&2
        exit 1
    }
    line=$(printf '%s\n' "$out" | grep "$pattern" | tail -n 1 || true)
    side_ms=$(require "$name" median_step_ms "$line" "$out")
    side_rss=$(require "$name" peak_rss_mib "$line" "$out")
}

run_primer() {
    run_side "primer bench train" 'median_step_ms=' "$primer" bench train --preset "$preset" --steps "$steps" --threads 2
    primer_ms=$side_ms primer_rss=$side_rss
}

run_torch() {
    run_side scripts/torch_gpt_train.py '^RESULT ' python3 "$root/scripts/torch_gpt_train.py" "$preset" "$steps"
    torch_ms=$side_ms torch_rss=$side_rss
}

rows=""
for round in $(seq 1 "$rounds"); do
    if [ $((round % 2)) -eq 1 ]; then
        run_primer
        run_torch
    else
        run_torch
        run_primer
    fi
    row=$(awk -v r="$round" -v p="$preset" -v pm="$primer_ms" -v tm="$torch_ms" -v pr="$primer_rss" -v tr="$torch_rss" 'BEGIN {
        if (pm <= 0 || tr <= 0) { print "non-positive timing or memory reading" > "/dev/stderr"; exit 1 }
        printf "round=%d preset=%s primer_ms=%.2f torch_ms=%.2f speedup=%.2fx primer_rss_mib=%.1f torch_rss_mib=%.1f memory_ratio=%.2f\n",
            r, p, pm, tm, tm / pm, pr, tr, pr / tr
    }')
    echo "$row"
    rows="$rows$row"$'\n'
done

# the median of each column over the rounds
printf '%s' "$rows" | awk -v n="$rounds" -v p="$preset" '
    function med(a,   i, j, t, m) {
        m = n
        for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
    }
    {
        for (f = 1; f <= NF; f++) {
            split($f, kv, "="); v = kv[2]; sub(/x$/, "", v)
            col[kv[1], NR] = v + 0
        }
    }
    END {
        split("primer_ms torch_ms speedup primer_rss_mib torch_rss_mib memory_ratio", keys, " ")
        for (k = 1; k <= 6; k++) { for (r = 1; r <= n; r++) a[r] = col[keys[k], r]; m[keys[k]] = med(a) }
        printf "median of %d rounds: preset=%s primer_ms=%.2f torch_ms=%.2f speedup=%.2fx primer_rss_mib=%.1f torch_rss_mib=%.1f memory_ratio=%.2f\n",
            n, p, m["primer_ms"], m["torch_ms"], m["speedup"], m["primer_rss_mib"], m["torch_rss_mib"], m["memory_ratio"]
    }'
