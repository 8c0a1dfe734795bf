"""Runs a classifier written by `incept export` the way a user would: onnx's full checker, then
onnxruntime on photos read with Pillow. Prints one JSON object on stdout:
{"metadata": {...}, "inputs": [...], "predictions": [{"path": ..., "probabilities": [...]}]}.

Usage: check_export.py MODEL.onnx PHOTO... (PYTHONPATH=.deps/ort-python)
"""

import json
import sys

import numpy as np
import onnx
import onnxruntime
from PIL import Image, ImageOps

# The network's input side and the [-1, 1] scaling (incept's image_io constants).
INPUT_SIZE = 224
PIXEL_SCALE = 127.5


def pixels(path):
    """[224, 224, 3] uint8 RGB, as the README's example reads a photo."""
    image = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    image = image.resize((INPUT_SIZE, INPUT_SIZE), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def main():
    model_path, photos = sys.argv[1], sys.argv[2:]
    onnx.checker.check_model(onnx.load(model_path), full_check=True)
    session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    (model_input,) = session.get_inputs()
    batch = np.stack([pixels(photo) for photo in photos])  # [N, 224, 224, 3] uint8
    if model_input.type == "tensor(float)":  # `--input float`: [N, 3, 224, 224] in [-1, 1]
        batch = (batch.astype(np.float32) / PIXEL_SCALE - 1.0).transpose(0, 3, 1, 2)
    (probabilities,) = session.run(["probabilities"], {model_input.name: batch})
    print(json.dumps({
        "metadata": session.get_modelmeta().custom_metadata_map,
        "inputs": [{"name": i.name, "type": i.type, "shape": i.shape} for i in session.get_inputs()],
        "predictions": [
            {"path": photo, "probabilities": row.tolist()} for photo, row in zip(photos, probabilities)
        ],
    }))


if __name__ == "__main__":
    main()
