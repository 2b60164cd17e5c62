"""Issue #28, round two: each builder case16-case23 in ../shared/cases behaves as its docstring says
it should (converts with its right value, or is refused with the op and what to change), and the
rule rows they needed, on small graphs (ONNX Runtime only)."""

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from conftest import run_cli
from myriad_blob.errors import EXIT_CODES, Stage
from myriad_blob.rules.advice import explain_refused
from myriad_blob.rules.onnx_rules import ONNX_RULES


def _convert(cases, tmp_path, name, *flags):
    blob = tmp_path / (Path(name).stem + ".blob")
    result = run_cli("convert", "--input", cases / name, "--output", blob, *flags)
    return result, blob


def _report(blob: Path) -> dict:
    return json.loads(blob.with_name(blob.name + ".report.json").read_text())


def _kept(report) -> list[str]:
    return [s["name"] for s in report["ir"]["preparation"] if s["kept"] and s["name"] != "graph edits"]


def _line(result) -> str:
    """Our one line (torch's exporter may print its graph to stderr before it)."""
    return next(line for line in result.stderr.splitlines() if line.startswith("myriad-blob:"))


def _passed(result, blob, *rules):
    assert result.returncode == 0, result.stderr
    report = _report(blob)
    assert set(rules) <= set(_kept(report)), _kept(report)
    assert report["verdict"] == {"result": "passed", "reasons": []}, report["verdict"]
    return report


def test_case16_bicubic_upsampling_by_an_integer_factor_converts(cases, tmp_path):
    # Was exit 13: "Current Interpolate supports 'nearest' and 'linear' modes only, actual cubic", "no known rewrite".
    result, blob = _convert(cases, tmp_path, "case01_bicubic.onnx", "--strict")
    _passed(result, blob, "bicubic Resize -> edge Pad + depthwise ConvTranspose")


def test_case17_sin_and_cos_of_unbounded_values_convert(cases, tmp_path):
    # Was exit 13 naming /Sin and /Cos ("bound its argument"); and the [1, 4, 2] point coordinates, not
    # an image, got U8 without a word. Now FP16 by default, and the report says so and why.
    result, blob = _convert(cases, tmp_path, "case01b_sin_posenc.onnx", "--strict")
    report = _passed(result, blob, "Sin -> range reduction and a polynomial", "Cos -> range reduction and a polynomial")
    assert [(t["name"], t["data_type"]) for t in report["blob"]["header"]["inputs"]] == [("point_coords", "FP16")]
    assert report["compile_settings"]["input_precisions"]["point_coords"]["reason"] == "other"
    md = blob.with_name(blob.name + ".report.md").read_text()
    assert "FP16 CHW — default for a non-image input: U8 would truncate its values" in md
    # U8 by the user's choice, fed coordinates in 0..1: the blob truncates them, and the line says what to change.
    coords = tmp_path / "coords.npy"
    np.save(coords, np.random.default_rng(0).random((1, 4, 2), dtype=np.float32))
    flags = ("--input-type", "U8", "--sample", f"point_coords={coords}", "--strict")
    result, blob = _convert(cases, tmp_path, "case01b_sin_posenc.onnx", *flags)
    assert result.returncode == EXIT_CODES[Stage.VERIFY], result.stderr
    assert "--input-type point_coords=FP16" in _line(result)
    assert _report(blob)["numeric"]["truncated_inputs"] == ["point_coords"]


def test_case18_video_input_converts_and_its_missing_shape_is_asked_at_its_rank(cases, tmp_path):
    # Was exit 11 at "export" with a 4-D example ('frames=[1, 3, 240, 320]') for the 5-D input.
    result, _ = _convert(cases, tmp_path, "case03_video_5d_dynbatch.onnx")
    assert result.returncode == EXIT_CODES[Stage.OPTIONS], result.stderr
    assert "pass --input-shape 'frames=[1, 20, 64, 64, 3]'" in _line(result)
    result, blob = _convert(cases, tmp_path, "case03_video_5d_dynbatch.onnx", "--input-shape", "[1, 20, 64, 64, 3]")
    report = _passed(result, blob)
    assert [o["shape"] for o in report["numeric"]["outputs"]] == [[1, 5]]
    # [T, H, W, C] with T = 20 is a batch of 20 to the plugin: was its internal VariadicSplit check (the
    # plugin's batch detection compiled batch 1). Compiled with MYRIAD_DETECT_NETWORK_BATCH=NO: the blob
    # takes all 20 frames, numbers right; the frames, 4-D with 64 "channels", are no image: FP16.
    result, blob = _convert(cases, tmp_path, "case03_fix_2d.onnx", "--strict")
    report = _passed(result, blob)
    assert report["compile_settings"]["config"] == {"MYRIAD_DETECT_NETWORK_BATCH": "NO"}
    assert [(t["shape"], t["data_type"]) for t in report["blob"]["header"]["inputs"]] == [([20, 64, 64, 3], "FP16")]


