"""Pooling screen: how far a logistic regression gets on other poolings of a cache's maps.

A screen before building a head that pools differently, on the protocol of
`scripts/linear_probe.py` (its held-out photos and test-time averaging over each photo's
variants): global average pooling, average and max side by side, a 2×2 grid of averages, and
second-order ("bilinear") pooling — each position's channels, square-rooted and projected on the
first D principal components of the training photos' positions, multiplied by themselves and
averaged over the positions (the D×D Gram matrix's upper triangle), then signed square root and
unit L2 norm, as in compact bilinear pooling for fine-grained recognition. Not part of the tool
or its tests; it needs numpy, h5py and scikit-learn (see linear_probe.py):

    /tmp/probe/bin/python scripts/probe_pooling.py features/amid5-mixed_7.h5 runs/demo-bilinear --dimensions 128

With --matrix-sqrt it also screens matrix square-root normalisation of the Gram matrix (its
eigenvalues square-rooted, as in "improved bilinear pooling"), alone and followed by the signed
square root, instead of the element-wise signed square root alone.

Prints one line per (pooling, inverse regularisation C): accuracy with the softmax averaged over
all of a photo's variants (TTA), and on variant 0 alone.
"""

import argparse
import csv

import h5py
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

# The yardstick's scoring, from the script beside this one.
from linear_probe import held_out_accuracy

# Samples read at a time: 250 maps of 12×12×768 float32 are 442 MB.
CHUNK = 250
# Training originals whose positions the principal components are computed from.
PCA_PHOTOS = 300


def projection(maps, rows, dimensions):
    """Mean [C] and the first `dimensions` principal directions [C, D] of square-rooted positions."""
    channels = maps.shape[-1]
    positions = np.concatenate([np.sqrt(maps[i]).reshape(-1, channels) for i in rows])
    mean = positions.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov(positions - mean, rowvar=False))
    return mean, vectors[:, ::-1][:, :dimensions].astype(np.float32)


def gram(block, mean, directions):
    """The D×D Gram matrices [n, D, D] of maps [n, H, W, C] projected on the directions."""
    n, height, width, channels = block.shape
    projected = (np.sqrt(block).reshape(n, height * width, channels) - mean) @ directions
    return np.einsum("npi,npj->nij", projected, projected) / (height * width)


def upper_normalised(matrices, signed_sqrt=True):
    """Upper triangles [n, D·(D+1)/2] of [n, D, D], optionally signed-square-rooted, unit L2."""
    upper = np.triu_indices(matrices.shape[1])
    pooled = matrices[:, upper[0], upper[1]].astype(np.float32)
    if signed_sqrt:
        pooled = np.sign(pooled) * np.sqrt(np.abs(pooled))
    return pooled / (np.linalg.norm(pooled, axis=1, keepdims=True) + 1e-12)


def matrix_sqrt(matrices):
    """Square roots of symmetric positive semi-definite matrices [n, D, D]."""
    values, vectors = np.linalg.eigh(matrices.astype(np.float64))
    return (vectors * np.sqrt(np.maximum(values, 0.0))[:, None, :]) @ vectors.transpose(0, 2, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cache", help="feature cache made by incept extract")
    parser.add_argument("run_dir", help="a run on that cache: its predictions.csv gives the held-out photos")
    parser.add_argument("--dimensions", type=int, default=128, help="principal components kept before bilinear pooling")
    parser.add_argument("--matrix-sqrt", action="store_true", help="also screen matrix square-root normalisation")
    args = parser.parse_args()

    with h5py.File(args.cache, "r") as cache:
        maps = cache["features"]  # [N, H, W, C]
        count, height, width, channels = maps.shape
        labels, source, variant = cache["labels"][:], cache["source"][:], cache["variant"][:]
        sources = [s.decode() if isinstance(s, bytes) else s for s in cache["sources"][:]]
        with open(f"{args.run_dir}/predictions.csv", newline="") as file:
            held_out = {row["source"] for row in csv.DictReader(file)}
        is_validation = np.array([sources[s] in held_out for s in source])
        originals = np.where(~is_validation & (variant == 0))[0]
        pca_rows = originals[:: max(1, len(originals) // PCA_PHOTOS)][:PCA_PHOTOS]
        mean, directions = projection(maps, pca_rows, args.dimensions)
        half_height, half_width = height // 2, width // 2
        pooled = {"gap": [], "max": [], "grid2x2": [], "bilinear": [], "msqrt": [], "msqrt+ssqrt": []}
        for start in range(0, count, CHUNK):
            block = maps[start : start + CHUNK]
            pooled["gap"].append(block.mean(axis=(1, 2)))
            pooled["max"].append(block.max(axis=(1, 2)))
            quarters = [
                block[:, rows, columns].mean(axis=(1, 2))
                for rows in (slice(0, half_height), slice(half_height, None))
                for columns in (slice(0, half_width), slice(half_width, None))
            ]
            pooled["grid2x2"].append(np.concatenate(quarters, axis=1))
            matrices = gram(block, mean, directions)
            pooled["bilinear"].append(upper_normalised(matrices))
            if args.matrix_sqrt:
                roots = matrix_sqrt(matrices)
                pooled["msqrt"].append(upper_normalised(roots, signed_sqrt=False))
                pooled["msqrt+ssqrt"].append(upper_normalised(roots))
    pooled = {name: np.concatenate(parts) for name, parts in pooled.items() if parts}
    photos = np.unique(source[is_validation])
    print(f"{len(photos)} held-out photos, {int((~is_validation).sum())} training samples")

    root = lambda values: np.sqrt(np.maximum(values, 0.0))  # noqa: E731
    bilinear_name = f"bilinear{args.dimensions}"
    screens = [
        ("gap", root(pooled["gap"]), (0.003, 0.01)),
        ("gap+max", np.concatenate([root(pooled["gap"]), root(pooled["max"])], axis=1), (0.003, 0.01)),
        ("gap+grid2x2", np.concatenate([root(pooled["gap"]), root(pooled["grid2x2"])], axis=1), (0.001, 0.003)),
        (bilinear_name, pooled["bilinear"], (0.001, 0.003, 0.01)),
        (f"gap+{bilinear_name}", np.concatenate([root(pooled["gap"]), pooled["bilinear"]], axis=1), (0.001, 0.003)),
    ]
    if args.matrix_sqrt:
        screens += [
            (f"{bilinear_name}-msqrt", pooled["msqrt"], (0.001, 0.003)),
            (f"{bilinear_name}-msqrt+ssqrt", pooled["msqrt+ssqrt"], (0.001, 0.003)),
        ]
    for name, features, strengths in screens:
        scaled = StandardScaler().fit(features[~is_validation]).transform(features)
        for c in strengths:
            model = LogisticRegression(C=c, max_iter=2000).fit(scaled[~is_validation], labels[~is_validation])
            tta, original = held_out_accuracy(
                model.predict_proba(scaled), labels, source, variant, is_validation, photos
            )
            print(f"{name:16} C={c:<6} accuracy (TTA) {tta:.3f}  variant 0 only {original:.3f}")


if __name__ == "__main__":
    main()
