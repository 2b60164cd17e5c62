"""The op rules (issue "Every op people's models use"): each builder in ../shared/cases behaves as its
docstring says it should, the op sweep's classification holds, and a model with several ops the
Myriad X cannot run names all of them at once."""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import op_sweep
import pytest
import readme_section
import torch

from conftest import run_cli
from myriad_blob.rules.onnx_graph import Graph
from myriad_blob.rules.onnx_rules import ONNX_RULES, fit_polynomial, interval
from test_convert import assert_depthai_agrees


def _report(blob: Path) -> dict:
    return json.loads(blob.with_name(blob.name + ".report.json").read_text())


def _convert(cases, tmp_path, name, *flags):
    blob = tmp_path / (Path(name).stem + ".blob")
    result = run_cli("convert", "--input", cases / name, "--output", blob, *flags)
    return result, blob


def _kept(report) -> list[str]:
    return [s["name"] for s in report["ir"]["preparation"] if s["kept"] and s["name"] != "graph edits"]


def test_scalar_index_gather_goes_through_the_2022_front_end(cases, tmp_path):
    # case03c: opset 13 with Split/Unsqueeze inputs and y[:, :, 3]; was exit 12 (Gather-8), or a fallback to MO.
    result, blob = _convert(cases, tmp_path, "case03c_gather_opset13.onnx", "--strict")
    assert result.returncode == 0, result.stderr
    report = _report(blob)
    assert report["ir"]["frontend"] == "ov2022" and report["ir"]["frontend_fallback"] is None
    assert {"rule": "Gather-8 -> Gather-7", "layers": 1} in report["ir"]["rewrites"]
    assert report["verdict"] == {"result": "passed", "reasons": []}
    assert [t.name for t in assert_depthai_agrees(blob).outputs] == ["output", "row"]


@pytest.mark.parametrize(
    "model,twin,rule",
    [
        ("case04_scatternd_inplace.pt", "case04_fix_cat.pt", "ScatterND writing a box -> Concat of slices"),
        ("case07_cumsum.pt", "case07_fix_matmul.pt", "CumSum -> MatMul with a triangular matrix"),
    ],
)
def test_refused_op_is_rewritten_like_its_hand_written_twin(cases, tmp_path, model, twin, rule):
    # Was exit 13 ("unsupported layer type ScatterNDUpdate" / "CumSum"); the twin always compiled.
    result, blob = _convert(cases, tmp_path, model, "--input-shape", "[1, 3, 64, 64]", "--strict")
    assert result.returncode == 0, result.stderr
    report = _report(blob)
    assert rule in _kept(report) and report["verdict"]["result"] == "passed"
    twin_result, twin_blob = _convert(cases, tmp_path, twin, "--input-shape", "[1, 3, 64, 64]", "--strict")
    assert twin_result.returncode == 0, twin_result.stderr
    # The twin needs no rule but, since #28, the compile-time one (case07's MatMul by a constant over 128 rows).
    assert set(_kept(_report(twin_blob))) <= {"token-wise MatMul by a constant -> 1x1 Conv"}


def test_fixed_length_lstm_is_unrolled_and_matches(cases, tmp_path):
    # case09: was exit 13 with "LSTMSequenceIE_1152 ... AssertionFailed: !expired()".
    result, blob = _convert(cases, tmp_path, "case09_cnn_lstm.pt", "--input-shape", "[1, 3, 32, 128]", "--strict")
    assert result.returncode == 0, result.stderr
    report = _report(blob)
    assert "LSTM -> unrolled steps" in _kept(report)
    (output,) = report["numeric"]["outputs"]
    assert output["passed"] and output["shape"] == [1, 32, 11]