def test_case19_nms_inside_the_model_is_named_with_its_cut_points(cases, tmp_path):
    # Was exit 14 at verify, blamed on "torch.nonzero or boolean-mask indexing (x[mask])".
    result, _ = _convert(cases, tmp_path, "case04_nms_in_model.onnx")
    assert result.returncode == EXIT_CODES[Stage.IR], result.stderr
    line = _line(result)
    assert "`selected` (NonMaxSuppression)" in line and "(--output-names boxes,scores)" in line
    assert "nonzero" not in line
    result, blob = _convert(cases, tmp_path, "case04_nms_in_model.onnx", "--output-names", "boxes,scores")
    _passed(result, blob)


def test_case20_an_fp16_onnx_converts(cases, tmp_path):
    # Was exit 12 (its squeeze's If, "trace the model instead"); without the If, exit 13 with the plugin's
    # "Failed to find reference implementation for `Constant_...` Layer with `Convert` Type".
    result, blob = _convert(cases, tmp_path, "case05_fp16.onnx", "--strict")
    report = _passed(result, blob, "FP16 model -> FP32", "If on a constant condition -> its branch")
    assert report["ir"]["frontend"] == "ov2022"


def test_case21_the_attention_fast_path_is_named_with_what_works(cases, tmp_path):
    # Was "torch.onnx.export failed (opset 14, 16, 13, 12, 11, 17): ...; try another --opset".
    result, _ = _convert(cases, tmp_path, "case06_mha.pt", "--input-shape", "[1, 3, 32, 32]")
    assert result.returncode == EXIT_CODES[Stage.EXPORT]
    line = _line(result)
    assert "fused attention fast path" in line and "--model-class" in line and "set_fastpath_enabled(False)" in line
    assert "another --opset" not in line
    flags = ("--input", "case06e_state_dict.pt", "--model-class", "case06_model:Enc", "--input-shape", "[1, 3, 32, 32]")
    result = run_cli("convert", *flags, "--output", tmp_path / "enc.blob", cwd=cases)
    _passed(result, tmp_path / "enc.blob")


def test_case22_a_branch_on_the_data_is_not_told_to_trace(cases, tmp_path):
    # Was "trace the model (torch.jit.trace) instead": the traced model passes and is wrong for dark frames.
    result, _ = _convert(cases, tmp_path, "case09_scripted_if.pt", "--input-shape", "[1, 3, 32, 32]")
    assert result.returncode == EXIT_CODES[Stage.IR]
    line = _line(result)
    assert "tracing would freeze the branch taken" in line and "torch.where" in line
    assert "trace the model (torch.jit.trace) instead" not in line
    result, blob = _convert(cases, tmp_path, "case09_fix_blend.pt", "--input-shape", "[1, 3, 32, 32]")
    _passed(result, blob)


def test_case23_a_convolution_of_a_constant_is_computed_once(cases, tmp_path):
    # Was exit 13 with the plugin's "duplicateData error ... different desc and content byte sizes".
    result, blob = _convert(cases, tmp_path, "case10_conv_on_constant.onnx", "--strict")
    _passed(result, blob, "constant convolutions -> computed once")
    twin, twin_blob = _convert(cases, tmp_path, "case10_fix_folded.onnx", "--strict")
    assert twin.returncode == 0, twin.stderr
    digest = [hashlib.sha256(path.read_bytes()).hexdigest() for path in (blob, twin_blob)]
    assert digest[0] == digest[1]  # the same blob as the hand-folded twin


# --- The rows on small graphs (ONNX Runtime only) ---


def _rule(name):
    return next(rule for rule in ONNX_RULES if rule.name.startswith(name))


