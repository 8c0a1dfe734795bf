"""Learning curve of a rare class: its recall as it gets more training photos.

Where a class's recall is low, is it the training or the photos? This trains a class-weighted
logistic regression (the yardstick of docs/BENCHMARKS.md, "A real collection") on a cache's
averaged maps, on the training photos of a run's own split (read from its predictions.csv), with
only a fraction of one class's training photos kept (drawn at random, per seed; every other class
keeps all of its own), and prints that class's recall on the run's validation photos with its
Wilson 95 % interval. A recall still climbing at fraction 1 says more photos would help; a flat
one, that they would not. Not part of the tool or its tests; it needs numpy, h5py and
scikit-learn:

    python3 -m venv /tmp/probe && /tmp/probe/bin/pip install numpy h5py scikit-learn
    /tmp/probe/bin/python scripts/learning_curve.py features/amid-mixed_7.h5 runs/amid \
        --classes Aedes_japonicus,Aedes_aegypti --fractions 0.25,0.5,1 --seeds 0,1

Variant 0 only (one view a photo), so a `--copies 0` cache is all it needs.
"""

import argparse
import csv
import os
import sys

import h5py
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from linear_probe import pooled_features  # noqa: E402
from mislabel import wilson  # noqa: E402

# Inverse L2 strength: the best of 0.003, 0.01 and 0.1 for amid5 in scripts/linear_probe.py.
INVERSE_REGULARISATION = 0.01


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cache", help="feature cache made by incept extract")
    parser.add_argument("run_dir", help="a run on that cache: its predictions.csv gives the validation photos")
    parser.add_argument("--classes", required=True, help="class names to thin, comma-separated")
    parser.add_argument("--fractions", default="0.25,0.5,1", help="fractions of the class's training photos")
    parser.add_argument("--seeds", default="0,1", help="seeds of the draws, comma-separated")
    args = parser.parse_args()

    pooled, labels, source, variant, sources = pooled_features(args.cache)
    classes = class_names(args.cache)
    originals = variant == 0
    pooled, labels, source = pooled[originals], labels[originals], source[originals]
    with open(f"{args.run_dir}/predictions.csv", newline="") as file:
        held_out = {row["source"] for row in csv.DictReader(file)}
    is_validation = np.array([sources[s] in held_out for s in source])
    scaled = StandardScaler().fit(pooled[~is_validation]).transform(pooled)
    train_rows = np.flatnonzero(~is_validation)
    print(f"{len(train_rows)} training photos, {int(is_validation.sum())} validation photos")

    for name in args.classes.split(","):
        if name not in classes:
            sys.exit(f"{args.cache}: no class {name!r}; its classes: {', '.join(classes)}")
        label = classes.index(name)
        own = train_rows[labels[train_rows] == label]
        others = train_rows[labels[train_rows] != label]
        validation = is_validation & (labels == label)
        print(f"{name}: {len(own)} training photos, {int(validation.sum())} validation photos")
        for fraction in (float(v) for v in args.fractions.split(",")):
            # A draw of the full class is the same whatever the seed: one fit.
            seeds = [0] if fraction >= 1.0 else [int(v) for v in args.seeds.split(",")]
            for seed in seeds:
                kept = np.random.default_rng(seed).permutation(own)[: max(1, round(fraction * len(own)))]
                rows = np.concatenate([others, kept])
                model = LogisticRegression(
                    C=INVERSE_REGULARISATION, class_weight="balanced", max_iter=1000
                )
                model.fit(scaled[rows], labels[rows])
                predicted = model.predict(scaled[validation])
                found = int((predicted == label).sum())
                total = int(validation.sum())
                low, high = wilson(found, total)
                print(
                    f"  fraction {fraction:<5} seed {seed}: {len(kept):5} photos to train on, "
                    f"recall {found}/{total} = {found / total:.3f} (95 % interval {low:.3f}-{high:.3f})"
                )


def class_names(path):
    """The cache's class names, in label order."""
    with h5py.File(path, "r") as cache:
        return list(cache["classes"].asstr()[:])


if __name__ == "__main__":
    main()
