"""FP16 where the chip computes: the plugin's decompositions, emulated stage by stage (issue #25)."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import stage_models
from conftest import run_cli
from myriad_blob import onnx_prep
from myriad_blob.artifacts import FP16_MAX, IRLayer
from myriad_blob.checks.fp16_stages import BY_TYPE, DECOMPOSITIONS, HARD_FRAMES, camera_frames, layer_stages
from myriad_blob.diagnosis import onnx_tensor_values
from myriad_blob.rules.onnx_rules import ONNX_RULES
from myriad_blob.stage_graph import parse_stage_graph

DUMP = Path(__file__).parent / "data" / "normalize_linear.dot"

RULE = "ReduceL2 -> scaled mean of squares"


@pytest.fixture
def rule_off(monkeypatch):
    """The ONNX rule table without the ReduceL2 row (in this process: compile_model, stage_check)."""
    monkeypatch.setattr(onnx_prep, "ONNX_RULES", tuple(rule for rule in ONNX_RULES if rule.name != RULE))


@pytest.mark.unit
def test_reduce_l2_is_emulated_as_the_plugin_computes_it():
    row = BY_TYPE["ReduceL2"]
    # 128 values of 36.5: the norm is 413 (fine in FP16), the sum of squares 170,528 is not.
    x = np.full((1, 128), 36.5, np.float32)
    squares, mean, total, root = row.emulate([x], {"axes": (1,)})
    assert squares.dtype == np.float16 and float(squares.max()) == pytest.approx(36.5**2, rel=1e-3)
    assert float(mean.max()) == pytest.approx(36.5**2, rel=1e-3)
    assert np.isinf(total).all() and np.isinf(root).all()
    assert np.linalg.norm(x) < FP16_MAX  # the IR layer's own output cannot show it
    # Divided by 64 first, every stage fits, and the root is the norm / 64.
    *_, total, root = row.emulate([x / 64], {"axes": (1,)})
    assert np.isfinite(total).all() and float(root.max()) == pytest.approx(np.linalg.norm(x) / 64, rel=1e-3)


@pytest.mark.unit
def test_divide_is_emulated_as_reciprocal_then_product():
    reciprocal, product = BY_TYPE["Divide"].emulate(
        [np.ones((1, 4), np.float32), np.array([[2.0, 1e-5, 0.0, 1e-12]], np.float32)], {}
    )
    assert float(reciprocal[0, 0]) == 0.5 and np.isinf(reciprocal[0, 1:]).all()  # 1e-5: 1/y > 65504
    assert float(product[0, 0]) == 0.5


@pytest.mark.unit
def test_the_hard_frames_are_what_a_camera_sends():
    frames = camera_frames((1, 3, 16, 24), integer=True)
    assert tuple(frames) == HARD_FRAMES
    assert (frames["white"] == 255).all() and (frames["black"] == 0).all()
    assert set(np.unique(frames["contrast"])) == {0.0, 255.0} and frames["contrast"][0, 0, 0, 7] == 0
    assert frames["contrast"][0, 0, 0, 8] == 255
    normalized = camera_frames((1, 3, 16, 24), integer=False)["white"]
    assert normalized[0, 0, 0, 0] == pytest.approx((1 - 0.485) / 0.229, rel=1e-5)


@pytest.mark.unit
def test_stages_are_attributed_to_the_ir_layer_they_decompose():
    """In the dump only the last stage of a decomposition keeps the IR layer's name; the plugin's
    own layers before it (Power_775, ReduceSum_776/pool, ReduceSum_776/mul) belong to it too."""

    class IR:
        layers = (
            IRLayer("/Div", "Multiply"),
            IRLayer("/l/Gemm", "Add"),
            IRLayer("/ReduceL2", "ReduceL2"),
            IRLayer("/Clip", "Clamp"),
            IRLayer("y", "Divide"),
        )

    layers = {layer.layer: layer for layer in layer_stages(parse_stage_graph(DUMP.read_text()), IR())}
    assert set(layers) == {"/ReduceL2", "y"}
    assert [s.type for s in layers["/ReduceL2"].stages] == ["Power", "ReduceMean", "Power", "Power"]
    assert [s.layer for s in layers["/ReduceL2"].stages][:3] == ["Power_775", "ReduceSum_776/pool", "ReduceSum_776/mul"]
    assert [s.type for s in layers["y"].stages] == ["Power", "Prod"]
    assert all(layer.kind == "decomposed" for layer in layers.values())


class _Conv(nn.Module):
    def __init__(self, then):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.then = nn.Conv2d(3, 32, 3, padding=1), then

    def forward(self, x):
        return self.then(self.conv(x / 255))


class _Linear(nn.Module):
    def __init__(self, then):
        super().__init__()
        torch.manual_seed(0)
        self.fc, self.then = nn.Linear(48, 128), then

    def forward(self, x):
        return self.then(self.fc(x.flatten(1) / 255))


def _divide(y):
    return y / (torch.sigmoid(y) + 1)


# Every row of the table, with a micro-model holding its layer and the stages the dump must show.
ROW_MODELS = {
    "ReduceL2 over channels (4-D)": (
        _Conv(lambda y: torch.norm(y, p=2, dim=1, keepdim=True)),
        [1, 3, 8, 8],
        "ReduceL2",
        ["Power", "AvgPool", "Power", "Power"],
    ),
    "ReduceL2 over features (2-D)": (
        _Linear(lambda y: torch.norm(y, p=2, dim=1, keepdim=True)),
        [1, 3, 4, 4],
        "ReduceL2",
        ["Power", "ReduceMean", "Power", "Power"],
    ),
    "ReduceSum": (_Conv(lambda y: y.sum(dim=1, keepdim=True)), [1, 3, 8, 8], "ReduceSum", ["AvgPool", "Power"]),
    "Divide": (_Conv(_divide), [1, 3, 8, 8], "Divide", ["Power", "Prod"]),
    "Subtract": (_Conv(lambda y: y - torch.sigmoid(y)), [1, 3, 8, 8], "Subtract", ["Power", "Sum"]),
}


@pytest.mark.unit
def test_every_table_row_has_a_dump_test():
    assert {row.layer_type for row in DECOMPOSITIONS} == {layer_type for _, _, layer_type, _ in ROW_MODELS.values()}


@pytest.mark.parametrize("case", list(ROW_MODELS))
def test_the_dump_shows_each_rows_stage_sequence(tmp_path, case, rule_off):
    """The plugin's own ReduceL2, not the rewrite's (rule_off)."""
    model, shape, layer_type, expected = ROW_MODELS[case]
    path = stage_models.onnx_file(model, shape, tmp_path / "m.onnx")
    ir, compiled, _ = stage_models.compile_model(path)
    found = [layer for layer in layer_stages(compiled.stage_graph, ir) if layer.type == layer_type]
    assert len(found) == 1, [(layer.layer, layer.type, [s.type for s in layer.stages]) for layer in found]
    assert [s.type for s in found[0].stages] == expected and found[0].kind == "decomposed"
    assert all(s.unit == "SHAVE" for s in found[0].stages)
    # The row's emulation runs on the layer's ONNX inputs: one value per stage, none left out.
    check, _ = stage_models.stage_check(path, input_shapes=[str(shape)])
    assert check.not_emulated == () and {s.layer for s in check.stages} >= {found[0].layer}


def _convert(tmp_path, model, out, *extra):
    path = stage_models.onnx_file(model, [1, 3, 64, 64], tmp_path / f"{out}.onnx")
    blob = tmp_path / out / "m.blob"
    result = run_cli("convert", "--input", path, "--output", blob, *extra)
    report_path = tmp_path / out / "m.blob.report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    markdown = (tmp_path / out / "m.blob.report.md").read_text() if report else ""
    return result, report, markdown


def _overflows(check, frame="photo"):
    return [s for s in check.stages if s.verdict == "overflow" and s.frame == frame]


@pytest.mark.parametrize("frontend", ["ov2022", "mo2021"])
def test_the_face_embeddings_overflow_is_named_with_stage_layer_node_and_module(tmp_path, rule_off, frontend):
    """Issue #25: conv -> Linear -> L2 normalisation. The IR's ReduceL2 gives ~400 (fine in FP16),
    so the IR check passes; the plugin's sum of squares is ~160,000: inf on the chip. Both IR front
    ends keep ReduceL2 as one layer, which the plugin decomposes alike."""
    path = stage_models.onnx_file(stage_models.FaceEmbedding(), [1, 3, 64, 64], tmp_path / "face.onnx")
    check, _ = stage_models.stage_check(path, input_shapes=["[1, 3, 64, 64]"], frontend=frontend)
    (first, *_) = _overflows(check)
    assert (first.type, first.step, first.layer_type) == ("Power", "sum of squares (mean x N)", "ReduceL2")
    assert {s.frame for s in check.stages if s.verdict == "overflow"} == {"photo", *HARD_FRAMES}
    (finding, *_) = check.findings()
    assert finding.message.startswith("FP16 overflow inside a decomposed layer: stage `")
    assert "(Power, sum of squares (mean x N)) of layer `/norm/ReduceL2` (ReduceL2; ONNX node `/norm/ReduceL2`" in (
        finding.message
    )
    assert "PyTorch module `norm`" in finding.message and "divide the input by a power of two" in finding.message
    # Divided by 64 before normalising, every stage fits: the check tells the two apart.
    fixed = stage_models.onnx_file(stage_models.FaceEmbedding(prescale=64), [1, 3, 64, 64], tmp_path / "f64.onnx")
    check, _ = stage_models.stage_check(fixed, input_shapes=["[1, 3, 64, 64]"], frontend=frontend)
    assert [s.verdict for s in check.stages] and all(s.verdict == "ok" for s in check.stages)
    assert not check.findings()


def test_the_face_embedding_converts_right_with_the_rewrite_and_a_black_frame_is_named(tmp_path):
    """With the ReduceL2 rule (on by default) the face embedding passes --strict; without biases a
    black frame (a lens cap) gives an all-zero embedding, whose norm clipped to F.normalize's eps=1e-12
    is 0 in FP16: 1/0 = inf in the Div's first stage (PyTorch gives 0): a warning naming the stage and
    the frame, --strict exit 14, while the photo passes."""
    fixed, report, markdown = _convert(tmp_path, stage_models.FaceEmbedding(), "a", "--strict")
    assert fixed.returncode == 0, fixed.stderr
    steps = {step["name"]: step for step in report["ir"]["preparation"]}
    assert steps[RULE]["kept"] and "sum of squares up to" in steps[RULE]["detail"]
    stages = report["plugin_stages"]
    assert stages["checked"] and stages["counts"]["NCE"] >= 2 and stages["counts"]["SHAVE"] >= 4
    assert not [layer for layer in stages["layers"] if layer["type"] == "ReduceL2"]  # no ReduceL2 left
    assert all(s["verdict"] == "ok" for s in stages["stages"]) and report["verdict"]["result"] == "passed"
    assert (
        "**Plugin stages** (what the Myriad X runs): " in markdown and "| decomposed | Power (SHAVE) → Prod" in markdown
    )

    lenient, report, markdown = _convert(tmp_path, stage_models.FaceEmbedding(bias=False), "b")
    assert lenient.returncode == 0, lenient.stderr
    assert report["numeric"]["passed"] is True and report["verdict"]["result"] == "warnings"
    warning = next(w for w in report["warnings"] if w.startswith("FP16 overflow on a hard frame"))
    assert "(Power, 1/y) of layer `y` (Divide; ONNX node `/norm/Div`" in warning and "the black frame" in warning
    assert any("| 1/y | `y` | black | inf | ❌ overflow |" in line for line in markdown.splitlines())
    strict, _, _ = _convert(tmp_path, stage_models.FaceEmbedding(bias=False), "c", "--strict")
    assert strict.returncode == 14 and "verify failed: FP16 overflow on a hard frame" in strict.stderr


@pytest.mark.unit
def test_the_reduce_l2_rewrite_keeps_every_intermediate_in_fp16_for_any_input(tmp_path):
    """The rewritten ReduceL2 over 256 channels on ONNX Runtime: the norm as before (ORT agrees),
    and no intermediate beyond FP16_MAX / 4 (the near-overflow headroom), for the largest values an
    FP16 tensor holds and for small ones (whose squares a plain prescale would flush)."""
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("ReduceL2", ["x"], ["y"], name="/norm/ReduceL2", axes=[1], keepdims=1)],
        "l2",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 256, 8, 8])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 1, 8, 8])],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)], ir_version=8)
    rule = next(rule for rule in ONNX_RULES if rule.name == RULE)
    assert "1 ReduceL2 node(s) whose sum of squares can pass FP16's 65504" in rule.needed(model)
    rewritten = rule.rewrite(model)
    assert "ReduceL2" not in {node.op_type for node in rewritten.graph.node}
    onnx.save(rewritten, tmp_path / "rewritten.onnx")
    x = "x"
    # The last Mul's inputs are the norm's parts: the root times sqrt(N), and max |x|.
    top = next(node for node in rewritten.graph.node if "y" in node.output)
    rng = np.random.default_rng(0)
    for peak in (65504.0, 3000.0, 100.0, 1.0, 0.01):
        values = (rng.uniform(-1, 1, (1, 256, 8, 8)) * peak).astype(np.float32)
        values[0, 0] = peak
        tensors = onnx_tensor_values(tmp_path / "rewritten.onnx", {x: values})
        norm = np.linalg.norm(values.astype(np.float64), axis=1, keepdims=True)
        assert tensors["y"] == pytest.approx(norm, rel=1e-5)
        inner = {name: v for name, v in tensors.items() if name not in (x, "y", *top.input)}
        assert max(float(np.abs(v).max()) for v in inner.values()) <= max(FP16_MAX / 4, peak)  # |x| is x's size
        # Each branch's squares in FP16: the larger branch holds at least 2^-14 (FP16's smallest normal).
        # The squares' largest value is 1 whatever the input: FP16 flushes only what adds < 2^-14 to the mean.
        means = [v for name, v in inner.items() if "reducemean" in name.lower()]
        assert means and all(float(v.min()) >= 1 / 256 - 1e-6 and float(v.max()) <= 1 for v in means)


@pytest.mark.parametrize("shape", [[1, 1, 100, 100], [1, 1, 480, 640]])
def test_superpoint_with_its_descriptor_norm_inside_is_right_on_the_chip(tmp_path, shape, monkeypatch):
    """SuperPoint's descriptor head ends in desc.div(torch.norm(desc, p=2, dim=1, keepdim=True)) over
    256 channels; its norm is ~1,000 on the photo. With the rewrite every stage fits FP16 on the photo
    and the hard frames; without it (the rule switched off) the check names the sum of squares."""
    path = stage_models.onnx_file(stage_models.SuperPoint(), shape, tmp_path / "superpoint.onnx")
    check, compiled = stage_models.stage_check(path, input_shapes=[str(shape)])
    assert check.error is None and compiled.stage_graph.counts()["NCE"] >= 10
    assert not [layer for layer in check.layers if layer.type == "ReduceL2"]
    assert check.stages and all(s.verdict == "ok" for s in check.stages) and not check.findings()

    monkeypatch.setattr(onnx_prep, "ONNX_RULES", tuple(rule for rule in ONNX_RULES if rule.name != RULE))
    check, _ = stage_models.stage_check(path, input_shapes=[str(shape)])
    (layer,) = [layer for layer in check.layers if layer.type == "ReduceL2"]
    assert [s.type for s in layer.stages] == ["Power", "AvgPool", "Power", "Power"]
    (first, *_) = _overflows(check)
    assert first.layer == layer.layer and first.step == "sum of squares (mean x N)" and first.onnx_node == "/ReduceL2"
    assert check.findings()[0].reason.startswith(f"FP16 overflow in stage {first.stage} (sum of squares")


class _WhiteOverflows(nn.Module):
    """An IR layer within FP16 on the photo (about 12,000) and beyond it on a white frame (about
    83,000): a cube of the mean brightness, scaled."""

    def forward(self, x):
        m = x.mean(dim=(2, 3))
        return (m * 0.005) * m * m


class _SumOverAll(nn.Module):
    """A Reduce over every axis (ONNX ReduceSum with no axes), which the plugin decomposes."""

    def forward(self, x):
        return x * (x * 1e-6).sum()


def test_an_ir_layer_that_overflows_only_on_a_hard_frame_warns_and_strict_fails(tmp_path):
    """Found in review: the hard frames' IR-layer overflows were shown but gave no warning, so the
    verdict said passed and --strict exit 0. Now a finding names the layer and the frame, and the
    report's first line says it next to "numbers match"."""
    result, report, markdown = _convert(
        tmp_path, _WhiteOverflows(), "a", "--input-type", "FP16", "--scale", "[1, 1, 1]"
    )
    assert result.returncode == 0, result.stderr
    assert report["numeric"]["outputs_passed"] and report["verdict"]["result"] == "warnings"
    (reason,) = [r for r in report["verdict"]["reasons"] if "frame" in r]
    assert reason.startswith("FP16 overflow in layer ") and reason.endswith(" on the white frame")
    assert "numbers match" in markdown.splitlines()[2] and "on the white frame**" in markdown.splitlines()[2]
    strict, _, _ = _convert(
        tmp_path, _WhiteOverflows(), "b", "--input-type", "FP16", "--scale", "[1, 1, 1]", "--strict"
    )
    assert strict.returncode == 14 and "FP16 overflow on a hard frame: layer" in strict.stderr


def test_a_reduce_over_every_axis_is_emulated(tmp_path):
    """Found in review: a ReduceSum without axes crashed the stage check (axes None), which then
    said it could not run and failed --strict on a model whose numbers match."""
    result, report, _ = _convert(tmp_path, _SumOverAll(), "a", "--strict")
    assert result.returncode == 0, result.stderr
    stages = report["plugin_stages"]
    assert stages["checked"] and not stages.get("error")
    summed = [s for s in stages["stages"] if s["layer_type"] == "ReduceSum"]
    assert summed and {s["frame"] for s in summed} == {"photo", *HARD_FRAMES}
    assert all(s["verdict"] == "ok" for s in summed)
