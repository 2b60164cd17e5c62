"""FP16 on the device: activations beyond FP16's range are found layer by layer, not only at the outputs."""

import json
import textwrap

import pytest
import torch

import models
from conftest import SHAPE, SHAPE_ARG, run_cli
from myriad_blob.checks.fp16_range import fp16_findings
from myriad_blob.errors import ConversionError, Stage
from myriad_blob.findings import judge
from myriad_blob.numeric import FP16_MAX, Fp16Range, LayerRange, photo_input
from myriad_blob.report import overall_verdict


def _torchscript(tmp_path, model, name):
    path = tmp_path / f"{name}.pt"
    torch.jit.save(torch.jit.trace(model.eval(), torch.zeros(SHAPE)), str(path))
    return path


def _convert(tmp_path, model_path, out, *extra):
    result = run_cli(
        "convert", "--input", model_path, "--input-shape", SHAPE_ARG, "--output", tmp_path / out / "m.blob", *extra
    )
    report_path = tmp_path / out / "m.blob.report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    markdown = (tmp_path / out / "m.blob.report.md").read_text() if report else ""
    return result, report, markdown


@pytest.mark.parametrize("frontend", ["ov2022", "mo2021"])
def test_an_overflow_in_a_middle_layer_warns_naming_it_and_fails_with_strict(tmp_path, frontend):
    model = models.MiddleOverflow()
    path = _torchscript(tmp_path, model, "middle")
    lenient, report, markdown = _convert(tmp_path, path, "a", "--frontend", frontend)
    assert lenient.returncode == 0, lenient.stderr
    # FP32 sees nothing wrong at the output: the outputs match, but the check does not pass...
    assert report["numeric"]["outputs_passed"] is True and report["numeric"]["passed"] is False
    assert report["verdict"]["result"] == "warnings" and any("FP16 overflow" in r for r in report["verdict"]["reasons"])
    # ...but the first conv leaves FP16's range, and the warning says where, with the fix.
    warning = next(w for w in report["warnings"] if w.startswith("FP16 overflow"))
    assert "`/features/0/Conv" in warning and "ONNX node `/features/0/Conv`" in warning
    assert "PyTorch module `features.0`" in warning and "65504" in warning and "Rescale" in warning
    assert f"myriad-blob: warning: {warning}" in lenient.stderr
    fp16 = report["numeric"]["fp16"]
    assert fp16["checked"] and fp16["overflow"]
    assert {layer["onnx_node"] for layer in fp16["layers"] if layer["verdict"] == "overflow"} == {
        "/features/0/Conv",
        "/features/1/Relu",
    }
    assert all(
        layer["verdict"] == "ok" for layer in fp16["layers"] if layer["onnx_node"] in ("/features/2/Conv", "/head/Gemm")
    )
    # The recorded range is the real one: PyTorch's own activation on the same input, to FP16-weight precision.
    with torch.no_grad():
        conv = model.features[0](torch.from_numpy(photo_input(tuple(SHAPE), True, False)))
    conv_layers = [layer for layer in fp16["layers"] if layer["onnx_node"] == "/features/0/Conv"]
    assert conv_layers and all(
        layer["max_abs"] == pytest.approx(conv.abs().max().item(), rel=1e-3) for layer in conv_layers
    )
    assert all(layer["min"] == pytest.approx(conv.min().item(), rel=1e-3) for layer in conv_layers)
    # The Markdown report (the PR comment) shows the section open, naming the layer.
    section = markdown[markdown.index("**FP16 range**") :]
    assert "❌ overflow" in section and "`/features/0/Conv` (Conv)" in section
    assert "> ⚠️ FP16 overflow: layer `/features/0/Conv" in markdown
    # The host's FP16 emulation shows the consequence: inf from the middle layer reaches the output.
    (emulated,) = fp16["emulation"]["outputs"]
    assert fp16["emulation"]["passed"] is False and emulated["nonfinite"] > 0

    strict, report, _ = _convert(tmp_path, path, "b", "--frontend", frontend, "--strict")
    assert strict.returncode == 14, strict.stderr
    assert strict.stderr.startswith("myriad-blob: verify failed: FP16 overflow: layer `/features/0/Conv")
    assert not (tmp_path / "b" / "m.blob").exists()
    assert report["error"]["stage"] == "verify" and report["blob"] is None
    assert report["numeric"]["fp16"]["overflow"]


