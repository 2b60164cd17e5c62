"""A representative part of the ONNX conformance sweep (tools/onnx_suite.py, `make onnx-suite`):
suite models that gave exit 1, shapes the blob reader got wrong, or numbers that differed from the
suite's expected output, each converted by the real pipeline with the suite's inputs and its IR's
outputs compared with the suite's."""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from conftest import run_cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import onnx_suite

# suite model -> (outcome, what its row must say); each was an exit 1, a false refusal or wrong numbers.
CASES = {
    # exit 1: ONNX Runtime has no opset-6 kernels ("Could not find an implementation for AveragePool(1)").
    "pytorch-converted/test_AvgPool1d": ("converted", ""),
    "pytorch-converted/test_BatchNorm1d_3d_input_eval": ("converted", ""),
    # PRelu-6 took a [C] slope per channel; opset 7 broadcasts it from the last axis (was exit 12).
    "pytorch-converted/test_PReLU_1d_multiparam": ("converted", ""),
    "pytorch-operator/test_operator_mm": ("converted", ""),  # opset 6 with a Constant node
    # the input feeding an output directly lost its name (KeyError('x') in the check).
    "node/test_identity": ("converted", ""),
    "node/test_dropout_default": ("converted", ""),
    # exit 1 KeyError('axes'): now one line naming the input and what to change.
    "node/test_reduce_mean_keepdims_random": (
        "refused",
        "exit 12, ir: the model's input 'axes' gives ReduceMean's axes",
    ),
    # 5-D read as DNCHW; a 6-D order called malformed.
    "node/test_averagepool_3d_default": ("converted", ""),
    "pytorch-operator/test_operator_permute2": ("converted", ""),
    # numbers that differed: Gather-8 -> Gather-7 on negative run-time indices, MaxPool ceil one too
    # big, AveragePool-19's dilations dropped.
    "node/test_gather_negative_indices": ("converted", "Gather-8 -> Gather-7"),
    "node/test_maxpool_2d_ceil_output_size_reduce_by_one": ("converted", "MaxPool ceil mode -> end padding"),
    "node/test_averagepool_2d_dilations": ("converted", "AveragePool with dilations -> depthwise Conv"),
    # exit 1 in the check's reference: an int16 input fed as float, no ONNX Runtime kernel for Pow with
    # a uint32 exponent (ONNX's reference evaluator now), an optional input's element type (KeyError(0)).
    "node/test_equal_int16": ("converted", ""),
    "node/test_pow_types_float32_uint32": ("converted", ""),
    "node/test_optional_has_element_tensor_input": (
        "refused",
        "exit 12, ir: the model's 'optional_input' is an optional",
    ),
    # batch 2, 4-D and 5-D: exit 14, the plugin's batch detection compiled batch 1; now the whole batch.
    "pytorch-converted/test_Conv2d": ("converted", ""),
    "pytorch-converted/test_MaxPool3d": ("converted", ""),
    # refused although ONNX's own decomposition converts: Mish-18, GroupNormalization, RMSNormalization
    # (exit 12, no front end reads them), a >= b / a <= b (exit 13 on OpenVINO's LogicalOr).
    "node/test_mish": ("converted", "op without a front end -> ONNX's function body for it"),
    "node/test_group_normalization_example": ("converted", "op without a front end -> ONNX's function body"),
    "node/test_rms_normalization_2d_axis1": ("converted", "op without a front end -> ONNX's function body"),
    "node/test_greater_equal_bcast": ("converted", "GreaterOrEqual -> Not(Less)"),
    "node/test_less_equal": ("converted", "LessOrEqual -> Not(Greater)"),
    "node/test_argmax_keepdims_random_select_last_index": ("converted", "ArgMax select_last_index -> "),
    "node/test_lppool_2d_pads": ("converted", "LpPool -> AveragePool of |x|^p"),
    "node/test_asinh_example": ("converted", "Asinh -> Exp/Log/Sqrt"),
    # an input name with "/" (gpu_0/data_0) as --sample name=PATH.
    "light/light_resnet50": ("converted", ""),
}


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    work = tmp_path_factory.mktemp("suite")
    suites = sorted({name.split("/")[0] for name in CASES})
    names = [name.split("/")[1] for name in CASES]
    return {m.name: m for m in onnx_suite.suite_models(suites, names, work) if m.name in CASES}, work