def test_argmax_class_map_gets_an_integer_output_judged_by_agreement(cases, tmp_path):
    # case14: was exit 13 "output #0 has type FP16, but one of [S32] is expected".
    result, blob = _convert(cases, tmp_path, "case14_argmax_seg.pt", "--input-shape", "[1, 3, 64, 64]", "--strict")
    assert result.returncode == 0, result.stderr
    report = _report(blob)
    assert report["compile_settings"]["tensor_types"] == {"output": "I32"}
    (output,) = assert_depthai_agrees(blob).outputs  # depthai reads it as INT
    assert output.data_type == "I32"
    (numeric,) = report["numeric"]["outputs"]
    assert numeric["passed"] and numeric["agreement"] >= 0.99 and "judged by agreement" in numeric["note"]


def test_cut_before_the_heads_works_on_a_file_without_value_info(cases, tmp_path):
    # case15: was exit 12 "The following names were not found in value_infos".
    heads = ["/h8/Conv_output_0", "/h16/Conv_output_0", "/h32/Conv_output_0"]
    flags = [flag for head in heads for flag in ("--output-names", head)]
    result, blob = _convert(cases, tmp_path, "case15_tiny_yolo.onnx", *flags, "--strict")
    assert result.returncode == 0, result.stderr
    info = assert_depthai_agrees(blob)
    assert sorted(t.name for t in info.outputs) == sorted(heads)
    assert sorted(tuple(t.shape) for t in info.outputs) == [(1, 7, 2, 2), (1, 7, 4, 4), (1, 7, 8, 8)]


def test_odd_input_size_names_the_mismatch_and_the_sizes_that_work(cases, tmp_path):
    # case12: was only "The following operation failed in the TorchScript interpreter."
    result, _ = _convert(cases, tmp_path, "case12_unet.pt", "--input-shape", "[1, 3, 100, 100]")
    assert result.returncode == 11 and "Traceback" not in result.stderr
    line = result.stderr.splitlines()[0]
    assert "Expected size 24 but got size 25" in line
    assert "multiples of 8" in line and "100 -> 96 or 104" in line
    ok, _ = _convert(cases, tmp_path, "case12_unet.pt", "--input-shape", "[1, 3, 96, 96]")
    assert ok.returncode == 0, ok.stderr


def test_fp16_overflow_is_not_a_pass(cases, tmp_path):
    # case10: numeric.passed was true while four layers overflow FP16.
    result, blob = _convert(cases, tmp_path, "case10_fp16_overflow.pt", "--input-shape", "[1, 3, 64, 64]")
    assert result.returncode == 0, result.stderr
    report = _report(blob)
    assert report["numeric"]["passed"] is False and report["numeric"]["outputs_passed"] is True
    assert report["verdict"]["result"] == "warnings"
    assert "FP16 overflow" in report["verdict"]["reasons"][0]
    assert "⚠️ **Converted**" in blob.with_name(blob.name + ".report.md").read_text()


class SeveralRefused(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, 1, 1)
        self.head = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 1))

    def forward(self, x):
        y = self.head(self.conv(x / 255.0)).clone()
        y[:, [0, 2, 5]] = torch.atan(y[:, [1, 3, 4]] * 4)  # not one box; (since #28 sin of any value converts)
        return torch.sign(y) + y


def test_several_refused_ops_are_named_at_once_in_the_users_terms(tmp_path):
    path = tmp_path / "several.pt"
    torch.manual_seed(0)
    torch.jit.save(torch.jit.trace(SeveralRefused().eval(), torch.rand(1, 3, 32, 32)), str(path))
    result = run_cli("convert", "--input", path, "--input-shape", "[1, 3, 32, 32]", "--output", tmp_path / "s.blob")
    assert result.returncode == 13 and "Traceback" not in result.stderr
    line = result.stderr.splitlines()[0]
    assert "cannot run 2 layer(s)" in line  # and the Sign became a Where: it is not among them
    for expected in (
        "(Atan; ONNX node `/Atan`, Atan): a tangent or inverse trigonometric function",
        "(ScatterNDUpdate; ONNX node `/ScatterND`",
        "torch.cat",
        "torch.where",
        "--output-names",
        "(the compiler: Failed to compile layer",
    ):
        assert expected in line, line
    assert not (tmp_path / "s.blob").exists()


