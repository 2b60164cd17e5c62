"""The IR front ends, the legalization table, ONNX preparation, --output-names and --compile-timeout."""

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from conftest import SHAPE, SHAPE_ARG, run_cli
from corpus import BY_NAME, ULTRALYTICS, shape_flag
from myriad_blob.toolchain.scripts.ov2022_ir import LEGALIZATION
from test_convert import assert_depthai_agrees


def _report(blob):
    return json.loads(blob.with_name(blob.name + ".report.json").read_text())


def _one_line_error(result, stage, code):
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"myriad-blob: {stage} failed: ")
    return first


# --- Legalization: one model per rule of ov2022_ir.LEGALIZATION ---


class MaxPoolNet(nn.Module):  # torch exports MaxPool; OpenVINO 2022.3 reads it as MaxPool-8
    def forward(self, x):
        return nn.functional.max_pool2d(x, 3, 2, 1)


class SoftmaxNet(nn.Module):  # opset 13+ Softmax reads as Softmax-8 (negative axis)
    def forward(self, x):
        return torch.softmax(x, dim=-1)


class HardSigmoidNet(nn.Module):  # exported at opset 14 as ONNX HardSigmoid; Myriad has no kernel for it
    def forward(self, x):
        return nn.functional.hardsigmoid(x)


class ScalarIndexNet(nn.Module):  # x[:, 0] exports as Gather with a scalar index: Gather-8 in OpenVINO 2022.3
    def forward(self, x):
        return x[:, 1] - x[:, -1]


RULE_MODELS = {
    "MaxPool-8 -> MaxPool-1": MaxPoolNet,
    "Softmax-8 -> Softmax-1": SoftmaxNet,
    "HardSigmoid -> Clamp(alpha*x+beta)": HardSigmoidNet,
    "Gather-8 -> Gather-7": ScalarIndexNet,
}


@pytest.mark.unit
def test_every_legalization_rule_has_a_model_here():
    """A new row in the table needs its model in RULE_MODELS (and so a conversion test)."""
    assert {rule for rule, *_ in LEGALIZATION} == set(RULE_MODELS)


@pytest.mark.parametrize("rule", RULE_MODELS)
def test_legalization_rule_rewrites_and_the_blob_matches(rule, tmp_path):
    model = tmp_path / "model.pt"
    torch.jit.save(torch.jit.trace(RULE_MODELS[rule]().eval(), torch.zeros(SHAPE)), str(model))
    blob = tmp_path / "out.blob"
    result = run_cli(
        "convert",
        "--input",
        model,
        "--input-shape",
        SHAPE_ARG,
        "--output",
        blob,
        "--mean",
        "[128, 128, 128]",
        "--scale",
        "[32, 32, 32]",
        "--strict",
    )
    assert result.returncode == 0, result.stderr
    report = _report(blob)
    assert report["ir"]["frontend"] == "ov2022"
    assert {r["rule"]: r["layers"] for r in report["ir"]["rewrites"]}[rule] >= 1
    assert report["numeric"]["passed"]
    info = assert_depthai_agrees(blob)
    assert [t.name for t in info.outputs] == ["output"]  # the rewritten layer kept the model's name


# --- Front ends ---


def test_model_optimizer_front_end_on_request(model_files, tmp_path):
    blob = tmp_path / "mo.blob"
    result = run_cli("convert", "--input", model_files["onnx"], "--output", blob, "--frontend", "mo2021")
    assert result.returncode == 0, result.stderr
    report = _report(blob)
    assert report["ir"]["frontend"] == "mo2021" and report["ir"]["frontend_fallback"] is None
    assert report["stages"][2]["tools"]["frontend"] == "Model Optimizer 2021.4"
    assert report["numeric"]["passed"]
    assert_depthai_agrees(blob)


