"""Issue #28: tensors of every rank the Myriad X takes (1-D to 5-D inputs and outputs, scalar
outputs), read back from the blob's header by their dims order; non-image inputs FP16 by default
(the report says each input's precision and why); batch > 1 where the plugin compiles it.

Each model is a few ONNX nodes, converted for real (--strict: the numbers must match)."""

import json
import tarfile

import depthai as dai
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import run_cli
from myriad_blob.blob import parse_blob
from myriad_blob.errors import EXIT_CODES, Stage
from test_convert import DEPTHAI_TYPES


def _onnx(path, in_shape, nodes, out_shape, initializers=()):
    graph = helper.make_graph(
        nodes,
        path.stem,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _affine(path, shape):
    """y = 1.5 x + 0.25, elementwise: any rank in, the same rank out (a fraction U8 would lose)."""
    constants = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("a", 1.5), ("b", 0.25))]
    nodes = [helper.make_node("Mul", ["x", "a"], ["t"]), helper.make_node("Add", ["t", "b"], ["y"])]
    return _onnx(path, shape, nodes, shape, constants)


def _reshape(path, in_shape, out_shape):
    """y = 2 * reshape(x): one rank in, another out."""
    constants = [
        numpy_helper.from_array(np.array(out_shape, np.int64), "shape"),
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
    ]
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["t"]), helper.make_node("Mul", ["t", "two"], ["y"])]
    return _onnx(path, in_shape, nodes, out_shape, constants)


def _convert(model, *flags):
    blob = model.with_suffix(".blob")
    result = run_cli("convert", "--input", model, "--output", blob, "--strict", *flags)
    report_path = blob.with_name(blob.name + ".report.json")
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    return result, blob, report


def _depthai_agrees(blob):
    """depthai reads the dims (innermost first) and types our reader reads; it has no name for a
    5-D order (NCDHW), which our reader names from the order's digits."""
    ours = parse_blob(blob.read_bytes())
    theirs = dai.OpenVINO.Blob(str(blob))
    for our_tensors, their_tensors in ((ours.inputs, theirs.networkInputs), (ours.outputs, theirs.networkOutputs)):
        for tensor in our_tensors:
            assert list(tensor.raw_dims) == list(their_tensors[tensor.name].dims)
            assert list(tensor.raw_dims) == list(reversed(tensor.shape))  # planar: innermost last in the shape
            assert DEPTHAI_TYPES[tensor.data_type] == their_tensors[tensor.name].dataType.name
    return ours


# Every rank as input and output (the blob's header: shape in the IR's order, dims order); the
# non-image inputs are FP16 without --input-type, the 4-D 3-channel image U8.
RANKS = {
    "1-D": ([7], "C", "FP16"),
    "2-D": ([1, 5], "NC", "FP16"),
    "2-D, first dim 3": ([3, 5], "NC", "FP16"),
    "3-D": ([1, 3, 5], "CHW", "FP16"),
    "3-D, first dim 2": ([2, 3, 5], "CHW", "FP16"),
    "4-D image": ([1, 3, 8, 8], "NCHW", "U8"),
    # a channels-last image (tf2onnx's [N, H, W, 3]) stays U8, as before non-image inputs became FP16 (review)
    "4-D image, channels last": ([1, 16, 16, 3], "NCHW", "U8"),
    "4-D, 5 channels": ([1, 5, 4, 6], "NCHW", "FP16"),
    "5-D": ([1, 2, 3, 4, 5], "NCDHW", "FP16"),
}


@pytest.mark.parametrize("rank", RANKS)
def test_each_rank_converts_as_input_and_output_and_reads_back(rank, tmp_path):
    shape, order, precision = RANKS[rank]
    result, blob, report = _convert(_affine(tmp_path / "m.onnx", shape))
    assert result.returncode == 0, result.stderr
    info = _depthai_agrees(blob)
    assert [(t.shape, t.order, t.data_type) for t in info.inputs] == [(tuple(shape), order, precision)]
    assert [(t.shape, t.order) for t in info.outputs] == [(tuple(shape), order)]
    assert report["verdict"]["result"] == "passed", report["verdict"]


