#!/usr/bin/env python3
"""Compare primer with PyTorch on the BERT benchmarks, back to back on 2 threads each.

    python3 scripts/bench_bert.py train [--steps 20] [--rounds 3]   # BertForPreTraining step (torch_bert_train.py)
    python3 scripts/bench_bert.py infer MODEL_DIR [--rounds 3]       # encoder forward, batch 1 and 32 (torch_bert_infer.py)

Builds primer first if target/release/primer is missing. Each round runs both sides, taking turns at going first,
and prints one line per comparison; then the median of each column over the rounds:
    round=R train: primer_ms=... torch_ms=... speedup=...x primer_rss_mib=... torch_rss_mib=... memory_ratio=...
    round=R infer batch=B seq=T: primer_ms=... torch_ms=... time_ratio=...   (primer / torch; lower is better)
    median of N rounds: train: ... / infer batch=B seq=T: ...
On a shared machine one run of each side can be off by a third; the rounds show how much.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRIMER = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "primer")


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{p.stdout}{p.stderr}")
    return p.stdout


def keyvals(text, key):
    """KEY=value pairs of the last line of `text` that has KEY=."""
    line = [l for l in text.splitlines() if f"{key}=" in l][-1]
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


def build_primer():
    """Builds primer when target/release/primer is missing."""
    if not os.access(PRIMER, os.X_OK):
        subprocess.run(["cargo", "build", "--release", "-p", "primer-cli"], cwd=ROOT, check=True)


def json_lines(text):
    return [json.loads(l) for l in text.splitlines() if l.startswith("{")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("train")
    t.add_argument("--steps", type=int, default=20)
    i = sub.add_parser("infer")
    i.add_argument("model_dir")
    i.add_argument("--runs", type=int, default=20)
    for p in (t, i):
        p.add_argument("--rounds", type=int, default=3, help="runs of each side, taking turns at going first")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    build_primer()
    rows = {}  # label -> list of {column: value}, one per round
    for r in range(1, args.rounds + 1):
        sides = [primer_side, torch_side]
        if r % 2 == 0:
            sides.reverse()
        got = {f.__name__: f(args) for f in sides}
        for label, row in compare(args, got["primer_side"], got["torch_side"]):
            rows.setdefault(label, []).append(row)
            print(f"round={r} {label}: {fmt(row)}", flush=True)
    for label, rs in rows.items():
        med = {k: statistics.median(x[k] for x in rs) for k in rs[0]}
        print(f"median of {args.rounds} rounds: {label}: {fmt(med)}")


def primer_side(args):
    if args.what == "train":
        return keyvals(run([PRIMER, "--threads", "2", "bench", "bert-train", "--steps", str(args.steps)]),
                       "median_step_ms")
    return json_lines(run([PRIMER, "--threads", "2", "bench", "bert-infer", "--model", args.model_dir,
                           "--runs", str(args.runs), "--batch", "1,32"]))


def torch_side(args):
    if args.what == "train":
        return json_lines(run([sys.executable, os.path.join(ROOT, "scripts/torch_bert_train.py"),
                               "--steps", str(args.steps)]))[-1]
    return json_lines(run([sys.executable, os.path.join(ROOT, "scripts/torch_bert_infer.py"), args.model_dir]))


def compare(args, p, t):
    """(label, row) pairs for one round; a row maps column names to numbers."""
    if args.what == "train":
        pm, tm = float(p["median_step_ms"]), t["ms_per_step"]
        pr, tr = float(p["peak_rss_mib"]), t["peak_rss_mib"]
        return [("train", {"primer_ms": pm, "torch_ms": tm, "speedup": tm / pm, "primer_rss_mib": pr,
                           "torch_rss_mib": tr, "memory_ratio": pr / tr})]
    out = []
    for a in p:
        b = next(x for x in t if x["batch"] == a["batch"] and x["seq"] == a["seq"])
        out.append((f"infer batch={a['batch']} seq={a['seq']}",
                    {"primer_ms": a["ms"], "torch_ms": b["ms"], "time_ratio": a["ms"] / b["ms"]}))
    return out


def fmt(row):
    def one(k, v):
        if k == "speedup":
            return f"{k}={v:.2f}x"
        return f"{k}={v:.2f}" if k.endswith("ratio") else f"{k}={v:.1f}"
    return " ".join(one(k, v) for k, v in row.items())

if __name__ == "__main__":
    main()
