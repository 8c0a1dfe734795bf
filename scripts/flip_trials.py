#!/usr/bin/env python3
"""Bytes flipped at random in the pieces of a cache: does `incept verify` find every damaged row?

Usage: flip_trials.py CACHE.h5 TRIALS FLIPS [--model MODEL] [--data DATA_DIR] [--repair]

Each trial copies the cache (index, pieces folder; a merged index's shard pieces are not copied:
pass an extracted cache or a `merge --copy` file), flips FLIPS random bits anywhere in one random
piece file of the copy (chunks, HDF5 metadata, columns alike), then:
- the truth, from h5py on the damaged copy against the clean cache: rows that no longer read
  (HDF5's own checksum check raises) or read different numbers, or whose piece's columns changed;
- `incept verify`: the rows it lists (exit 1) or none (exit 0);
- with --repair, `incept verify --repair` and then every row compared with the clean cache.
Prints one line per trial and the totals: damaged rows missed by verify must be 0.
Needs h5py and numpy (PYTHONPATH=.deps/python after `just setup`) and target/release/incept.
"""

import os
import random
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

INCEPT = os.path.join(os.path.dirname(__file__), "..", "target", "release", "incept")


def pieces_of(cache):
    with h5py.File(cache, "r") as f:
        if "pieces" not in f:
            return [cache]
        folder = os.path.dirname(cache)
        return [os.path.join(folder, p.decode()) for p in f["pieces"][:]]


def rows_of(cache):
    """(photo, variant) of each row, read from the index."""
    with h5py.File(cache, "r") as f:
        sources = [s.decode() for s in f["sources"][:]]
        return [(sources[s], int(v)) for s, v in zip(f["source"][:], f["variant"][:])]


def read_rows(cache):
    """Each row's map, or None where it cannot be read. Reads through each piece (not the
    virtual dataset, which turns an unreadable piece into NaN)."""
    out = []
    with h5py.File(cache, "r") as f:
        counts = list(f["piece_rows"][:]) if "pieces" in f else [len(f["labels"])]
    for piece, count in zip(pieces_of(cache), counts):
        try:
            with h5py.File(piece, "r") as p:
                dataset = p["features"]
                for row in range(count):
                    try:
                        out.append(np.array(dataset[row]))
                    except Exception:
                        out.append(None)
        except Exception:
            out.extend([None] * count)
    return out


def piece_columns(piece):
    try:
        with h5py.File(piece, "r") as p:
            if "source_paths" in p:
                return [(s.decode(), c.decode(), int(v)) for s, c, v in
                        zip(p["source_paths"][:], p["class_names"][:], p["variant"][:])]
            sources = [s.decode() for s in p["sources"][:]]
            classes = [c.decode() for c in p["classes"][:]]
            return [(sources[s], classes[l], int(v)) for s, l, v in
                    zip(p["source"][:], p["labels"][:], p["variant"][:])]
    except Exception:
        return None


def truly_damaged(clean, damaged, columns=True):
    """Rows whose maps no longer read or differ; with `columns`, also rows whose piece's own
    record (photo, class, variant) changed or cannot be read."""
    clean_maps, damaged_maps = read_rows(clean), read_rows(damaged)
    bad = {r for r, (a, b) in enumerate(zip(clean_maps, damaged_maps))
           if b is None or not np.array_equal(a, b)}
    if not columns:
        return bad
    start = 0
    with h5py.File(clean, "r") as f:
        counts = list(f["piece_rows"][:]) if "pieces" in f else [len(f["labels"])]
    for clean_piece, damaged_piece, count in zip(pieces_of(clean), pieces_of(damaged), counts):
        a, b = piece_columns(clean_piece), piece_columns(damaged_piece)
        if b is None:
            bad |= set(range(start, start + count))
        elif a != b:
            bad |= {start + i for i, (x, y) in enumerate(zip(a, b)) if x != y}
        start += count
    return bad


def copy_cache(cache, folder):
    target = os.path.join(folder, os.path.basename(cache))
    shutil.copy2(cache, target)
    if os.path.isdir(cache + ".parts"):
        shutil.copytree(cache + ".parts", target + ".parts")
    return target


def main():
    args = sys.argv[1:]
    cache, trials, flips = args[0], int(args[1]), int(args[2])
    model = args[args.index("--model") + 1] if "--model" in args else None
    data = args[args.index("--data") + 1] if "--data" in args else None
    repair = "--repair" in args
    rng = random.Random(20261207)
    missed = found = false_alarms = unreadable = repaired_equal = records_missed = 0
    for trial in range(trials):
        with tempfile.TemporaryDirectory() as folder:
            copy = copy_cache(cache, folder)
            piece = rng.choice(pieces_of(copy))
            content = bytearray(open(piece, "rb").read())
            spots = [rng.randrange(len(content)) for _ in range(flips)]
            for spot in spots:
                content[spot] ^= 1 << rng.randrange(8)
            open(piece, "wb").write(bytes(content))
            truth = truly_damaged(cache, copy)
            maps_truth = truly_damaged(cache, copy, columns=False)
            result = subprocess.run([INCEPT, "verify", copy], capture_output=True, text=True,
                                    errors="replace")
            listed = {int(line.split("\t")[0]) for line in result.stdout.splitlines()[1:] if line}
            if result.returncode not in (0, 1):
                unreadable += 1
            missed_here = maps_truth - listed
            missed += len(missed_here)
            records_missed += len(truth - maps_truth - listed)
            found += len(truth & listed)
            false_alarms += len(listed - truth)
            line = (f"trial {trial}: {len(maps_truth)} maps damaged, "
                    f"{len(truth - maps_truth)} rows' piece records, verify listed {len(listed)} "
                    f"(exit {result.returncode}), missed {len(missed_here)} maps")
            if result.returncode not in (0, 1):
                line += f": {(result.stderr.strip().splitlines() or ['(no message)'])[-1]}"
            keep = os.environ.get("KEEP_FAILED")
            if keep and (missed_here or listed - truth or result.returncode not in (0, 1)):
                shutil.copytree(folder, os.path.join(keep, f"trial-{trial}"))
            if repair and (truth or listed or result.returncode == 1):
                command = [INCEPT, "verify", copy, "--repair"] + (["--model", model] if model else [])
                command += ["--data", data] if data else []
                fixed = subprocess.run(command, capture_output=True, text=True, errors="replace")
                same = fixed.returncode == 0 and not truly_damaged(cache, copy) and \
                    rows_of(copy) == rows_of(cache)
                repaired_equal += same
                line += f"; repair exit {fixed.returncode}, equal to clean: {same}"
            print(line, flush=True)
    print(f"total: {found} damaged rows found, {missed} rows with damaged maps missed, "
          f"{records_missed} rows whose piece record alone changed not listed, {false_alarms} "
          f"listed but unchanged, {unreadable} verify runs that stopped with an error"
          + (f", {repaired_equal} repairs equal to clean" if repair else ""))


if __name__ == "__main__":
    main()
