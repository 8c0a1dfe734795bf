#!/usr/bin/env bash
# `incept report` in a real browser (just test-report): headless Chromium renders the HTML page
# of a small real run and every thumbnail must load.
#   1. 10 photos per class of DATA are extracted with the tiny fixture model and a small head is
#      trained on them; `incept report` writes its page;
#   2. Chromium loads a copy of the page with a few lines of script added that, after the load
#      event, count the <img> elements and the broken ones (not complete, or no natural width)
#      into attributes of <body>; --dump-dom prints them. The count must equal the photos the
#      page should show (computed here from predictions.csv), none broken;
#   3. a screenshot of the page is taken (kept with KEEP=1);
#   4. a missing photo: a warning naming it, a placeholder box instead of an <img>, no broken one;
#   5. --cache --tta: the head on the whole cache, every thumbnail loads;
#   6. the wrong --photos folder: an error naming the flag, no page written.
# Installs Debian's chromium with apt-get when missing (needs root then). Environment: INCEPT
# (default ./target/release/incept), DATA (default ../shared/datasets/amid5, one folder per
# class; missing DATA is a failure, not a skip), KEEP=1 keeps the temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started_at=$SECONDS

# shellcheck source=scripts/test-lib.sh
. scripts/test-lib.sh
INCEPT=$(absolute "${INCEPT:-./target/release/incept}")
DATA=$(absolute "${DATA:-../shared/datasets/amid5}")
MODEL=$root/tests/fixtures/tiny_inception.onnx

