#!/usr/bin/env python3
"""Measures `incept suspects` against labels flipped on purpose (docs/BENCHMARKS.md).

    python3 scripts/mislabel.py flip DATA_DIR OUT_DIR [--fraction 0.02] [--seed 0]
        Copies DATA_DIR's <class>/<photo> folders to OUT_DIR with a seeded random FRACTION of
        the photos moved to another class's folder (chosen at random among the others), and
        writes OUT_DIR.flipped.csv: the moved photo's new path, its true class, its given one.

    python3 scripts/mislabel.py score OUT_DIR.flipped.csv SUSPECTS.json
        Precision and recall of `incept suspects RUN --format json` (every suspect listed, no
        --limit) against the flips, with Wilson 95 % intervals.
"""

import argparse
import csv
import json
import math
import random
import shutil
import sys
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def wilson(successes, trials, z=1.959963984540054):
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    denominator = 1 + z * z / trials
    center = (p + z * z / (2 * trials)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return (max(0.0, center - half), min(1.0, center + half))


def flip(args):
    data, out = Path(args.data), Path(args.out)
    if out.exists():
        sys.exit(f"{out} exists; choose a new folder")
    classes = sorted(p.name for p in data.iterdir() if p.is_dir())
    photos = sorted(
        (c, p.name)
        for c in classes
        for p in (data / c).iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES
    )
    rng = random.Random(args.seed)
    count = round(args.fraction * len(photos))
    moved = set(rng.sample(range(len(photos)), count))
    rows = []
    for c in classes:
        (out / c).mkdir(parents=True)
    for index, (c, name) in enumerate(photos):
        if index in moved:
            given = rng.choice([other for other in classes if other != c])
            target = Path(given) / f"flipped-{c}-{name}"
            rows.append((target.as_posix(), c, given))
        else:
            target = Path(c) / name
        shutil.copy2(data / c / name, out / target)
    manifest = Path(f"{out}.flipped.csv")
    with manifest.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["source", "true_class", "given_class"])
        writer.writerows(rows)
    print(f"{len(photos)} photos of {len(classes)} classes copied to {out}; "
          f"{len(rows)} moved to another class ({manifest})")


def score(args):
    with open(args.manifest, newline="") as f:
        flipped = {row["source"]: row["true_class"] for row in csv.DictReader(f)}
    listing = json.load(open(args.suspects))
    if listing.get("found") != len(listing["suspects"]):
        sys.exit("the listing is cut (--limit): list every suspect")
    suspects = {s["source"]: s["suggested"] for s in listing["suspects"]}
    caught = [s for s in suspects if s in flipped]
    right_class = [s for s in caught if suspects[s] == flipped[s]]
    precision = (len(caught), len(suspects))
    recall = (len(caught), len(flipped))
    for name, (k, n) in [("precision", precision), ("recall", recall)]:
        low, high = wilson(k, n)
        print(f"{name:9} {k}/{n} = {k / max(n, 1):.3f} (95 % interval {low:.3f}-{high:.3f})")
    print(f"suggested class right for {len(right_class)} of the {len(caught)} flipped photos found; "
          f"{listing['photos']} photos judged ({listing['judged_on']})")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    f = commands.add_parser("flip")
    f.add_argument("data")
    f.add_argument("out")
    f.add_argument("--fraction", type=float, default=0.02)
    f.add_argument("--seed", type=int, default=0)
    s = commands.add_parser("score")
    s.add_argument("manifest")
    s.add_argument("suspects")
    args = parser.parse_args()
    flip(args) if args.command == "flip" else score(args)


if __name__ == "__main__":
    main()
