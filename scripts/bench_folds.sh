#!/usr/bin/env bash
# `just bench-folds`: what `train-head --folds K` costs against one run of the same recipe on the
# same cache, side by side in one run: wall time of each, the ratio, and each fold's training
# seconds (as the run folders record them). Each fold trains on (K-1)/K of the photos, so K folds
# should cost about K-1 to K runs, not more. Defaults: the demo's cache and recipe, 5 epochs.
set -euo pipefail
cd "$(dirname "$0")/.."
incept=${INCEPT:-./target/release/incept}
cache=${CACHE:-features/amid5-mixed_7.h5}
folds=${FOLDS:-5}
epochs=${EPOCHS:-5}
recipe=(--preset "${PRESET:-bilinear}" --epochs "$epochs")

[ -x "$incept" ] || { echo "bench-folds: $incept missing; run just setup" >&2; exit 1; }
[ -e "$cache" ] || { echo "bench-folds: $cache missing; run just demo first (it extracts it)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-folds.XXXXXX")
trap 'rm -rf "$work"' EXIT

t0=$(date +%s.%N)
"$incept" train-head "$cache" --run-dir "$work/one" "${recipe[@]}" >/dev/null 2>"$work/one.log"
t1=$(date +%s.%N)
"$incept" train-head "$cache" --run-dir "$work/cv" "${recipe[@]}" --folds "$folds" >/dev/null 2>"$work/cv.log"
t2=$(date +%s.%N)

python3 - "$work" "$t0" "$t1" "$t2" "$folds" <<'PY'
import json, sys
work, folds = sys.argv[1], int(sys.argv[5])
t0, t1, t2 = (float(t) for t in sys.argv[2:5])
one, cv = t1 - t0, t2 - t1
single = json.load(open(f"{work}/one/run.json"))["train_seconds"]
record = json.load(open(f"{work}/cv/run.json"))["cross_validation"]
fold_seconds = [f["train_seconds"] for f in record["fold_results"]]
print(f"one run:            {one:7.1f} s wall, {single:7.1f} s training")
print(f"--folds {folds}:          {cv:7.1f} s wall, {sum(fold_seconds):7.1f} s training "
      f"(folds: {', '.join(f'{s:.1f}' for s in fold_seconds)})")
print(f"ratio:              {cv / one:.2f}x wall, {sum(fold_seconds) / single:.2f}x training "
      f"(K = {folds}; each fold trains on {folds - 1}/{folds} of the photos)")
PY