# The op sweep: what each form does today. A change here is a change of what users can convert.
EXPECTED_SWEEP = {
    "F.hardsigmoid": ("rewritten", "HardSigmoid -> Clamp"),
    "scalar index (x[:, 0])": ("rewritten", "Gather-8 -> Gather-7"),
    "negative scalar index (x[:, :, -1])": ("rewritten", "Gather-8 -> Gather-7"),
    "torch.gather(dim=-1)": ("rewritten", "GatherElements axis made non-negative"),
    "topk (constant k)": ("native", ""),
    "argmax (class map)": ("native", ""),
    "torch.cumsum": ("rewritten", "CumSum -> MatMul"),
    "torch.abs": ("rewritten", "Abs -> Relu(x) + Relu(-x)"),
    "in-place slice assignment": ("rewritten", "ScatterND writing a box"),
    "sin/cos of a sigmoid (OBB angle)": ("rewritten", "Sin -> polynomial"),
    "nn.LSTM(bidirectional)": ("rewritten", "LSTM -> unrolled steps"),
    "nn.GRU": ("rewritten", "GRU -> unrolled steps"),
    "nn.GRU(bidirectional), final state": ("rewritten", "GRU -> unrolled steps"),
    "nn.LayerNorm": ("native", ""),
    "F.gelu": ("native", ""),
    "F.interpolate(bilinear)": ("native", ""),
    "sin of any value": ("rewritten", "Sin -> range reduction and a polynomial"),
    "sign": ("rewritten", "Sign -> Where"),
    "F.grid_sample": ("refused", "the Myriad X has no sampler"),
}


def test_op_sweep_classifies_each_form(tmp_path):
    cases = [case for case in op_sweep._cases() if case.name in EXPECTED_SWEEP]
    assert len(cases) == len(EXPECTED_SWEEP)
    rows = op_sweep.run_sweep(cases, tmp_path, log=lambda *_: None)
    for row in rows:
        result, detail = EXPECTED_SWEEP[row["name"]]
        assert row["result"] == result and detail in row["detail"], row


@pytest.mark.unit
def test_op_table_in_readme_is_from_the_sweep():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme_section.section(readme, op_sweep.SECTION)
    names = [case.name for case in op_sweep._cases()]
    assert all(f"| `{name}` |" in table for name in names), "run `make op-table`"


# --- Unit tests of the rules (ONNX Runtime only) ---


def _run(model, feeds):
    import onnxruntime

    return onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def _rule(name):
    return next(rule for rule in ONNX_RULES if rule.name.startswith(name))


@pytest.mark.unit
@pytest.mark.parametrize(
    "module,rule",
    [
        (torch.nn.GRU(6, 5, bidirectional=True), "GRU"),
        (torch.nn.LSTM(6, 5, bidirectional=True), "LSTM"),
        (torch.nn.GRU(6, 5), "GRU"),
    ],
)
def test_recurrent_unrolling_computes_what_onnx_runtime_computes(tmp_path, module, rule):
    torch.manual_seed(1)
    path = tmp_path / "rnn.onnx"
    x = torch.randn(7, 1, 6)
    torch.onnx.export(module.eval(), (x,), str(path), opset_version=14, dynamo=False)
    model = onnx.load(str(path))
    assert _rule(rule).needed(model)
    rewritten = _rule(rule).rewrite(model)
    assert rule not in {n.op_type for n in rewritten.graph.node}
    feeds = {model.graph.input[0].name: x.numpy()}
    for expected, actual in zip(_run(model, feeds), _run(rewritten, feeds)):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.unit
