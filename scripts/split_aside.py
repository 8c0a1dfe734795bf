#!/usr/bin/env python3
"""Lays out a collection of <class>/<photo> folders as two folders of symbolic links: `train`
(what incept extracts and trains on) and `aside` (photos kept out of both, to judge a head on),
with COUNT photos a class kept aside for the classes named, none of them in EXCLUDE (e.g. amid5,
so that a head trained on amid5 can be judged on the same photos). Seeded: the same call gives
the same folders. The measurements of docs/BENCHMARKS.md, "A real collection", used

    python3 scripts/split_aside.py AMIDV1 OUT --exclude ../shared/datasets/amid5 --count 100

with the classes of amid5 (those EXCLUDE holds)."""

import argparse
import os
import random
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("collection", help="folder of <class>/<photo> sub-folders")
    parser.add_argument("out", help="folder to make train/ and aside/ in (must not exist)")
    parser.add_argument("--exclude", help="folder of <class>/<photo> never kept aside; its classes are the ones kept aside from")
    parser.add_argument("--count", type=int, default=100, help="photos kept aside a class")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    if os.path.exists(args.out):
        print(f"split_aside: {args.out} exists; choose a new folder", file=sys.stderr)
        return 1
    rng = random.Random(args.seed)
    source = os.path.abspath(args.collection)
    for name in sorted(os.listdir(source)):
        folder = os.path.join(source, name)
        if not os.path.isdir(folder):
            continue
        photos = sorted(os.listdir(folder))
        aside = set()
        excluded_folder = os.path.join(args.exclude, name) if args.exclude else None
        if excluded_folder and os.path.isdir(excluded_folder):
            excluded = set(os.listdir(excluded_folder))
            candidates = [p for p in photos if p not in excluded]
            if len(candidates) < args.count:
                print(f"split_aside: {folder}: only {len(candidates)} photos to keep aside", file=sys.stderr)
                return 1
            aside = set(rng.sample(candidates, args.count))
        for side in ("train", "aside") if aside else ("train",):
            os.makedirs(os.path.join(args.out, side, name))
        for photo in photos:
            side = "aside" if photo in aside else "train"
            os.symlink(os.path.join(folder, photo), os.path.join(args.out, side, name, photo))
        print(f"{name}: {len(photos) - len(aside)} train, {len(aside)} aside")
    return 0


if __name__ == "__main__":
    sys.exit(main())