passed=0
failed=0
finished=0
work=""
pass() { echo "PASS [$((SECONDS - started_at)) s]: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
# A failure the later steps cannot go on without.
fatal() { fail "$*"; exit 1; }
cleanup() {
    local status=$?
    if [ "$finished" -eq 0 ]; then
        if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
            echo "FAIL: stopped by an unexpected error (exit $status)"
            failed=$((failed + 1))
        fi
        closing
    fi
    if [ -n "$work" ] && [ "$failed" -eq 0 ] && [ -z "${KEEP:-}" ]; then rm -rf "$work"; fi
}
closing() {
    if [ -n "$work" ] && { [ "$failed" -ne 0 ] || [ -n "${KEEP:-}" ]; }; then echo "      (kept $work)"; fi
    echo "test-report: $passed passed, $failed failed"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$INCEPT" ] || fatal "no incept binary at $INCEPT (cargo build --release -p incept-cli)"
[ -d "$DATA" ] || fatal "no photos at $DATA: the test needs real photos (set DATA to a folder of class sub-folders)"
[ -e "$MODEL" ] || fatal "no fixture model at $MODEL (just fixture)"
ensure_chromium test-report
pass "$(chromium --version 2>/dev/null | head -n 1)"

work=$(mktemp -d /tmp/test-report.XXXXXX)
photos=$work/photos
classes=0
while read -r class; do
    mkdir -p "$photos/$class"
    find "$DATA/$class" -maxdepth 1 -type f -iname '*.jpg' | sort | awk 'NR <= 10' |
        xargs -r -d '\n' cp -t "$photos/$class/"
    classes=$((classes + 1))
done < <(find "$DATA" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort)
[ "$classes" -ge 2 ] || fatal "$DATA has fewer than 2 class folders"

"$INCEPT" extract "$photos" -o "$work/c.h5" --model "$MODEL" --copies 1 >"$work/extract.log" 2>&1 ||
    fatal "incept extract: $(tail -n 3 "$work/extract.log")"
printf 'epochs = 3\nbatch_size = 8\nlearning_rate = 0.001\n[head]\npooling = "gap"\ndense = [32]\n' >"$work/head.toml"
"$INCEPT" train-head "$work/c.h5" --run-dir "$work/run" --config "$work/head.toml" >"$work/train.log" 2>&1 ||
    fatal "incept train-head: $(tail -n 3 "$work/train.log")"
pass "a small run on $classes classes x 10 photos of $DATA"

# The photos the page should show: those of the 4 most confused pairs (12 at most each), the
# 24 top losses (from predictions.csv) and the 24 first probably mislabelled (`incept suspects`).
"$INCEPT" suspects "$work/run" --format json >"$work/suspects.json" 2>>"$work/report.log"
expected=$(python3 - "$work/run/predictions.csv" "$work/suspects.json" <<'EOF'
import collections, csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
cells = collections.Counter((r["label"], r["predicted"]) for r in rows if r["label"] != r["predicted"])
suspects = json.load(open(sys.argv[2]))["found"]
print(sum(min(12, count) for count in sorted(cells.values(), reverse=True)[:4]) + min(24, len(rows))
      + min(24, suspects))
EOF
)

# Loads PAGE in headless Chromium and prints "images broken placeholders" as the DOM says
# after the load event.
render() { # PAGE
    local probe=${1%.html}.probe.html
    sed 's#</body>#<script>addEventListener("load", () => { const images = [...document.images]; document.body.dataset.images = images.length; document.body.dataset.broken = images.filter(i => !i.complete || i.naturalWidth === 0).length; document.body.dataset.placeholders = document.querySelectorAll(".placeholder").length; });</script></body>#' \
        "$1" >"$probe"
    chromium --headless --no-sandbox --disable-gpu --user-data-dir="$work/profile" \
        --virtual-time-budget=10000 --dump-dom "file://$probe" 2>>"$work/chromium.log" |
        python3 -c '
import re, sys
body = re.search(r"<body[^>]*>", sys.stdin.read())
attributes = dict(re.findall(r"data-(\w+)=\"(\d+)\"", body.group(0) if body else ""))
print(attributes.get("images", "?"), attributes.get("broken", "?"), attributes.get("placeholders", "?"))'
}

# 1-3: the run's own validation predictions.
if "$INCEPT" report "$work/run" -o "$work/report.html" --photos "$photos" 2>"$work/report.log"; then
    read -r images broken placeholders < <(render "$work/report.html")
    if [ "$images" = "$expected" ] && [ "$broken" = 0 ] && [ "$placeholders" = 0 ]; then
        pass "report: $images thumbnails in Chromium (expected $expected), none broken ($(wc -c <"$work/report.html") bytes)"
    else
        fail "report: Chromium counts $images images ($broken broken, $placeholders placeholders); expected $expected, none broken"
    fi
    chromium --headless --no-sandbox --disable-gpu --user-data-dir="$work/profile" --hide-scrollbars \
        --virtual-time-budget=10000 --window-size=1280,2400 --screenshot="$work/report.png" \
        "file://$work/report.html" >>"$work/chromium.log" 2>&1 || true
    if [ "$(head -c 8 "$work/report.png" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] &&
        [ "$(wc -c <"$work/report.png")" -gt 50000 ]; then
        pass "screenshot: $work/report.png, $(wc -c <"$work/report.png") bytes"
    else
        fail "screenshot: no PNG of the page at $work/report.png (see $work/chromium.log)"
    fi
else
    fail "incept report: $(tail -n 3 "$work/report.log")"
fi

# 4: the highest-loss photo goes missing.
worst=$(python3 - "$work/run/predictions.csv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
print(min(rows, key=lambda r: float(r["p_" + r["label"]]))["source"])
EOF
)
rm -f "$photos/$worst"
if "$INCEPT" report "$work/run" -o "$work/missing.html" --photos "$photos" 2>"$work/missing.log"; then
    read -r images broken placeholders < <(render "$work/missing.html")
    if ! grep -qF "warning: $photos/$worst: photo not found" "$work/missing.log"; then
        fail "missing photo: no warning naming $photos/$worst: $(cat "$work/missing.log")"
    elif [ "$placeholders" -ge 1 ] 2>/dev/null && [ "$broken" = 0 ] && [ $((images + placeholders)) -eq "$expected" ]; then
        pass "missing photo: warned, $placeholders placeholder(s) and $images thumbnails, none broken"
    else
        fail "missing photo: Chromium counts $images images ($broken broken, $placeholders placeholders); expected $expected cards, none broken"
    fi
else
    fail "incept report with a missing photo: $(tail -n 3 "$work/missing.log")"
fi

# 5: the head on the whole cache, with TTA.
if "$INCEPT" report "$work/run" -o "$work/cache.html" --photos "$photos" --cache "$work/c.h5" --tta 2>"$work/cache.log"; then
    read -r images broken placeholders < <(render "$work/cache.html")
    said=$(grep -o '([0-9]* thumbnails' "$work/cache.log" | tr -dc 0-9)
    if [ "$images" = "$said" ] && [ "$broken" = 0 ] && [ "$images" -gt 0 ]; then
        pass "report --cache --tta: $images thumbnails in Chromium, none broken"
    else
        fail "report --cache --tta: Chromium counts $images images ($broken broken); incept said ${said:-?}"
    fi
else
    fail "incept report --cache: $(tail -n 3 "$work/cache.log")"
fi

# 6: the wrong folder.
if "$INCEPT" report "$work/run" -o "$work/wrong.html" --photos "$work/run" 2>"$work/wrong.log"; then
    fail "report with --photos of a folder without the photos succeeded"
elif grep -q -- "--photos" "$work/wrong.log" && [ ! -e "$work/wrong.html" ]; then
    pass "wrong --photos folder: $(tail -n 1 "$work/wrong.log" | cut -c 1-120)..."
else
    fail "wrong --photos folder: $(cat "$work/wrong.log")"
fi

finished=1
echo "test-report: took $((SECONDS - started_at)) s"
closing
[ "$failed" -eq 0 ]
