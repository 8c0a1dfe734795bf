"""Linear probe: how far a logistic regression on a cache's pooled features gets.

A yardstick for the heads `incept train-head` trains: the same held-out photos (read from a run
folder's predictions.csv, so the split is the run's own), the same test-time averaging over each
photo's variants. Not part of the tool or its tests; it needs numpy, h5py and scikit-learn:

    python3 -m venv /tmp/probe && /tmp/probe/bin/pip install numpy h5py scikit-learn
    /tmp/probe/bin/python scripts/linear_probe.py features/amid5.h5 runs/demo

Prints one line per (feature transform, inverse regularisation C): accuracy over the held-out
photos with the softmax averaged over all of a photo's variants (TTA), and on variant 0 alone.
"""

import argparse
import csv

import h5py
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

# Samples read at a time: 500 maps of 5×5×2048 float32 are 205 MB.
CHUNK = 500


def pooled_features(path):
    """Global average pooled maps [N, C] and the labels, photo index and variant of each sample."""
    with h5py.File(path, "r") as cache:
        maps = cache["features"]  # [N, H, W, C]
        pooled = np.concatenate(
            [maps[i : i + CHUNK].mean(axis=(1, 2)) for i in range(0, maps.shape[0], CHUNK)]
        )
        sources = [s.decode() if isinstance(s, bytes) else s for s in cache["sources"][:]]
        return (
            pooled,
            cache["labels"][:],
            cache["source"][:],
            cache["variant"][:],
            sources,
        )


def held_out_accuracy(probabilities, labels, source, variant, is_validation, photos):
    """Accuracy over the held-out photos: the softmax averaged over each photo's variants (TTA),
    and of variant 0 alone."""
    tta = original = 0
    for photo in photos:
        rows = is_validation & (source == photo)
        label = labels[rows][0]
        tta += probabilities[rows].mean(axis=0).argmax() == label
        original += probabilities[rows & (variant == 0)][0].argmax() == label
    return tta / len(photos), original / len(photos)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cache", help="feature cache made by incept extract")
    parser.add_argument("run_dir", help="a run on that cache: its predictions.csv gives the held-out photos")
    parser.add_argument("--C", default="0.003,0.01,0.1", help="inverse L2 strengths, comma-separated")
    args = parser.parse_args()

    pooled, labels, source, variant, sources = pooled_features(args.cache)
    with open(f"{args.run_dir}/predictions.csv", newline="") as file:
        held_out = {row["source"] for row in csv.DictReader(file)}
    is_validation = np.array([sources[s] in held_out for s in source])
    photos = np.unique(source[is_validation])
    print(f"{len(photos)} held-out photos, {int((~is_validation).sum())} training samples")

    transforms = {"raw": pooled, "sqrt": np.sqrt(np.maximum(pooled, 0.0))}
    for name, features in transforms.items():
        scaled = StandardScaler().fit(features[~is_validation]).transform(features)
        for c in (float(v) for v in args.C.split(",")):
            model = LogisticRegression(C=c, max_iter=500)
            model.fit(scaled[~is_validation], labels[~is_validation])
            tta, original = held_out_accuracy(
                model.predict_proba(scaled), labels, source, variant, is_validation, photos
            )
            print(f"{name:5} C={c:<6} accuracy (TTA) {tta:.3f}  variant 0 only {original:.3f}")


if __name__ == "__main__":
    main()