def test_the_tame_twin_converts_without_the_warning(tmp_path):
    strict, report, markdown = _convert(tmp_path, _torchscript(tmp_path, models.MiddleTame(), "tame"), "a", "--strict")
    assert strict.returncode == 0, strict.stderr
    assert "FP16" not in strict.stderr and not any("FP16" in w for w in report["warnings"])
    fp16 = report["numeric"]["fp16"]
    assert fp16["checked"] and not fp16["overflow"] and not fp16["near_overflow"] and not fp16["underflow"]
    assert {layer["verdict"] for layer in fp16["layers"]} == {"ok"}
    top = max(fp16["layers"], key=lambda layer: layer["max_abs"])
    assert 1000 < top["max_abs"] < FP16_MAX / 4 and top["headroom"] > 4
    assert fp16["emulation"]["passed"] is True and fp16["emulation"]["outputs"][0]["cosine"] > 0.9999
    # All is well: the section is folded, its summary names the largest layer.
    assert "<details><summary>FP16 range: all" in markdown and "**FP16 range**" not in markdown


def test_an_output_beyond_fp16_is_caught(tmp_path):
    path = _torchscript(tmp_path, models.OutputOverflow(), "output")
    lenient, report, _ = _convert(tmp_path, path, "a")
    assert lenient.returncode == 0, lenient.stderr
    # FP32 on the CPU computes ~3e6 exactly, but the device overflows: not a pass (case10's kind)
    assert report["numeric"]["outputs_passed"] is True and report["numeric"]["passed"] is False
    warning = next(w for w in report["warnings"] if w.startswith("FP16 overflow"))
    assert "ONNX node `/conv/Conv`" in warning and "PyTorch module `conv`" in warning
    (layer,) = [layer for layer in report["numeric"]["fp16"]["layers"] if layer["verdict"] == "overflow"][-1:]
    assert layer["max_abs"] > 1e6 and layer["headroom"] < 0.1

    strict, report, _ = _convert(tmp_path, path, "b", "--strict")
    assert strict.returncode == 14
    assert "verify failed: FP16 overflow" in strict.stderr and not (tmp_path / "b" / "m.blob").exists()


def test_convert_all_reports_the_overflow_per_variant(tmp_path):
    """Batches run the check in the warm legacy worker: the same verdicts, in each variant's report."""
    (tmp_path / "models").mkdir()
    _torchscript(tmp_path / "models", models.MiddleOverflow(), "middle")
    _torchscript(tmp_path / "models", models.MiddleTame(), "tame")
    (tmp_path / "myriad-blob.toml").write_text(
        textwrap.dedent(f"""\
        [defaults]
        input-shape = "{SHAPE_ARG}"

        [[models]]
        name = "middle"
        model = "models/middle.pt"

          [[models.variants]]
          name = "lenient"

          [[models.variants]]
          name = "strict"
          strict = true

        [[models]]
        name = "tame"
        model = "models/tame.pt"
        strict = true
        """)
    )
    result = run_cli("convert-all", "--jobs", "1", cwd=tmp_path)
    assert result.returncode != 0  # the strict variant of the overflowing model fails
    variants = {v["id"]: v for v in json.loads((tmp_path / "blobs" / "batch-report.json").read_text())["variants"]}
    assert variants["middle/lenient"]["status"] == "succeeded"
    assert any(w.startswith("FP16 overflow: layer `/features/0/Conv") for w in variants["middle/lenient"]["warnings"])
    assert variants["middle/strict"]["status"] == "failed"
    assert (
        variants["middle/strict"]["error"]["stage"] == "verify"
        and "FP16 overflow" in variants["middle/strict"]["error"]["message"]
    )
    assert variants["tame/default"]["status"] == "succeeded" and not variants["tame/default"]["warnings"]
    # The batch report (the action's PR comment in manifest mode) shows the overflow in its verdict lines.
    batch = (tmp_path / "blobs" / "batch-report.md").read_text()
    assert "**FP16 overflow** in `/features/0/Conv" in batch