@pytest.mark.parametrize("name", CASES)
def test_suite_model(suite, name):
    models, work = suite
    outcome, detail = CASES[name]
    row = onnx_suite.run_model(models[name], work, timeout=300)
    assert row["outcome"] == outcome, row
    assert detail in row["detail"], row


def _scalar_model(path: Path, ir_version: int) -> Path:
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["y"], keepdims=0)],
        "sum",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = ir_version
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("ir_version", [8, 14])
def test_a_scalar_output_of_any_ir_version_converts(tmp_path, ir_version):
    # A rank-0 output came back from the blob as [1, 1, 1, 1] and was refused (exit 14); an IR
    # version 14 file (onnx 1.23's helpers write it) was exit 1 in ONNX Runtime.
    model = _scalar_model(tmp_path / "sum.onnx", ir_version)
    result = run_cli("convert", "--input", model, "--output", tmp_path / "sum.blob", "--no-cache")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "sum.blob.report.json").read_text())
    assert report["ir"]["outputs"][0]["shape"] == [] and report["numeric"]["outputs_passed"]


def test_each_input_takes_its_own_sample(tmp_path):
    # Two inputs, each with its --sample name=PATH; the check's input names both.
    graph = helper.make_graph(
        [helper.make_node("Sub", ["a", "b"], ["y"])],
        "sub",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4, 8, 8]) for n in ("a", "b")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "sub.onnx"))
    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        np.save(tmp_path / f"{name}.npy", rng.standard_normal((1, 4, 8, 8)).astype(np.float32))
    result = run_cli(
        "convert",
        "--input",
        tmp_path / "sub.onnx",
        "--output",
        tmp_path / "sub.blob",
        "--sample",
        f"b={tmp_path / 'b.npy'}",
        "--sample",
        tmp_path / "a.npy",
        "--no-cache",
    )
    assert result.returncode == 0, result.stderr
    numeric = json.loads((tmp_path / "sub.blob.report.json").read_text())["numeric"]
    assert numeric["outputs_passed"] and numeric["input"] == f"{tmp_path / 'a.npy'}, b={tmp_path / 'b.npy'}"
    wrong = run_cli(
        "convert",
        "--input",
        tmp_path / "sub.onnx",
        "--output",
        tmp_path / "x.blob",
        "--sample",
        f"c={tmp_path / 'b.npy'}",
    )
    assert wrong.returncode == 14 and "the model has no input 'c' (its inputs: a, b)" in wrong.stderr


@pytest.mark.unit
def test_sample_values_name_their_input(tmp_path):
    from myriad_blob.options import parse_options

    existing = tmp_path / "a=b.npy"  # a path that holds "=" is still a path
    existing.write_bytes(b"")
    options = parse_options(input=tmp_path / "m.onnx", sample=["first.npy", "gpu_0/data_0=/data/x.npy"])
    assert options.sample == Path("first.npy") and options.sample_by_name == {"gpu_0/data_0": Path("/data/x.npy")}
    assert parse_options(input=tmp_path / "m.onnx", sample=[str(existing)]).sample == existing
    with pytest.raises(ValueError, match="given twice for the first input"):
        parse_options(input=tmp_path / "m.onnx", sample=["a.npy", "b.npy"])
    with pytest.raises(ValueError, match="given twice for 'x'"):
        parse_options(input=tmp_path / "m.onnx", sample=["x=a.npy", "x=b.npy"])