@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_a_reverse_direction_recurrent_layer_is_unrolled_backwards(op):
    from onnx import TensorProto, helper

    gates, hidden, size, steps = {"LSTM": 4, "GRU": 3}[op], 5, 6, 7
    rng = np.random.default_rng(2)
    weights = [
        helper.make_tensor(name, TensorProto.FLOAT, dims, rng.standard_normal(dims).astype(np.float32).ravel())
        for name, dims in (
            ("W", [1, gates * hidden, size]),
            ("R", [1, gates * hidden, hidden]),
            ("B", [1, 2 * gates * hidden]),
        )
    ]
    node = helper.make_node(
        op,
        ["x", "W", "R", "B"],
        ["y", "h"],
        hidden_size=hidden,
        direction="reverse",
        **({"linear_before_reset": 1} if op == "GRU" else {}),
    )
    model = helper.make_model(
        helper.make_graph(
            [node],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [steps, 1, size])],
            [
                helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                helper.make_tensor_value_info("h", TensorProto.FLOAT, None),
            ],
            weights,
        ),
        ir_version=8,
        opset_imports=[helper.make_opsetid("", 14)],
    )
    feeds = {"x": rng.standard_normal((steps, 1, size)).astype(np.float32)}
    rewritten = _rule(op).rewrite(model)
    for expected, actual in zip(_run(model, feeds), _run(rewritten, feeds)):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.unit
def test_polynomial_is_within_its_bound_and_only_on_a_proven_range():
    coefficients, centre, half, error = fit_polynomial(np.sin, -np.pi / 4, 3 * np.pi / 4)
    assert error < 5e-3 and len(coefficients) <= 14  # in FP16 arithmetic, as the device computes it
    x = np.linspace(-np.pi / 4, 3 * np.pi / 4, 1001)
    assert np.max(np.abs(np.polynomial.polynomial.polyval((x - centre) / half, coefficients) - np.sin(x))) < 2e-5
    # A range of several pi: coefficients FP16 cannot carry (a max error near 0.08 on the device): refused.
    assert fit_polynomial(np.sin, -6.25, 6.25)[3] > 5e-3
    from onnx import TensorProto, helper

    def graph(first):
        nodes = [
            helper.make_node(first, ["x"], ["s"]),
            helper.make_node("Sub", ["s", "q"], ["d"]),
            helper.make_node("Mul", ["d", "pi"], ["a"]),
            helper.make_node("Sin", ["a"], ["y"]),
        ]
        inits = [
            helper.make_tensor("q", TensorProto.FLOAT, [], [0.25]),
            helper.make_tensor("pi", TensorProto.FLOAT, [], [np.pi]),
        ]
        return helper.make_model(
            helper.make_graph(
                nodes,
                "g",
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
                inits,
            ),
            ir_version=8,
            opset_imports=[helper.make_opsetid("", 14)],
        )

    bounded = graph("Sigmoid")
    assert interval(Graph(bounded), "a") == pytest.approx((-np.pi / 4, 3 * np.pi / 4))
    assert _rule("Sin").needed(bounded)
    x = np.array([-30, -1, 0.5, 30], np.float32)
    np.testing.assert_allclose(_run(_rule("Sin").rewrite(bounded), {"x": x})[0], _run(bounded, {"x": x})[0], atol=5e-5)
    assert not _rule("Sin").needed(graph("Relu"))  # unbounded: no approximation


class NmsFreeHead(torch.nn.Module):
    """An NMS-free detector's selection: TopK whose K the exporter computes from a shape."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, 2, 1)

    def forward(self, x):
        scores = self.conv(x / 255).sigmoid().flatten(1)
        k = torch.clamp(torch.tensor(scores.shape[1]) // 8, max=300)
        return torch.topk(scores, k)


def test_topk_with_k_from_a_shape_converts_and_its_indices_are_judged_as_sets(tmp_path):
    path = tmp_path / "head.onnx"
    torch.onnx.export(
        NmsFreeHead().eval(),
        (torch.rand(1, 3, 64, 64) * 255,),
        str(path),
        dynamo=False,
        opset_version=13,
        input_names=["images"],
        output_names=["scores", "index"],
        dynamic_axes={"images": {2: "h", 3: "w"}},
    )
    assert "Shape" in {n.op_type for n in onnx.load(str(path)).graph.node}
    blob = tmp_path / "head.blob"
    result = run_cli("convert", "--input", path, "--input-shape", "[1, 3, 64, 64]", "--output", blob, "--strict")
    assert result.returncode == 0, result.stderr
    report = _report(blob)
    assert "TopK's K folded to a constant" in _kept(report)
    assert sorted(t.name for t in assert_depthai_agrees(blob).outputs) == ["index", "scores"]
    index = next(o for o in report["numeric"]["outputs"] if o["name"] == "index")
    assert index["passed"] and index["note"].startswith("TopK indices, judged as sets")


SUPERPOINT = """
import torch


