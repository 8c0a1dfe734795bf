"""Static int8 quantization of a converted backbone (`just model-int8`), and its measurements.

ONNX Runtime's `quantize_static` (QDQ, int8 per-channel weights, uint8 activations, MinMax
calibration) on the user's own photos, preprocessed exactly as incept extracts them (PIL
bilinear resize to 224×224, RGB, x / 127.5 − 1, NCHW). The quantized model keeps the float
interface ([N, 3, 224, 224] → `features`), so `incept extract --model` takes it; the cache
records its sha256, so int8 and FP32 caches never mix.

    python3 models/quantize_int8.py quantize --model models/inception_v3_mixed_9.onnx \
        --output models/inception_v3_mixed_9.int8.onnx --photos ../shared/datasets/amid5
    python3 models/quantize_int8.py compare --model models/inception_v3_mixed_9.onnx \
        --int8 models/inception_v3_mixed_9.int8.onnx --inputs ../shared/reference/inputs.npy

Needs `onnxruntime` (its Python wheel ships the quantization tool), numpy, onnx and Pillow;
`just model-int8` installs them into .deps/quantize.
"""

import argparse
import os
import random
import sys
import tempfile
import time

import numpy as np

# incept's network input: see crates/incept-extract/src/image_io.rs.
INPUT_SIZE = 224
SCALE = 127.5


def network_input(path):
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
        image = image.resize((INPUT_SIZE, INPUT_SIZE), Image.BILINEAR)
        pixels = np.asarray(image, dtype=np.float32) / SCALE - 1.0
    return pixels.transpose(2, 0, 1)  # [3, S, S]


# What incept extract decodes (crates/incept-extract/src/image_io.rs).
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")


def calibration_photos(folder, count, seed):
    """`count` readable photos of `folder` (followed through links, hidden entries skipped), drawn
    with `seed`; unreadable files are skipped with a warning, as incept extract skips them."""
    photos = []
    for root, folders, files in os.walk(folder, followlinks=True):
        folders[:] = [f for f in folders if not f.startswith(".")]
        photos += [
            os.path.join(root, f)
            for f in files
            if not f.startswith(".") and f.lower().endswith(EXTENSIONS)
        ]
    photos.sort()
    random.Random(seed).shuffle(photos)
    chosen = []
    for path in photos:
        if len(chosen) == count:
            break
        try:
            chosen.append((path, network_input(path)))
        except Exception as error:  # PIL raises several types for files it cannot read
            print(f"warning: {path}: {error}; skipped", file=sys.stderr)
    return chosen


def quantize(args):
    import onnxruntime
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    photos = calibration_photos(args.photos, args.count, args.seed)
    if not photos:
        sys.exit(f"{args.photos}: no photos to calibrate on")
    input_name = onnxruntime.InferenceSession(args.model).get_inputs()[0].name

    class Photos(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(range(0, len(photos), args.batch_size))

        def get_next(self):
            start = next(self.batches, None)
            if start is None:
                return None
            chunk = photos[start : start + args.batch_size]
            return {input_name: np.stack([tensor for _, tensor in chunk])}

    with tempfile.TemporaryDirectory() as scratch:
        prepared = os.path.join(scratch, "prepared.onnx")
        quant_pre_process(args.model, prepared)
        temporary = args.output + ".tmp"
        try:
            quantize_static(
                prepared,
                temporary,
                Photos(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                weight_type=QuantType.QInt8,
                activation_type=QuantType.QUInt8,
                calibrate_method=CalibrationMethod.MinMax,
                # 7-bit weights: without VNNI, x86's u8×s8 instructions saturate their 16-bit
                # sums (ONNX Runtime's documented advice); features drifted to cosine 0.75.
                reduce_range=args.reduce_range,
            )
        except BaseException:
            if os.path.exists(temporary):
                os.remove(temporary)
            raise
        os.replace(temporary, args.output)  # whole or not at all
    print(f"wrote {args.output}, calibrated on {len(photos)} photos of {args.photos}", file=sys.stderr)


def compare(args):
    """FP32 against int8, side by side in one run: images/s at one batch size and thread count,
    and the cosine similarity of their feature maps on the given inputs."""
    import onnxruntime

    def session(path):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = args.threads
        return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    sessions = {"fp32": session(args.model), "int8": session(args.int8)}
    inputs = np.load(args.inputs).astype(np.float32)
    name = sessions["fp32"].get_inputs()[0].name
    outputs = {k: s.run(None, {name: inputs})[0] for k, s in sessions.items()}
    a = outputs["fp32"].reshape(len(inputs), -1)
    b = outputs["int8"].reshape(len(inputs), -1)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    print(f"cosine int8 vs fp32 on {len(inputs)} inputs: min {cosine.min():.4f}, mean {cosine.mean():.4f}")
    rng = np.random.default_rng(0)
    batch = rng.uniform(-1, 1, (args.batch_size, 3, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
    rates = {}
    for _ in range(args.rounds):  # alternating, so drifts of the machine hit both
        for key, s in sessions.items():
            s.run(None, {name: batch})
            started = time.perf_counter()
            for _ in range(args.batches):
                s.run(None, {name: batch})
            rate = args.batches * args.batch_size / (time.perf_counter() - started)
            rates.setdefault(key, []).append(rate)
    for key, values in rates.items():
        print(f"{key}: {max(values):.1f} images/s (best of {args.rounds}), batch {args.batch_size}, {args.threads} threads")
    print(f"int8 / fp32: {max(rates['int8']) / max(rates['fp32']):.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    q = commands.add_parser("quantize")
    q.add_argument("--model", required=True)
    q.add_argument("--output", required=True)
    q.add_argument("--photos", required=True, help="a folder of the user's photos (any layout)")
    q.add_argument("--count", type=int, default=300, help="calibration photos")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--batch-size", type=int, default=16)
    q.add_argument("--full-range", dest="reduce_range", action="store_false",
                   help="8-bit weights (only for CPUs with VNNI)")
    c = commands.add_parser("compare")
    c.add_argument("--model", required=True)
    c.add_argument("--int8", required=True)
    c.add_argument("--inputs", required=True, help=".npy of network inputs [N, 3, 224, 224]")
    c.add_argument("--threads", type=int, default=os.cpu_count())
    c.add_argument("--batch-size", type=int, default=32)
    c.add_argument("--batches", type=int, default=4)
    c.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    quantize(args) if args.command == "quantize" else compare(args)


if __name__ == "__main__":
    main()