def _model(nodes, inputs, outputs, initializers=(), opset=13):
    return helper.make_model(
        helper.make_graph(nodes, "g", inputs, outputs, list(initializers)),
        ir_version=8,
        opset_imports=[helper.make_opsetid("", opset)],
    )


def _run(model, feeds):
    import onnxruntime

    return onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.mark.unit
@pytest.mark.parametrize("op", ["Sin", "Cos"])
def test_range_reduction_computes_sin_and_cos_of_any_value(op):
    model = _model(
        [helper.make_node(op, ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2001])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2001])],
    )
    rule = _rule(f"{op} -> range reduction")
    assert rule.needed(model)
    x = np.linspace(-200, 200, 2001).astype(np.float32)
    (y,) = _run(rule.rewrite(model), {"x": x})
    np.testing.assert_allclose(y, getattr(np, op.lower())(x.astype(np.float64)), atol=1e-4)


def _resize(scales, mode="cubic", transform="half_pixel"):
    out = [1, 2, int(6 * scales[2]), int(5 * scales[3])]
    return _model(
        [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode=mode, coordinate_transformation_mode=transform)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)],
        [helper.make_tensor("scales", TensorProto.FLOAT, [4], scales)],
    )


@pytest.mark.unit
@pytest.mark.parametrize("factors", [(2, 2), (3, 2), (4, 1)])
def test_bicubic_by_integer_factors_is_a_transposed_convolution(factors):
    model = _resize([1, 1, *factors])
    rule = _rule("bicubic Resize")
    assert rule.needed(model)
    rewritten = rule.rewrite(model)
    assert "Resize" not in {n.op_type for n in rewritten.graph.node}
    x = np.random.default_rng(3).standard_normal((1, 2, 6, 5)).astype(np.float32)
    np.testing.assert_allclose(_run(rewritten, {"x": x})[0], _run(model, {"x": x})[0], atol=1e-5)


@pytest.mark.unit
def test_bicubic_without_an_exact_filter_is_left_and_told_to_use_bilinear():
    assert not _rule("bicubic Resize").needed(_resize([1, 1, 1.5, 1.5]))
    assert not _rule("bicubic Resize").needed(_resize([1, 1, 2, 2], transform="align_corners"))
    message = "Failed to compile layer \"up\": [ GENERAL_ERROR ] Current Interpolate supports 'nearest' and 'linear' modes only, actual cubic"
    line = explain_refused([("up", "Interpolate")], lambda name: {"node": "/up/Resize", "op": "Resize"}, message)
    assert "`up` (Interpolate; ONNX node `/up/Resize`, Resize" in line and "use mode='bilinear'" in line


@pytest.mark.unit
def test_if_on_a_shape_condition_is_replaced_by_its_branch():
    def branch(name, op):
        return helper.make_graph(
            [helper.make_node(op, ["x"], [f"{name}_out"])],
            name,
            [],
            [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, None)],
        )

    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "one"], ["dim"], axis=0),
        helper.make_node("Equal", ["dim", "three"], ["condition"]),
        helper.make_node(
            "If", ["condition"], ["y"], then_branch=branch("then", "Relu"), else_branch=branch("else", "Neg")
        ),
    ]
    model = _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            helper.make_tensor("one", TensorProto.INT64, [], [1]),
            helper.make_tensor("three", TensorProto.INT64, [], [3]),
        ],
    )
    rule = _rule("If on a constant condition")
    assert rule.needed(model)
    rewritten = rule.rewrite(model)
    assert "If" not in {n.op_type for n in rewritten.graph.node} and "Relu" in {n.op_type for n in rewritten.graph.node}
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(1, 3, 4)
    np.testing.assert_array_equal(_run(rewritten, {"x": x})[0], np.maximum(x, 0))


