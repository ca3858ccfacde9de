#!/usr/bin/env python3
"""Compare primer with PyTorch on the BERT benchmarks, back to back on 2 threads each.

    python3 scripts/bench_bert.py train [--steps 20]      # BertForPreTraining step (scripts/torch_bert_train.py)
    python3 scripts/bench_bert.py infer MODEL_DIR         # encoder forward, batch 1 and 32 (torch_bert_infer.py)

Builds primer first if target/release/primer is missing. Prints one line per comparison:
    train: primer_ms=... torch_ms=... speedup=...x primer_rss_mib=... torch_rss_mib=... memory_ratio=...
    infer batch=B seq=T: primer_ms=... torch_ms=... time_ratio=...   (primer / torch; lower is better)
"""

import argparse
import json
import os
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
    args = ap.parse_args()
    if not os.access(PRIMER, os.X_OK):
        subprocess.run(["cargo", "build", "--release", "-p", "primer-cli"], cwd=ROOT, check=True)
    if args.what == "train":
        p = keyvals(run([PRIMER, "--threads", "2", "bench", "bert-train", "--steps", str(args.steps)]), "median_step_ms")
        t = json_lines(run([sys.executable, os.path.join(ROOT, "scripts/torch_bert_train.py"), "--steps", str(args.steps)]))[-1]
        pm, tm = float(p["median_step_ms"]), t["ms_per_step"]
        pr, tr = float(p["peak_rss_mib"]), t["peak_rss_mib"]
        print(f"train: primer_ms={pm:.1f} torch_ms={tm:.1f} speedup={tm / pm:.2f}x "
              f"primer_rss_mib={pr:.1f} torch_rss_mib={tr:.1f} memory_ratio={pr / tr:.2f}")
    else:
        p = json_lines(run([PRIMER, "--threads", "2", "bench", "bert-infer", "--model", args.model_dir,
                            "--runs", str(args.runs), "--batch", "1,32"]))
        t = json_lines(run([sys.executable, os.path.join(ROOT, "scripts/torch_bert_infer.py"), args.model_dir]))
        for a in p:
            b = next(x for x in t if x["batch"] == a["batch"] and x["seq"] == a["seq"])
            print(f"infer batch={a['batch']} seq={a['seq']}: primer_ms={a['ms']:.1f} torch_ms={b['ms']:.1f} "
                  f"time_ratio={a['ms'] / b['ms']:.2f}")


if __name__ == "__main__":
    main()