class SuperPointish(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(3, 65, 3, 2, 1), torch.nn.Conv2d(3, 16, 3, 2, 1)

    def forward(self, x):
        return {"semi": self.a(x / 255), "desc": torch.nn.functional.normalize(self.b(x / 255), dim=1)}


class TupleOut(SuperPointish):
    def forward(self, x):
        out = super().forward(x)
        return out["semi"], out["desc"]
"""


def test_pytorch_outputs_take_a_dicts_keys_or_name_outputs(tmp_path):
    (tmp_path / "superpointish.py").write_text(SUPERPOINT)
    sys.path.insert(0, str(tmp_path))
    try:
        import superpointish

        torch.save(superpointish.SuperPointish().state_dict(), tmp_path / "sp.pth")
    finally:
        sys.path.remove(str(tmp_path))
    common = ["--input", "sp.pth", "--input-shape", "[1, 3, 64, 64]", "--strict"]
    by_keys = run_cli(
        "convert", *common, "--model-class", "superpointish:SuperPointish", "--output", "a.blob", cwd=tmp_path
    )
    assert by_keys.returncode == 0, by_keys.stderr
    named = run_cli(
        "convert",
        *common,
        "--model-class",
        "superpointish:TupleOut",
        "--name-outputs",
        "semi,desc",
        "--output",
        "b.blob",
        cwd=tmp_path,
    )
    assert named.returncode == 0, named.stderr
    for blob in ("a.blob", "b.blob"):
        assert sorted(t.name for t in assert_depthai_agrees(tmp_path / blob).outputs) == ["desc", "semi"]
    wrong = run_cli(
        "convert",
        *common,
        "--model-class",
        "superpointish:TupleOut",
        "--name-outputs",
        "semi",
        "--output",
        "c.blob",
        cwd=tmp_path,
    )
    assert wrong.returncode == 11 and "--name-outputs gives 1 name(s) (semi), but the model returns 2" in wrong.stderr
    # The report lists the tensors --output-names can cut at.
    tensors = {t["name"]: t["op"] for t in _report(tmp_path / "a.blob")["onnx"]["tensors"]}
    assert tensors["/b/Conv_output_0"] == "Conv" and tensors["semi"] == "Conv"


class _ScalarBroadcast(torch.nn.Module):
    """A state updated with a computed scalar: x + features.mean() (no dims), and features - its mean."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.mix = torch.nn.Linear(16, 16)

    def forward(self, image, state):
        features = self.conv(image / 255)
        return features - features.mean(), torch.tanh(self.mix(state) + features.mean())


def test_a_computed_scalar_in_arithmetic_converts_and_passes_the_check(tmp_path):
    """Found testing #20: OpenVINO 2021.4's CPU plugin could not run x + y.mean() ("could not create
    a primitive descriptor for a reorder primitive"), so the conversion failed at verify (exit 14)
    though the blob compiled; the scalar now goes as a [1] vector."""
    path = tmp_path / "scalar.onnx"
    torch.onnx.export(
        _ScalarBroadcast().eval(),
        (torch.zeros(1, 3, 32, 40), torch.zeros(1, 16)),
        str(path),
        opset_version=13,
        dynamo=False,
        input_names=["image", "state"],
        output_names=["centred", "state_out"],
    )
    blob = tmp_path / "scalar.blob"
    result = run_cli("convert", "--input", path, "--output", blob, "--input-type", "state=FP16", "--strict")
    assert result.returncode == 0, result.stderr
    report = _report(blob)
    assert {"Add of a computed scalar: the scalar as [1]", "Sub of a computed scalar: the scalar as [1]"} <= set(
        _kept(report)
    )
    assert report["verdict"]["result"] == "passed"
    assert_depthai_agrees(blob)


class _TopLevelNorm(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 1)

    def forward(self, x):  # F.normalize at the top level: its ONNX node is "/ReduceL2", no module
        return torch.nn.functional.normalize(self.conv(x), dim=1)


class _NestedNorm(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.head = _TopLevelNorm()

    def forward(self, x):
        return self.head(x)


@pytest.mark.unit
@pytest.mark.parametrize(
    "model,node,module", [(_TopLevelNorm(), "/ReduceL2", None), (_NestedNorm(), "/head/ReduceL2", "head")]
)
def test_a_rewritten_node_is_named_as_the_users_node_and_module(tmp_path, model, node, module):
    """Issue #28: a rule's new nodes are named after the node they replace ("/ReduceL2/Mul_22"), and
    messages read that name as a module path ("PyTorch module `ReduceL2`", `Sin`). Every node a rule
    makes traces back to the user's node, its op and its real module (none at the top level), also
    through a second rewrite of a rewritten node."""
    from myriad_blob.export_onnx import describe_onnx
    from myriad_blob.rules.advice import module_path, where
    from myriad_blob.rules.onnx_graph import Builder

    path = tmp_path / "norm.onnx"
    torch.onnx.export(model.eval(), (torch.randn(1, 3, 8, 8),), str(path), opset_version=13, dynamo=False)
    original = onnx.load(str(path))
    rewritten = _rule("ReduceL2").rewrite(original)
    made = [n for n in rewritten.graph.node if n.name.startswith(node + "/")]
    assert made and node not in {n.name for n in rewritten.graph.node}
    onnx.save(rewritten, str(tmp_path / "rewritten.onnx"))
    described = describe_onnx(tmp_path / "rewritten.onnx", False, user_nodes={n.name for n in original.graph.node})
    for new in made:
        assert described.origin(new.name) == {"node": node, "op": "ReduceL2"}
        assert described.origin(new.output[0] + "/WithoutBiases") == {"node": node, "op": "ReduceL2"}
        assert module_path(described.origin(new.name)["node"]) == module
        assert "PyTorch module `ReduceL2`" not in where(new.name, "Power", described.origin(new.name))
    again = Builder(rewritten, made[0])
    again.node("Relu", [made[0].output[0]])
    assert again.nodes[0].doc_string == made[0].doc_string  # still the user's node, not ours


@pytest.mark.unit
def test_a_users_node_carrying_the_rewrite_mark_is_not_believed(tmp_path):
    """Found in review: a file whose own Relu says it is "myriad-blob rewrite of Sin /evil" was named in
    the report as that made-up Sin node. Only nodes our rules made (not among the user's) are traced."""
    from myriad_blob.export_onnx import describe_onnx
    from myriad_blob.rules.onnx_graph import REWRITE_OF

    path = tmp_path / "spoof.onnx"
    torch.onnx.export(torch.nn.ReLU(), (torch.randn(1, 3, 8, 8),), str(path), opset_version=13, dynamo=False)
    model = onnx.load(str(path))
    (relu,) = model.graph.node
    relu.doc_string = REWRITE_OF + "Sin /evil"
    onnx.save(model, str(path))
    described = describe_onnx(path, False, user_nodes={relu.name})
    assert described.origin(relu.name) == {"node": relu.name, "op": "Relu"}
    assert describe_onnx(path, False).origin(relu.name) == {"node": relu.name, "op": "Relu"}
