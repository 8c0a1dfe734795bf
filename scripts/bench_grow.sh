#!/usr/bin/env bash
# `just bench-grow`: the time to add 20 new photos (1 % of amid5, --copies 10) to the demo's
# 22,000-sample cache, against extracting the same 20 photos into an empty cache, side by side in
# one run (ROUNDS rounds, alternating). Process start and the final index are included.
set -euo pipefail
cd "$(dirname "$0")/.."
incept=${INCEPT:-./target/release/incept}
data=${DATA:-../shared/datasets/amid5}
cache=${CACHE:-features/amid5-mixed_7.h5}
rounds=${ROUNDS:-2}
# The layer the cache holds (the demo's: mixed_7).
flags=(--layer "${LAYER:-mixed_7}" --copies 10)

[ -x "$incept" ] || { echo "bench-grow: $incept missing; run just setup" >&2; exit 1; }
[ -d "$data" ] || { echo "bench-grow: no photos at $data (see README, Data)" >&2; exit 1; }
[ -e "$cache" ] || { echo "bench-grow: $cache missing; run just demo first (it extracts it)" >&2; exit 1; }

# Beside the cache: the grown copies share its files by hard links (same file system). Growing
# never modifies a piece and replaces the index by rename, so the demo cache is left as it was.
work=$(mktemp -d "$(dirname "$cache")/.bench-grow.XXXXXX")
trap 'rm -rf "$work"' EXIT
name=$(basename "$cache")

# The photos: every amid5 photo (links) plus 4 new ones per class (copies under new names, so
# their samples are new), and the 20 new ones alone.
mkdir -p "$work/all" "$work/new"
for class_dir in "$data"/*/; do
    class=$(basename "$class_dir")
    mkdir -p "$work/all/$class" "$work/new/$class"
    for photo in "$class_dir"*; do ln -s "$(realpath "$photo")" "$work/all/$class/"; done
    i=0
    for photo in $(ls "$class_dir" | head -n 4); do
        cp "$class_dir$photo" "$work/new/$class/zz-new-$i.jpg"
        cp "$class_dir$photo" "$work/all/$class/zz-new-$i.jpg"
        i=$((i + 1))
    done
done

seconds() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { print b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { print a / b }'; }
sum() { awk '{ s += $1 } END { print s }'; }

grow_times=(); empty_times=()
for round in $(seq 1 "$rounds"); do
    copy="$work/grow-$round"
    mkdir -p "$copy"
    ln "$cache" "$copy/$name"
    if [ -d "$cache.parts" ]; then cp -al "$cache.parts" "$copy/$name.parts"; fi
    start=$(seconds)
    "$incept" extract "$work/all" -o "$copy/$name" "${flags[@]}" 2> "$work/grow-$round.log" >/dev/null
    grow=$(elapsed "$start" "$(seconds)")
    start=$(seconds)
    "$incept" extract "$work/new" -o "$work/empty-$round.h5" "${flags[@]}" 2> "$work/empty-$round.log" >/dev/null
    empty=$(elapsed "$start" "$(seconds)")
    grow_times+=("$grow"); empty_times+=("$empty")
    printf 'round %d: grow %.1f s (%s), empty %.1f s (%s): ratio %.2f\n' "$round" "$grow" \
        "$(grep -o 'extracted [0-9]* samples ([0-9]* in cache)' "$work/grow-$round.log")" "$empty" \
        "$(grep -o 'extracted [0-9]* samples ([0-9]* in cache)' "$work/empty-$round.log")" \
        "$(ratio "$grow" "$empty")"
    grep -o 'writing [0-9.]* s' "$work/grow-$round.log" | sed 's/^/    grow: /'
    grep -o 'writing [0-9.]* s' "$work/empty-$round.log" | sed 's/^/    empty: /'
    rm -rf "$copy" "$work/empty-$round.h5" "$work/empty-$round.h5.parts"
done
total_grow=$(printf '%s\n' "${grow_times[@]}" | sum)
total_empty=$(printf '%s\n' "${empty_times[@]}" | sum)
printf 'bench-grow: adding 20 photos (220 samples) to %s: %.2f× the time of the same 20 photos into an empty cache (goal ≤ 1.5)\n' \
    "$cache" "$(ratio "$total_grow" "$total_empty")"
