"""FP16 where the chip computes: the plugin's decompositions, emulated stage by stage (issue #25)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import stage_models
from conftest import run_cli
from myriad_blob.checks.fp16_stages import BY_TYPE, DECOMPOSITIONS, HARD_FRAMES, camera_frames, layer_stages
from myriad_blob.ir import IRLayer
from myriad_blob.numeric import FP16_MAX
from myriad_blob.stage_graph import parse_stage_graph

DUMP = Path(__file__).parent / "data" / "normalize_linear.dot"


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
}


@pytest.mark.unit
def test_every_table_row_has_a_dump_test():
    assert {row.layer_type for row in DECOMPOSITIONS} == {layer_type for _, _, layer_type, _ in ROW_MODELS.values()}


@pytest.mark.parametrize("case", list(ROW_MODELS))
def test_the_dump_shows_each_rows_stage_sequence(tmp_path, case):
    model, shape, layer_type, expected = ROW_MODELS[case]
    path = stage_models.onnx_file(model, shape, tmp_path / "m.onnx")
    ir, compiled, _ = stage_models.compile_model(path)
    found = [layer for layer in layer_stages(compiled.stage_graph, ir) if layer.type == layer_type]
    assert len(found) == 1, [(layer.layer, layer.type, [s.type for s in layer.stages]) for layer in found]
    assert [s.type for s in found[0].stages] == expected and found[0].kind == "decomposed"
    assert all(s.unit == "SHAVE" for s in found[0].stages)


def _convert(tmp_path, model, out, *extra):
    path = stage_models.onnx_file(model, [1, 3, 64, 64], tmp_path / f"{out}.onnx")
    blob = tmp_path / out / "m.blob"
    result = run_cli("convert", "--input", path, "--output", blob, *extra)
    report_path = tmp_path / out / "m.blob.report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    markdown = (tmp_path / out / "m.blob.report.md").read_text() if report else ""
    return result, report, markdown


def test_the_face_embeddings_overflow_is_named_with_its_stage_and_fixed_by_dividing_by_64(tmp_path):
    """Issue #25: conv -> Linear -> L2 normalisation. The IR's ReduceL2 gives ~400 (fine in FP16),
    so the IR check passes; the plugin's sum of squares is ~160,000: inf on the chip."""
    lenient, report, markdown = _convert(tmp_path, stage_models.FaceEmbedding(), "a")
    assert lenient.returncode == 0, lenient.stderr
    assert report["numeric"]["outputs_passed"] is True and report["numeric"]["fp16"]["overflow"] == []
    assert report["numeric"]["passed"] is False and report["verdict"]["result"] == "warnings"
    warning = next(w for w in report["warnings"] if w.startswith("FP16 overflow inside a decomposed layer"))
    assert "sum of squares" in warning and "layer `/ReduceL2` (ReduceL2; ONNX node `/ReduceL2`" in warning
    assert "divide the input by a power of two" in warning
    stages = report["numeric"]["stages"]
    assert stages["counts"]["NCE"] >= 2 and stages["counts"]["SHAVE"] >= 4
    overflow = [s for s in stages["stages"] if s["verdict"] == "overflow"]
    assert {s["frame"] for s in overflow} == {"photo", *HARD_FRAMES}
    assert {(s["type"], s["layer"]) for s in overflow} == {("Power", "/ReduceL2")}
    assert "| `/ReduceL2` | ReduceL2 | decomposed | Power (SHAVE) → ReduceMean (SHAVE) → Power (SHAVE)" in markdown
    assert "**Plugin stages**" in markdown and "❌ overflow" in markdown

    strict, report, _ = _convert(tmp_path, stage_models.FaceEmbedding(), "b", "--strict")
    assert strict.returncode == 14, strict.stderr
    assert "verify failed: FP16 overflow inside a decomposed layer" in strict.stderr
    assert not (tmp_path / "b" / "m.blob").exists()

    fixed, report, _ = _convert(tmp_path, stage_models.FaceEmbedding(prescale=64), "c", "--strict")
    assert fixed.returncode == 0, fixed.stderr
    assert all(s["verdict"] == "ok" for s in report["numeric"]["stages"]["stages"])
    assert report["verdict"]["result"] == "passed"
