#!/usr/bin/env bash
# The field page (`incept export RUN --web DIR`) in a real browser (just test-web):
#   1. 12 photos per class of DATA are extracted with the real mixed_7 backbone (1 augmented
#      copy) and a small head is trained on them; its temperature is fitted on its validation
#      photos;
#   2. the run is exported with --web (and --min-confidence, so "not sure" is exercised) and
#      `incept predict` classifies 4 other photos per class (20 for amid5's 5 classes);
#   3. scripts/test-web.mjs serves the page from a local static server, drives headless Chromium
#      through puppeteer-core: every photo through the page's own file input, probabilities
#      within 1e-3 of `incept predict`'s; offline after the first load (server stopped, page
#      reloaded, classified again); a non-image, an oversized photo, a missing and a truncated
#      model each show a message; resize.js against PIL's resizes byte for byte.
# Installs Debian's chromium with apt-get when missing (needs root then). Environment: INCEPT
# (default ./target/release/incept), DATA (default ../shared/datasets/amid5; missing DATA is a
# failure, not a skip), KEEP=1 keeps the temporary folder, SCREENSHOT=FILE saves the page's.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started_at=$SECONDS

# shellcheck source=scripts/test-lib.sh
. scripts/test-lib.sh
INCEPT=$(absolute "${INCEPT:-./target/release/incept}")
DATA=$(absolute "${DATA:-../shared/datasets/amid5}")
MODEL=$root/models/inception_v3_mixed_7.onnx
TRAIN_PER_CLASS=12
TEST_PER_CLASS=4

work=""
status=1
cleanup() {
    if [ -n "$work" ]; then
        if [ "$status" -ne 0 ] || [ -n "${KEEP:-}" ]; then echo "      (kept $work)"; else rm -rf "$work"; fi
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A failure before the browser runs: one FAIL line and the summary the CI counts.
fatal() { echo "FAIL: $*"; echo "test-web: 0 passed, 1 failed"; exit 1; }

[ -x "$INCEPT" ] || fatal "no incept binary at $INCEPT (cargo build --release -p incept-cli)"
[ -d "$DATA" ] || fatal "no photos at $DATA: the test needs real photos (set DATA to a folder of class sub-folders)"
[ -e "$MODEL" ] || fatal "no model at $MODEL (just setup)"
[ -e web/node_modules/puppeteer-core/package.json ] || fatal "no web/node_modules (just setup installs them with npm ci)"
ensure_chromium test-web

work=$(mktemp -d /tmp/test-web.XXXXXX)
photos=$work/photos
test_photos=$work/test-photos
mkdir -p "$test_photos"
classes=0
while read -r class; do
    mkdir -p "$photos/$class"
    mapfile -t files < <(find "$DATA/$class" -maxdepth 1 -type f -iname '*.jpg' | sort)
    [ "${#files[@]}" -ge $((TRAIN_PER_CLASS + TEST_PER_CLASS)) ] || fatal "$DATA/$class has fewer than $((TRAIN_PER_CLASS + TEST_PER_CLASS)) photos"
    cp -t "$photos/$class/" "${files[@]:0:TRAIN_PER_CLASS}"
    cp -t "$test_photos/" "${files[@]:TRAIN_PER_CLASS:TEST_PER_CLASS}"
    classes=$((classes + 1))
done < <(find "$DATA" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort)
[ "$classes" -ge 2 ] || fatal "$DATA has fewer than 2 class folders"

"$INCEPT" extract "$photos" -o "$work/c.h5" --model "$MODEL" --layer mixed_7 --copies 1 >"$work/extract.log" 2>&1 ||
    fatal "incept extract: $(tail -n 3 "$work/extract.log")"
printf 'epochs = 12\nbatch_size = 16\nlearning_rate = 0.003\n[head]\npooling = "gap"\ndense = [64]\n' >"$work/head.toml"
"$INCEPT" train-head "$work/c.h5" --run-dir "$work/run" --config "$work/head.toml" >"$work/train.log" 2>&1 ||
    fatal "incept train-head: $(tail -n 3 "$work/train.log")"
grep -q "^calibration" "$work/train.log" || fatal "train-head printed no calibration line: $(tail -n 3 "$work/train.log")"
"$INCEPT" export "$work/run" --web "$work/page" --model "$MODEL" --min-confidence 0.5 >"$work/export.log" 2>&1 ||
    fatal "incept export --web: $(tail -n 3 "$work/export.log")"
"$INCEPT" predict "$work/run" "$test_photos" --model "$MODEL" --top-k "$classes" --format json \
    >"$work/expected.jsonl" 2>"$work/predict.log" || fatal "incept predict: $(tail -n 3 "$work/predict.log")"
echo "PASS [$((SECONDS - started_at)) s]: a run on $classes classes x $TRAIN_PER_CLASS photos, exported with --web ($(du -sh "$work/page" | cut -f1)), $(wc -l <"$work/expected.jsonl") other photos classified by incept predict"

arguments=(--page "$work/page" --expected "$work/expected.jsonl" --photos "$test_photos")
[ -z "${SCREENSHOT:-}" ] || arguments+=(--screenshot "$(absolute "$SCREENSHOT")")
set +e
node scripts/test-web.mjs "${arguments[@]}" | tee "$work/browser.log"
browser=${PIPESTATUS[0]}
set -e
passed=$(($(grep -c '^PASS' "$work/browser.log") + 1))
failed=$(grep -c '^FAIL' "$work/browser.log" || true)
if [ "$browser" -ne 0 ] && [ "$failed" -eq 0 ]; then
    echo "FAIL: scripts/test-web.mjs stopped with status $browser"
    failed=1
fi
echo "test-web: took $((SECONDS - started_at)) s"
echo "test-web: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && status=0
exit "$status"