def _layer_norm_with_mean_output(path):
    """LayerNormalization whose Mean output is used: not decomposed, and OpenVINO 2022.3 segfaults on it."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in ("y", "mean")]
    weights = [
        helper.make_tensor("scale", TensorProto.FLOAT, [8], np.ones(8, np.float32)),
        helper.make_tensor("bias", TensorProto.FLOAT, [8], np.zeros(8, np.float32)),
    ]
    node = helper.make_node("LayerNormalization", ["x", "scale", "bias"], ["y", "mean"], axis=-1, name="ln")
    graph = helper.make_graph([node], "ln", [x], outputs, weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def test_a_front_end_crash_is_one_line_at_the_ir_stage(tmp_path):
    model = _layer_norm_with_mean_output(tmp_path / "ln.onnx")
    blob = tmp_path / "out" / "ln.blob"
    first = _one_line_error(run_cli("convert", "--input", model, "--output", blob, "--frontend", "ov2022"), "ir", 12)
    assert "OpenVINO 2022.3 crashed (SIGSEGV) while reading the model" in first
    assert not blob.exists() and _report(blob)["stages"][2]["status"] == "failed"

    # auto: the crash sends the model to Model Optimizer, which cannot read it either; both are named.
    first = _one_line_error(run_cli("convert", "--input", model, "--output", blob), "ir", 12)
    assert "OpenVINO 2022.3 crashed (SIGSEGV)" in first
    assert "Model Optimizer 2021.4 does not support op LayerNormalization (node ln)" in first


def test_static_onnx_model_takes_another_input_shape(model_files, tmp_path):
    """The reference runs at the asked shape too: ONNX Runtime on the reshaped model."""
    blob = tmp_path / "big.blob"
    result = run_cli("convert", "--input", model_files["onnx"], "--input-shape", "[1, 3, 96, 128]", "--output", blob)
    assert result.returncode == 0, result.stderr
    report = _report(blob)
    assert "input input [1, 3, 64, 80] -> [1, 3, 96, 128]" in report["ir"]["preparation"][0]["detail"]
    assert report["numeric"]["passed"]
    assert [t.shape for t in assert_depthai_agrees(blob).inputs] == [(1, 3, 96, 128)]


# --- --output-names: cut a detector before its decode ---


@pytest.fixture(scope="module")
def yolo_onnx(tmp_path_factory):
    return BY_NAME["yolov8_style"].save(tmp_path_factory.mktemp("yolo"))


@pytest.mark.parametrize(
    "names, dims",
    [
        # the three per-scale head outputs (what a camera-side decode takes), and a Split's two outputs
        (
            ("/head/Concat_output_0", "/head/Concat_1_output_0", "/head/Concat_2_output_0"),
            ((1, 72, 20, 20), (1, 72, 10, 10), (1, 72, 5, 5)),
        ),
        (("/head/Split_output_0", "/head/Split_output_1"), ((1, 64, 525), (1, 8, 525))),
    ],
    ids=["per-scale", "split"],
)
def test_output_names_cut_the_graph(names, dims, yolo_onnx, tmp_path):
    blob = tmp_path / "cut.blob"
    result = run_cli(
        "convert",
        "--input",
        yolo_onnx,
        "--input-shape",
        shape_flag(BY_NAME["yolov8_style"]),
        "--output",
        blob,
        "--output-names",
        ",".join(names),
        *ULTRALYTICS,
        "--strict",
    )
    assert result.returncode == 0, result.stderr
    info = assert_depthai_agrees(blob)
    assert {t.name: t.shape for t in info.outputs} == dict(zip(names, dims))
    report = _report(blob)
    assert [o["name"] for o in report["numeric"]["outputs"]] == list(names) and report["numeric"]["passed"]


def test_output_names_unknown_tensor(yolo_onnx, tmp_path):
    first = _one_line_error(
        run_cli(
            "convert",
            "--input",
            yolo_onnx,
            "--input-shape",
            "[1, 3, 160, 160]",
            "--output",
            tmp_path / "x.blob",
            "--output-names",
            "/head/Concat_outpt_0",
        ),
        "ir",
        12,
    )
    assert "the model has no tensor '/head/Concat_outpt_0' (close: /head/Concat_output_0" in first


# --- A compile that never ends ---


def test_compile_timeout_stops_the_compiler(model_files, tmp_path):
    blob = tmp_path / "slow.blob"
    first = _one_line_error(
        run_cli("convert", "--input", model_files["onnx"], "--output", blob, "--compile-timeout", "0.01"), "compile", 13
    )
    assert "the Myriad compiler did not finish within 0.01 s (--compile-timeout) and was stopped" in first
    assert not blob.exists() and _report(blob)["stages"][3]["status"] == "failed"


def _graph(path, nodes, outputs):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], np.random.default_rng(0).standard_normal(108) / 5)
    graph = helper.make_graph(
        nodes, "g", [x], [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], [weight]
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8), str(path))
    return path


@pytest.mark.parametrize(
    "nodes, outputs",
    [
        # the same tensor twice (an Identity the front end removes)
        (
            [
                helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                helper.make_node("Relu", ["c"], ["y"]),
                helper.make_node("Identity", ["y"], ["z"]),
            ],
            ["y", "z"],
        ),
        # an output named like another node (a Conv node called "y")
        (
            [
                helper.make_node("Conv", ["x", "w"], ["c"], name="y", pads=[1, 1, 1, 1]),
                helper.make_node("Relu", ["c"], ["r"]),
                helper.make_node("Sigmoid", ["c"], ["y"]),
            ],
            ["r", "y"],
        ),
        # an output straight from a multi-output layer
        (
            [
                helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                helper.make_node("Split", ["c"], ["s0", "s1"], axis=1),
                helper.make_node("Relu", ["s0"], ["y"]),
            ],
            ["y", "s1"],
        ),
    ],
    ids=["same-tensor-twice", "name-of-another-node", "split-output"],
)
def test_blob_outputs_keep_the_onnx_names(nodes, outputs, tmp_path):
    model = _graph(tmp_path / "m.onnx", nodes, outputs)
    blob = tmp_path / "m.blob"
    result = run_cli(
        "convert",
        "--input",
        model,
        "--output",
        blob,
        "--frontend",
        "ov2022",
        "--mean",
        "[128, 128, 128]",
        "--scale",
        "[64, 64, 64]",
    )
    assert result.returncode == 0, result.stderr
    assert sorted(t.name for t in assert_depthai_agrees(blob).outputs) == sorted(outputs)
    assert sorted(o["name"] for o in _report(blob)["numeric"]["outputs"]) == sorted(outputs)


@pytest.mark.unit
@pytest.mark.parametrize("dtype", [TensorProto.FLOAT, TensorProto.FLOAT16])
@pytest.mark.parametrize("opset", [17, 18])
def test_layer_norm_decomposition_matches(dtype, opset):
    import onnxruntime

    from myriad_blob.onnx_prep import _disagreement
    from myriad_blob.rules.onnx_rules import decompose_layer_norm as _decompose_layer_norm

    np_type = helper.tensor_dtype_to_np_dtype(dtype)
    rng = np.random.default_rng(1)
    weights = [
        onnx.numpy_helper.from_array((rng.random((5, 8)) + 0.5).astype(np_type), "s"),
        onnx.numpy_helper.from_array(rng.random((5, 8)).astype(np_type), "b"),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], axis=-1, epsilon=1e-3, name="ln1"),
            helper.make_node("LayerNormalization", ["y", "s", "b"], ["z"], axis=-2, epsilon=1e-3, name="ln2"),
        ],
        "ln",
        [helper.make_tensor_value_info("x", dtype, [2, 5, 8])],
        [helper.make_tensor_value_info("z", dtype, [2, 5, 8])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    x = (rng.standard_normal((2, 5, 8)) * 3).astype(np_type)
    expected = onnxruntime.InferenceSession(model.SerializeToString()).run(None, {"x": x})
    decomposed = _decompose_layer_norm(model)
    onnx.checker.check_model(decomposed)
    assert not any(node.op_type == "LayerNormalization" for node in decomposed.graph.node)
    actual = onnxruntime.InferenceSession(decomposed.SerializeToString()).run(None, {"x": x})
    assert _disagreement(expected, actual) < (1e-5 if dtype == TensorProto.FLOAT else 2e-3)
