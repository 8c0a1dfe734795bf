#!/usr/bin/env python3
"""Writes tests/fixtures/tiny_inception.onnx: a few-KB stand-in with InceptionV3's interface.

input [N, 3, 224, 224] float32 -> features [N, 2048, 5, 5] float32, dynamic batch. It averages
44×44 patches (224 -> 5), mixes colours with a fixed 1×1 convolution to 16 channels, applies ReLU
and tiles them to 2048 channels, so features depend on the image and tests run in milliseconds.

Usage: make_fixture.py [OUTPUT]
"""

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PATCH = 44  # (224 - 44) / 44 + 1 = 5
MIXED_CHANNELS = 16
FEATURE_CHANNELS = 2048


def main() -> int:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("tests/fixtures/tiny_inception.onnx")
    rng = np.random.default_rng(20151205)
    weight = rng.normal(0, 1, (MIXED_CHANNELS, 3, 1, 1)).astype(np.float32)
    bias = rng.normal(0.2, 0.1, MIXED_CHANNELS).astype(np.float32)
    repeats = np.array([1, FEATURE_CHANNELS // MIXED_CHANNELS, 1, 1], dtype=np.int64)
    nodes = [
        helper.make_node("AveragePool", ["input"], ["pooled"], kernel_shape=[PATCH, PATCH], strides=[PATCH, PATCH]),
        helper.make_node("Conv", ["pooled", "weight", "bias"], ["mixed"]),
        helper.make_node("Relu", ["mixed"], ["activated"]),
        helper.make_node("Tile", ["activated", "repeats"], ["features"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_inception",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", FEATURE_CHANNELS, 5, 5])],
        [
            numpy_helper.from_array(weight, "weight"),
            numpy_helper.from_array(bias, "bias"),
            numpy_helper.from_array(repeats, "repeats"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(model.SerializeToString())
    print(f"wrote {output} ({output.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