def _layer(max_abs, *, minimum=0.0, nonfinite=0, nonzero=100, subnormal=0):
    return LayerRange(
        "l",
        "Convolution",
        0,
        (1, 100),
        minimum,
        max_abs,
        max_abs,
        nonfinite,
        nonzero,
        subnormal,
        "/block/conv/Conv",
        "Conv",
    )


@pytest.mark.unit
def test_fp16_verdict_thresholds():
    assert _layer(FP16_MAX).verdict == "near overflow" and _layer(FP16_MAX * 1.001).verdict == "overflow"
    assert _layer(FP16_MAX / 3.9).verdict == "near overflow" and _layer(FP16_MAX / 4.1).verdict == "ok"
    assert _layer(1.0, nonfinite=3).verdict == "overflow" and _layer(1.0, nonfinite=3).headroom == 0
    # Underflow: many values below FP16's smallest normal in a layer whose values are all small...
    assert _layer(0.01, subnormal=30).verdict == "underflow" and _layer(0.01, subnormal=0).verdict == "ok"
    # ...a quarter of them at least: a few stray ones (squeeze-excite layers have 1-3%) change nothing.
    assert _layer(0.01, subnormal=5).verdict == "ok"
    # ...not in a layer with a large peak, where they are below FP16's resolution next to it anyway.
    assert _layer(10.0, subnormal=50).verdict == "ok"
    assert _layer(0.0, nonzero=0).verdict == "ok" and _layer(0.0, nonzero=0).to_dict()["headroom"] is None
    assert _layer(1.0).module == "block.conv"
    check = Fp16Range((_layer(1.0), _layer(7e4), _layer(2e4), _layer(0.01, subnormal=40)))
    overflow, near, under = check.warnings()
    assert overflow.startswith(
        "FP16 overflow: layer `l` (Convolution; ONNX node `/block/conv/Conv`, Conv; "
        "PyTorch module `block.conv`) reaches 7e+04"
    )
    assert near.startswith("FP16 near overflow: 1 layer(s)") and under.startswith("FP16 underflow: 1 layer(s)")
    assert Fp16Range(error="boom").warnings() == [
        "the FP16 range check could not run (boom); activations were not checked against FP16's range"
    ]


@pytest.mark.unit
def test_fp16_findings_give_the_verdict_and_strict():
    """The FP16 range's findings (checks/fp16_range.py): one per kind of trouble, the verdict's
    reasons and --strict's failure from them (findings.judge), in that order."""
    check = Fp16Range((_layer(1.0), _layer(7e4), _layer(2e4), _layer(0.01, subnormal=40)))
    findings = fp16_findings(check)
    assert [f.reason for f in findings] == [
        "FP16 overflow in layer l",
        "FP16 near overflow in layer l",
        "FP16 underflow in layer l",
    ]
    assert [f.message for f in findings] == check.warnings()
    report = {"status": "succeeded", "findings": [f.to_dict() for f in findings]}
    assert overall_verdict(report) == {"result": "warnings", "reasons": [f.reason for f in findings]}
    assert judge(findings, strict=False) == check.warnings()
    with pytest.raises(ConversionError) as raised:
        judge(findings, strict=True)
    assert raised.value.stage == Stage.VERIFY and raised.value.message == check.overflow_summary() + " (--strict)"
    assert fp16_findings(Fp16Range((_layer(1.0),))) == []
    (failed,) = fp16_findings(Fp16Range(error="boom"))
    assert failed.reason == "the FP16 range check could not run (boom)"