@pytest.mark.parametrize(
    "in_shape, out_shape",
    [([1, 2, 3, 4, 5], [1, 120]), ([1, 120], [1, 2, 3, 4, 5]), ([1, 2, 6, 10], [120])],
    ids=["5-D to 2-D", "2-D to 5-D", "4-D to 1-D"],
)
def test_a_rank_in_and_another_out(in_shape, out_shape, tmp_path):
    result, blob, report = _convert(_reshape(tmp_path / "m.onnx", in_shape, out_shape))
    assert result.returncode == 0, result.stderr
    info = _depthai_agrees(blob)
    assert (info.inputs[0].shape, info.outputs[0].shape) == (tuple(in_shape), tuple(out_shape))
    assert report["verdict"]["result"] == "passed", report["verdict"]


def test_a_scalar_output_converts_and_is_compared(tmp_path):
    """A rank-0 output (a sum of everything): the blob holds it as [1, 1, 1, 1], the same one value."""
    path = _onnx(tmp_path / "m.onnx", [1, 3, 5], [helper.make_node("ReduceSum", ["x"], ["y"], keepdims=0)], [])
    result, blob, report = _convert(path)
    assert result.returncode == 0, result.stderr
    info = _depthai_agrees(blob)
    assert info.outputs[0].shape == (1, 1, 1, 1)
    assert report["numeric"]["outputs"][0]["shape"] == [] and report["numeric"]["passed"]


def test_a_non_image_input_is_fp16_in_the_nn_archive_and_an_image_u8(tmp_path):
    """The NN Archive's dtype follows the blob's precision: a raw FP16 tensor, a U8 image frame."""
    for name, shape, dtype, kind in (("seq", [1, 4, 16], "float16", "raw"), ("img", [1, 3, 16, 16], "uint8", "image")):
        result, blob, _ = _convert(_affine(tmp_path / f"{name}.onnx", shape), "--nn-archive")
        assert result.returncode == 0, result.stderr
        with tarfile.open(blob.with_name(blob.stem + ".tar.xz")) as archive:
            config = json.load(archive.extractfile("config.json"))
        (entry,) = config["model"]["inputs"]
        assert (entry["dtype"], entry["input_type"]) == (dtype, kind)
        frames = "Camera frames: `RGB888p`" if kind == "image" else "Camera frames: none (no 3-channel image input"
        assert frames in blob.with_name(blob.name + ".report.md").read_text()


def _conv(path, shape):
    weights = np.random.default_rng(0).standard_normal((4, shape[1], *[3] * (len(shape) - 2))).astype(np.float32)
    out_shape = [shape[0], 4, *shape[2:]]
    bias = np.linspace(-1, 1, 4, dtype=np.float32)  # the 2021.4 compiler takes no 3-D convolution without one
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1] * (2 * (len(shape) - 2)))
    constants = [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")]
    return _onnx(path, shape, [node], out_shape, constants)


@pytest.mark.parametrize("shape", [[2, 3, 16, 16], [2, 3, 4, 8, 8]], ids=["4-D", "5-D"])
def test_a_batch_of_two_converts_with_the_whole_batch_in_the_blob(shape, tmp_path):
    """Was exit 14: the plugin's batch detection compiled batch 1 (its runtime, not depthai, was to
    loop). Compiled with MYRIAD_DETECT_NETWORK_BATCH=NO, the blob takes both items, numbers checked."""
    result, blob, report = _convert(_conv(tmp_path / "m.onnx", shape))
    assert result.returncode == 0, result.stderr
    info = _depthai_agrees(blob)
    assert (info.inputs[0].shape, info.outputs[0].shape) == (tuple(shape), (2, 4, *shape[2:]))
    assert report["compile_settings"]["config"] == {"MYRIAD_DETECT_NETWORK_BATCH": "NO"}
    assert report["verdict"]["result"] == "passed", report["verdict"]
    # Batch detection asked for: refused before the compile, saying what to change.
    result, _, report = _convert(tmp_path / "m.onnx", "--compile-config", "MYRIAD_DETECT_NETWORK_BATCH=YES")
    assert result.returncode == EXIT_CODES[Stage.OPTIONS], result.stderr
    line = next(line for line in result.stderr.splitlines() if line.startswith("myriad-blob:"))
    assert line.startswith("myriad-blob: options failed: --compile-config MYRIAD_DETECT_NETWORK_BATCH=YES"), line
    assert f"--input-shape 'x={[1, *shape[1:]]}'" in line
    assert report["error"]["stage"] == "options"