@pytest.mark.unit
def test_an_fp16_model_with_float64_steps_becomes_fp32():
    nodes = [
        helper.make_node("Cast", ["x"], ["wide"], to=TensorProto.DOUBLE),
        helper.make_node("Mul", ["wide", "two"], ["doubled"]),
        helper.make_node("Cast", ["doubled"], ["narrow"], to=TensorProto.FLOAT16),
        helper.make_node("Add", ["narrow", "bias"], ["y"]),
    ]
    model = _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [4])],
        [
            helper.make_tensor("two", TensorProto.DOUBLE, [], [2.0]),
            numpy_helper.from_array(np.array([0.5, 1, 2, 4], np.float16), "bias"),
        ],
    )
    rule = _rule("FP16 model -> FP32")
    assert rule.needed(model) and rule.new_reference
    rewritten = rule.rewrite(model)
    onnx.checker.check_model(rewritten)
    types = {init.data_type for init in rewritten.graph.initializer} | {
        v.type.tensor_type.elem_type for v in (*rewritten.graph.input, *rewritten.graph.output)
    }
    assert types == {TensorProto.FLOAT}
    x = np.array([1, -2, 3.5, 1000], np.float32)
    np.testing.assert_array_equal(_run(rewritten, {"x": x})[0], x * 2 + np.array([0.5, 1, 2, 4]))


@pytest.mark.unit
def test_only_a_convolution_of_constants_is_folded():
    weights = helper.make_tensor("w", TensorProto.FLOAT, [2, 1, 3, 3], np.ones(18, np.float32))
    frame = helper.make_tensor("frame", TensorProto.FLOAT, [1, 1, 5, 5], np.arange(25, dtype=np.float32))
    nodes = [
        helper.make_node("Conv", ["frame", "w"], ["fixed"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["x", "w"], ["moving"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["fixed", "moving"], ["y"]),
    ]
    model = _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 5, 5])],
        [weights, frame],
    )
    rule = _rule("constant convolutions")
    assert "1 node(s)" in rule.needed(model)
    rewritten = rule.rewrite(model)
    assert [n.op_type for n in rewritten.graph.node] == ["Conv", "Add"]
    assert "frame" not in {init.name for init in rewritten.graph.initializer}
    x = np.random.default_rng(1).standard_normal((1, 1, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(_run(rewritten, {"x": x})[0], _run(model, {"x": x})[0], rtol=1e-6)
    del model.graph.node[0]  # no constant convolution: nothing to do
    model.graph.node[-1].input[0] = "moving"
    assert not rule.needed(model)


# --- The other rows: false refusals with an exact rewrite ---


def _opset18_model(path: Path) -> Path:
    """ultralytics' opset-18 form: Split with num_outputs (8 rows in 3, the last smaller), ReduceMax with
    its axes as an input, a Pad with axes; onnx's version converter has no Split-18 adapter."""
    nodes = [
        helper.make_node("Split", ["x"], ["a", "b", "c"], axis=1, num_outputs=3),
        helper.make_node("ReduceMax", ["a", "axes"], ["m"], keepdims=1),
        helper.make_node("Pad", ["b", "pads", "", "pad_axes"], ["padded"], mode="reflect"),
        helper.make_node("Add", ["m", "padded"], ["y"]),
        helper.make_node("ReduceMean", ["c", "axes"], ["z"], keepdims=1),
    ]
    model = _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 6, 6])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 6]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 2, 1, 6]),
        ],
        [
            helper.make_tensor("axes", TensorProto.INT64, [1], [2]),
            helper.make_tensor("pads", TensorProto.INT64, [2], [1, 1]),
            helper.make_tensor("pad_axes", TensorProto.INT64, [1], [-2]),
        ],
        opset=18,
    )
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def test_opset18_split_and_reduce_are_downgraded_op_by_op(tmp_path):
    # Was exit 12: onnx's converter gave up ("No Adapter From Version $18 for Split"), and the 2022.3
    # reader then split 8 rows in 3 equal parts ("must be evenly divisible by 'num_splits'").
    path = _opset18_model(tmp_path / "op18.onnx")
    blob = tmp_path / "op18.blob"
    result = run_cli("convert", "--input", path, "--output", blob, "--input-type", "FP16", "--strict")
    _passed(result, blob, "convert to opset 17 (onnx version converter)")


@pytest.mark.unit
def test_the_op_by_op_downgrade_computes_what_opset18_computes(tmp_path):
    from myriad_blob.rules.onnx_rules import downgrade_op_by_op

    model = onnx.load(str(_opset18_model(tmp_path / "op18.onnx")))
    downgraded = downgrade_op_by_op(model)
    assert downgraded.opset_import[0].version == 17
    x = np.random.default_rng(4).standard_normal((1, 8, 6, 6)).astype(np.float32)
    for expected, actual in zip(_run(model, {"x": x}), _run(downgraded, {"x": x})):
        np.testing.assert_array_equal(actual, expected)


