#!/usr/bin/env python3
"""Compare two incept feature caches sample by sample.

    python3 scripts/compare_caches.py A.h5 B.h5 [--block N]

Samples are matched by (source path, variant), not by row: a merged sharded cache and a
plain one may order their rows differently. Checks that both hold the same keys, that each key
has the same class name, and that the feature maps are exactly equal (NaN equals NaN). Prints
details of what differs on stderr and a one-line summary on stdout; exits 0 when the caches
hold the same data, 1 when they differ, 2 when a file cannot be read as a cache.
`features` may be an HDF5 virtual dataset (what `incept merge` writes): its source files must
be where it says, else HDF5 would read fill values; a missing one is reported as an error.
Needs h5py and numpy (PYTHONPATH=.deps/python after scripts/setup.sh).
"""

import argparse
import os
import sys

import h5py
import numpy as np

DETAILS = 5  # examples printed per kind of difference


class NotACache(Exception):
    pass


def strings(file, name):
    if name not in file:
        raise NotACache(f"{file.filename}: no `{name}` dataset")
    return [s if isinstance(s, str) else s.decode("utf-8") for s in file[name][()]]


def check_virtual_sources(file, dataset):
    """The source files of a virtual dataset that do not exist (HDF5 would read zeros)."""
    if not dataset.is_virtual:
        return []
    here = os.path.dirname(os.path.abspath(file.filename))
    missing = []
    for source in {m.file_name for m in dataset.virtual_sources()}:
        if source == ".":  # the file itself
            continue
        candidates = [source] if os.path.isabs(source) else [os.path.join(here, source), source]
        if not any(os.path.exists(c) for c in candidates):
            missing.append(source)
    return sorted(missing)


def read_index(path):
    """Open a cache: (file, features, {(source, variant): row}, [class name per row])."""
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise NotACache(f"{path}: cannot open as HDF5 ({error})") from error
    for name in ("features", "labels", "source", "variant"):
        if name not in file:
            raise NotACache(f"{path}: no `{name}` dataset; not an incept cache")
    classes, sources = strings(file, "classes"), strings(file, "sources")
    labels, source, variant = (file[n][()].astype(np.int64) for n in ("labels", "source", "variant"))
    features = file["features"]
    n = features.shape[0]
    if not len(labels) == len(source) == len(variant) == n:
        raise NotACache(f"{path}: features has {n} rows but labels/source/variant have "
                        f"{len(labels)}/{len(source)}/{len(variant)}")
    missing = check_virtual_sources(file, features)
    if missing:
        raise NotACache(f"{path}: `features` is a virtual dataset whose source files are "
                        f"missing: {', '.join(missing[:DETAILS])}")
    index = {}
    duplicates = []
    for row in range(n):
        key = (sources[source[row]], int(variant[row]))
        if key in index:
            duplicates.append(key)
        index[key] = row
    class_names = [classes[label] for label in labels]
    return file, features, index, class_names, duplicates


def read_rows(dataset, rows):
    """dataset[rows] for any order of distinct rows, reading a contiguous slice when it is one."""
    rows = np.asarray(rows)
    if len(rows) == 0:
        return np.empty((0,) + dataset.shape[1:], dataset.dtype)
    if np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows))):
        return dataset[rows[0]:rows[0] + len(rows)]
    order = np.argsort(rows)
    data = dataset[rows[order]]  # h5py wants increasing indices
    out = np.empty_like(data)
    out[order] = data
    return out


def key_name(key):
    return f"{key[0]} (variant {key[1]})"


def compare(path_a, path_b, block):
    problems = []

    def detail(message):
        print(message, file=sys.stderr)

    file_a, feat_a, index_a, class_a, dup_a = read_index(path_a)
    file_b, feat_b, index_b, class_b, dup_b = read_index(path_b)
    for path, dups in ((path_a, dup_a), (path_b, dup_b)):
        if dups:
            problems.append(f"{len(dups)} duplicate keys in {os.path.basename(path)}")
            for key in dups[:DETAILS]:
                detail(f"  duplicate in {path}: {key_name(key)}")

    only_a = sorted(index_a.keys() - index_b.keys())
    only_b = sorted(index_b.keys() - index_a.keys())
    for path, only in ((path_a, only_a), (path_b, only_b)):
        if only:
            problems.append(f"{len(only)} keys only in {os.path.basename(path)}")
            for key in only[:DETAILS]:
                detail(f"  only in {path}: {key_name(key)}")

    # Common keys in A's row order, so A is read in contiguous blocks.
    common = sorted(index_a.keys() & index_b.keys(), key=index_a.get)
    wrong_class = [k for k in common if class_a[index_a[k]] != class_b[index_b[k]]]
    if wrong_class:
        problems.append(f"{len(wrong_class)} keys with another class")
        for key in wrong_class[:DETAILS]:
            detail(f"  class of {key_name(key)}: {class_a[index_a[key]]} vs {class_b[index_b[key]]}")

    shape_a, shape_b = feat_a.shape[1:], feat_b.shape[1:]
    if feat_a.dtype != feat_b.dtype:
        problems.append(f"features dtype {feat_a.dtype} vs {feat_b.dtype}")
    mismatched, largest, first = 0, 0.0, None
    if shape_a != shape_b:
        problems.append(f"feature map shape {list(shape_a)} vs {list(shape_b)}")
    else:
        for start in range(0, len(common), block):
            keys = common[start:start + block]
            a = read_rows(feat_a, [index_a[k] for k in keys])
            b = read_rows(feat_b, [index_b[k] for k in keys])
            for i, key in enumerate(keys):
                if np.array_equal(a[i], b[i], equal_nan=True):
                    continue
                mismatched += 1
                x, y = a[i].astype(np.float64), b[i].astype(np.float64)
                # A NaN facing a number counts as an infinite difference.
                diff = np.where(np.isnan(x) & np.isnan(y), 0.0, np.abs(x - y))
                largest = max(largest, float(np.max(np.nan_to_num(diff, nan=np.inf))))
                if first is None:
                    first = key
        if mismatched:
            problems.append(f"{mismatched} of {len(common)} feature maps differ "
                            f"(largest |a-b| {largest:.6g}, first {key_name(first)})")

    summary = (f"{len(common)} common samples, {len(set(class_a))} classes, "
               f"features {list(shape_a)} {feat_a.dtype}")
    file_a.close()
    file_b.close()
    if problems:
        print(f"DIFFERENT: {'; '.join(problems)} [{summary}]")
        return 1
    print(f"SAME: {summary}; classes and feature maps identical")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="first cache (HDF5)")
    parser.add_argument("b", help="second cache (HDF5)")
    parser.add_argument("--block", type=int, default=256,
                        help="samples read at once from each file (bounds memory)")
    args = parser.parse_args()
    try:
        return compare(args.a, args.b, max(1, args.block))
    except NotACache as error:
        print(f"compare_caches: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