class _PooledLayerNorm(torch.nn.Module):
    """ConvNeXtV2's head: LayerNorm of the globally pooled features (a 2-D MVN)."""

    def __init__(self):
        super().__init__()
        self.conv, self.norm, self.fc = torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.LayerNorm(16), torch.nn.Linear(16, 5)

    def forward(self, x):
        return self.fc(self.norm(self.conv(x / 255).mean((2, 3))))


class _ReflectAudio(torch.nn.Module):
    """A tf2onnx-style audio net: [1, 1, 1, T], REFLECT-padded along T only."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, (1, 5))

    def forward(self, x):
        return self.conv(torch.nn.functional.pad(x, (2, 2, 0, 0), mode="reflect"))


@pytest.mark.parametrize(
    "module,shape,rule",
    [
        # Was exit 13: "2 input rank provided to /norm/Div layer, but only 3D and 4D supported" (an MVN).
        (_PooledLayerNorm, [1, 3, 32, 32], "2-D LayerNorm's mean -> MatMul by 1/C"),
        # Was exit 12: "REFLECT padding mode requires an input of dimension of at least 2 at each spatial axis".
        (_ReflectAudio, [1, 1, 1, 64], "REFLECT Pad without its length-1 axes"),
    ],
)
def test_false_refusals_with_an_exact_rewrite_convert(tmp_path, module, shape, rule):
    torch.manual_seed(0)
    path = tmp_path / "model.onnx"
    torch.onnx.export(module().eval(), torch.rand(shape), str(path), dynamo=False, opset_version=14)
    blob = tmp_path / "model.blob"
    _passed(run_cli("convert", "--input", path, "--output", blob, "--input-type", "FP16", "--strict"), blob, rule)


def test_selu_of_a_2017_export_converts(tmp_path):
    # ONNX's own pytorch-converted/test_SELU (opset 6): was exit 13, "unsupported layer type Selu", as the
    # node rules skipped every file below opset 11.
    model = Path(onnx.__file__).parent / "backend" / "test" / "data" / "pytorch-converted" / "test_SELU" / "model.onnx"
    blob = tmp_path / "selu.blob"
    result = run_cli("convert", "--input", model, "--output", blob, "--input-type", "FP16", "--strict")
    _passed(result, blob, "Selu -> gamma * Elu(x, alpha)")


@pytest.mark.unit
@pytest.mark.parametrize("op", ["Selu", "Softsign", "Abs"])
def test_elementwise_rules_apply_below_opset_11(op):
    model = _model(
        [helper.make_node(op, ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [7])],
        opset=7,
    )
    rule = _rule({"Selu": "Selu ->", "Softsign": "Softsign ->", "Abs": "Abs ->"}[op])
    assert rule.needed(model)
    x = np.linspace(-3, 3, 7, dtype=np.float32)
    np.testing.assert_allclose(_run(rule.rewrite(model), {"x": x})[0], _run(model, {"x": x})[0], rtol=1e-6)


def _max_pool(kernel, dilations, strides, pads, ceil_mode, shape):
    node = helper.make_node(
        "MaxPool",
        ["x"],
        ["y"],
        kernel_shape=kernel,
        dilations=dilations,
        strides=strides,
        pads=pads,
        ceil_mode=ceil_mode,
    )
    return _model(
        [node],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )


@pytest.mark.unit
@pytest.mark.parametrize(
    "kernel,dilations,strides,pads,ceil_mode,shape",
    [
        ([3, 3], [2, 2], [1, 1], [1, 1, 1, 1], 0, [1, 2, 9, 11]),
        ([5, 4], [2, 3], [2, 3], [2, 1, 0, 2], 1, [1, 2, 17, 19]),
        ([60], [10], [10], [10, 20], 0, [1, 1, 1000]),
    ],
)
def test_dilated_max_pool_is_a_max_of_slices(kernel, dilations, strides, pads, ceil_mode, shape):
    model = _max_pool(kernel, dilations, strides, pads, ceil_mode, shape)
    rule = _rule("MaxPool with dilations")
    assert rule.needed(model)
    rewritten = rule.rewrite(model)
    assert "MaxPool" not in {n.op_type for n in rewritten.graph.node} and len(rewritten.graph.node) < 30
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(_run(rewritten, {"x": x})[0], _run(model, {"x": x})[0])


def test_dilated_max_pool_converts(tmp_path):
    # Was exit 12: "`Y/MaxPool_1` (MaxPool, opset8) (no rewrite to an older version is known)".
    path = tmp_path / "pool.onnx"
    onnx.save(_max_pool([3, 3], [2, 2], [2, 2], [2, 2, 2, 2], 0, [1, 3, 32, 32]), str(path))
    blob = tmp_path / "pool.blob"
    result = run_cli("convert", "--input", path, "--output", blob, "--strict")
    _passed(result, blob, "MaxPool with dilations -> Max of strided slices")


@pytest.mark.unit
def test_mish_becomes_its_onnx_function_body():
    # node/test_mish: was exit 12, "OpenVINO does not support the following ONNX operations: Mish" (and
    # Mish-18 has no adapter down to 17); ONNX's own body (Softplus, Tanh, Mul) converts.
    model = _model(
        [helper.make_node("Mish", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 5, 5])],
        opset=18,
    )
    rule = _rule("op without a front end")
    assert "(Mish)" in rule.needed(model)
    rewritten = rule.rewrite(model)
    onnx.checker.check_model(rewritten, full_check=True)
    assert [n.op_type for n in rewritten.graph.node] == ["Softplus", "Tanh", "Mul"]
    assert all(n.name.startswith("y/") and n.doc_string.endswith("Mish y") for n in rewritten.graph.node)
    x = np.linspace(-8, 8, 75, dtype=np.float32).reshape(1, 3, 5, 5)
    np.testing.assert_allclose(_run(rewritten, {"x": x})[0], _run(model, {"x": x})[0], rtol=1e-6, atol=1e-7)


@pytest.mark.unit
@pytest.mark.parametrize("opset,scales", [(18, 2), (21, 4)])  # opset 18 scales per group, 21 per channel
def test_group_normalization_becomes_its_onnx_function_body(opset, scales):
    # node/test_group_normalization_example: was exit 12, "OpenVINO does not support ... GroupNormalization";
    # its body depends on the input types (a context-dependent function).
    rng = np.random.default_rng(3)
    model = _model(
        [helper.make_node("GroupNormalization", ["x", "scale", "bias"], ["y"], num_groups=2, epsilon=1e-3)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 5, 5])],
        [numpy_helper.from_array(rng.standard_normal(scales).astype(np.float32), n) for n in ("scale", "bias")],
        opset=opset,
    )
    rule = _rule("op without a front end")
    assert "(GroupNormalization)" in rule.needed(model)
    rewritten = rule.rewrite(model)
    assert "GroupNormalization" not in {n.op_type for n in rewritten.graph.node}
    x = rng.standard_normal((1, 4, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(_run(rewritten, {"x": x})[0], _run(model, {"x": x})[0], rtol=1e-5, atol=1e-6)


@pytest.mark.unit
def test_rms_normalization_becomes_its_onnx_function_body():
    # node/test_rms_normalization_*: was exit 12, "OpenVINO does not support ... RMSNormalization" (opset 23).
    rng = np.random.default_rng(4)
    model = _model(
        [helper.make_node("RMSNormalization", ["x", "scale"], ["y"], axis=-1)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 8])],
        [numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "scale")],
        opset=23,
    )
    model.ir_version = 10
    rule = _rule("op without a front end")
    assert "(RMSNormalization)" in rule.needed(model)
    rewritten = rule.rewrite(model)
    assert "RMSNormalization" not in {n.op_type for n in rewritten.graph.node}
    x = rng.standard_normal((1, 6, 8)).astype(np.float32)
    np.testing.assert_allclose(_run(rewritten, {"x": x})[0], _run(model, {"x": x})[0], rtol=1e-5, atol=1e-6)


@pytest.mark.unit
def test_an_op_a_front_end_reads_keeps_its_node():
    # HardSwish has a function body too, but OpenVINO reads it: the corpus's blobs stay the same.
    model = _model(
        [helper.make_node("HardSwish", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        opset=18,
    )
    assert _rule("op without a front end").needed(model) == ""


@pytest.mark.unit
@pytest.mark.parametrize("op", ["GreaterOrEqual", "LessOrEqual"])
def test_or_equal_comparisons_become_a_negated_comparison(op):
    model = _model(
        [helper.make_node(op, ["a", "b"], ["y"])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [3, 4]) for n in "ab"],
        [helper.make_tensor_value_info("y", TensorProto.BOOL, [3, 4])],
        opset=16,
    )
    rule = _rule(f"{op} -> Not(")
    assert rule.needed(model)
    rewritten = rule.rewrite(model)
    assert op not in {n.op_type for n in rewritten.graph.node}
    a = np.array([[-1, 0, 1, 2]] * 3, np.float32)
    b = np.array([[0], [1], [2]], np.float32) * np.ones((3, 4), np.float32)  # equal values included
    feeds = {"a": a, "b": b}
    np.testing.assert_array_equal(_run(rewritten, feeds)[0], _run(model, feeds)[0])


@pytest.mark.unit
@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("axis,keepdims", [(1, 1), (-1, 0), (0, 1)])
def test_select_last_index_is_the_first_index_of_the_reversed_axis(op, axis, keepdims):
    # node/test_argmax_*_select_last_index: neither front end reads select_last_index=1.
    model = _model(
        [helper.make_node(op, ["x"], ["y"], axis=axis, keepdims=keepdims, select_last_index=1)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, 4])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, None)],
    )
    rule = _rule(f"{op} select_last_index")
    assert rule.needed(model)
    rewritten = rule.rewrite(model)
    assert all(_attribute_value(n, "select_last_index") in (None, 0) for n in rewritten.graph.node)
    x = np.random.default_rng(6).integers(0, 3, (2, 5, 4)).astype(np.float32)  # many equal values
    np.testing.assert_array_equal(_run(rewritten, {"x": x})[0], _run(model, {"x": x})[0])


def _attribute_value(node, name):
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), None)


@pytest.mark.unit
@pytest.mark.parametrize(
    "p,geometry,shape",
    [
        (2, {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, [1, 2, 9, 9]),
        (1, {"kernel_shape": [2, 3]}, [1, 2, 7, 8]),
        (2, {"kernel_shape": [3], "auto_pad": "SAME_UPPER"}, [1, 3, 10]),
        (3, {"kernel_shape": [3, 3], "pads": [2, 2, 2, 2]}, [1, 2, 6, 6]),  # node/test_lppool_2d_pads
    ],
)
def test_lp_pool_is_an_average_pool_of_powers(p, geometry, shape):
    # node/test_lppool_*: the Myriad compiler has no LpPool.
    model = _model(
        [helper.make_node("LpPool", ["x"], ["y"], p=p, **geometry)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    rule = _rule("LpPool -> AveragePool")
    assert rule.needed(model)
    rewritten = rule.rewrite(model)
    assert "LpPool" not in {n.op_type for n in rewritten.graph.node}
    x = np.random.default_rng(7).standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(_run(rewritten, {"x": x})[0], _run(model, {"x": x})[0], rtol=1e-5, atol=1e-6)


@pytest.mark.unit
@pytest.mark.parametrize(
    "op,low,high",
    [("Sinh", -11, 11), ("Cosh", -11, 11), ("Asinh", -1000, 1000), ("Acosh", 1, 1000), ("Atanh", -0.99, 0.99)],
)
def test_hyperbolic_functions_are_exp_log_and_sqrt(op, low, high):
    # node/test_sinh etc.: the Myriad compiler has none of them.
    model = _model(
        [helper.make_node(op, ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1001])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1001])],
    )
    rule = _rule(f"{op} -> Exp/Log/Sqrt")
    assert rule.needed(model)
    rewritten = rule.rewrite(model)
    assert op not in {n.op_type for n in rewritten.graph.node}
    x = np.linspace(low, high, 1001, dtype=np.float32)
    y, expected = _run(rewritten, {"x": x})[0], _run(model, {"x": x})[0]
    assert np.abs(y - expected).max() <= 1e-5 * np.abs(expected).max()


# --- Raw compiler messages in the user's terms (the compiler's words, from ONNX's conformance models) ---


@pytest.mark.unit
@pytest.mark.parametrize(
    "message,layers,expected",
    [
        (  # test_operator_non_float_params: x + y of int64 inputs
            "2 of type Sum: [ GENERAL_ERROR ] Stage node 2 (Sum) types check error: input #1 has type S32, "
            "but one of [FP16] is expected",
            [("2", "Add")],
            "cannot run `2` (Add) of this model: integer arithmetic",
        ),
        (  # an integer a >= b (the compiler's stage is the comparison): was "an add or multiply"
            "5 of type Greater: [ GENERAL_ERROR ] Stage node 5 (Greater) types check error: input #0 has type S32, "
            "but one of [FP16] is expected",
            [("5", "GreaterEqual")],
            "cannot run `5` (GreaterEqual) of this model: integer arithmetic or comparison",
        ),
        (  # test_Conv3d_groups
            'Failed to compile layer "3": [ GENERAL_ERROR ] number of groups=2, but grouped 3D convolution is '
            "not supported",
            [("3", "Add")],
            "`3` (Add): a grouped 3-D convolution (nn.Conv3d with groups > 1); write it as one nn.Conv3d per group",
        ),
        (  # test_log_softmax_dim3 at batch 2
            "Check 'input_product.get_length() % output_product.get_length() == 0' failed at "
            "core/src/op/reshape.cpp:334: While validating node 'v1::Reshape Reshape_11 (0[0]:f32{1,3,4,5}, "
            "Concat_10[0]:i64{2}) -> (f32{?,?})' with friendly_name 'Reshape_11': Non-'-1' output dimensions "
            "do not evenly divide the input dimensions",
            [("0", "Parameter")],
            "convert at batch 1",
        ),
        (  # case23, where a constant is not folded
            "duplicateData error: while duplicating frame0 Const data got different desc and content byte sizes "
            "(8192 and 6144 respectively)",
            [],
            "register it as a buffer",
        ),
        (  # test_Conv3d_no_bias
            'Failed to compile layer "2": [ GENERAL_ERROR ] number of biases must equal to number of output '
            "channels per group, but: channels per group=4, biases=1",
            [("2", "Convolution")],
            "`2` (Convolution): a 3-D convolution without a bias",
        ),
    ],
)
def test_compiler_messages_are_said_in_the_users_terms(message, layers, expected):
    line = explain_refused(layers, lambda name: None, message)
    assert line is not None and expected in line, line


class _GroupedConv3d(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.grouped = torch.nn.Conv3d(4, 6, 3, padding=1, groups=2)
        self.depthwise = torch.nn.Conv3d(6, 6, 3, groups=3)

    def forward(self, x):
        return self.depthwise(torch.relu(self.grouped(x)))


def test_grouped_3d_convolution_converts(tmp_path):
    # ONNX's test_Conv3d_groups: was exit 13, "number of groups=2, but grouped 3D convolution is not supported".
    torch.manual_seed(0)
    path = tmp_path / "conv3d.onnx"
    torch.onnx.export(_GroupedConv3d().eval(), torch.rand(1, 4, 5, 6, 7), str(path), dynamo=False, opset_version=13)
    blob = tmp_path / "conv3d.blob"
    result = run_cli("convert", "--input", path, "--output", blob, "--input-type", "FP16", "--strict")
    _passed(result, blob, "grouped 3-D Conv -> one Conv per group")


class _Fold(torch.nn.Module):
    """MobileViTV2's patches back to an image: F.unfold, a change per patch, F.fold (aten::col2im, opset 18)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        patches = torch.nn.functional.unfold(self.conv(x / 255), kernel_size=2, stride=2)
        return torch.nn.functional.fold(patches * 2.0, output_size=(16, 16), kernel_size=2, stride=2)


def test_fold_exports_at_opset_18_and_converts(tmp_path):
    # Was exit 11: the automatic opsets stopped at 17 ("Support for this operator was added in version 18").
    torch.manual_seed(0)
    path = tmp_path / "fold.pt"
    torch.jit.save(torch.jit.trace(_Fold().eval(), torch.rand(1, 3, 16, 16)), str(path))
    blob = tmp_path / "fold.blob"
    result = run_cli("convert", "--input", path, "--input-shape", "[1, 3, 16, 16]", "--output", blob)
    report = _passed(result, blob, "Col2Im without overlap -> Reshape/Transpose")
    assert report["onnx"]["opset"] == 18
