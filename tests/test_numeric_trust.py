"""The numeric check on real models (issue "A numeric check to trust"): a default input real nets
respond to, the right yardstick per output, a second opinion that names the diverging layer and
whose fault it is, and one verdict."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli
from myriad_blob import onnx_prep
from myriad_blob.checks.numeric_outputs import outputs_findings
from myriad_blob.numeric import (
    PHOTO_INPUT,
    SATURATED_LOGIT,
    NumericCheck,
    OutputComparison,
    Tolerances,
    check_photo,
    photo_input,
)
from myriad_blob.options import parse_options
from myriad_blob.pipeline import convert
from myriad_blob.report import overall_verdict
from myriad_blob.toolchain import default_dir

# PP-OCRv4's text detector as rapidocr ships it (PyPI, pinned; the wheel is cached between runs).
RAPIDOCR = ("rapidocr-onnxruntime", "1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx")


def _report(blob: Path) -> dict:
    return json.loads(blob.with_name(blob.name + ".report.json").read_text())


@pytest.fixture(scope="module")
def ppocr_detector():
    cache = default_dir().parent / "test-data"
    target = cache / Path(RAPIDOCR[2]).name
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--dest",
                str(cache),
                f"{RAPIDOCR[0]}=={RAPIDOCR[1]}",
            ],
            check=True,
        )
        (wheel,) = cache.glob(f"{RAPIDOCR[0].replace('-', '_')}-{RAPIDOCR[1]}-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            target.write_bytes(archive.read(RAPIDOCR[2]))
    return target


def test_ppocr_text_detector_gets_a_pass_without_sample(tmp_path, ppocr_detector):
    # Was "too small to compare: the original's values stay below 0.001" on the seeded smooth input.
    blob = tmp_path / "det.blob"
    result = run_cli(
        "convert",
        "--input",
        ppocr_detector,
        "--input-shape",
        "[1, 3, 480, 640]",
        "--output",
        blob,
        "--mean",
        "[123.675, 116.28, 103.53]",
        "--scale",
        "[58.395, 57.12, 57.375]",
        "--reverse-input-channels",
        "--strict",
    )
    assert result.returncode == 0, result.stderr
    report = _report(blob)
    assert report["numeric"]["input"] == PHOTO_INPUT and report["verdict"]["result"] == "passed"
    (output,) = report["numeric"]["outputs"]
    # The text map responds to the photo's printed text, and its saturated sigmoid is judged on the logits.
    assert output["passed"] and output["yardstick"].startswith("the logits feeding its Sigmoid")
    assert "saturated" in output["note"]


def test_cls_token_converts_and_passes(cases, tmp_path):
    # case03d: was "outputs differ (cosine 0.535) ... check --reverse-input-channels, --mean and --scale".
    blob = tmp_path / "vit.blob"
    result = run_cli(
        "convert",
        "--input",
        cases / "case03d_cls_token.pt",
        "--input-shape",
        "[1, 3, 64, 64]",
        "--output",
        blob,
        "--strict",
    )
    assert result.returncode == 0, result.stderr
    report = _report(blob)
    assert "constant tokens concatenated -> Pad + Add" in [s["name"] for s in report["ir"]["preparation"] if s["kept"]]
    assert report["verdict"]["result"] == "passed"


def test_second_opinion_names_the_runtime_at_fault_not_the_preprocessing(cases, tmp_path, monkeypatch):
    # Without the Pad + Add rule, the 2021.4 CPU plugin zeroes the token row: the diagnosis says so.
    rules = tuple(rule for rule in onnx_prep.ONNX_RULES if not rule.name.startswith("constant tokens"))
    monkeypatch.setattr(onnx_prep, "ONNX_RULES", rules)
    options = parse_options(
        input=cases / "case03d_cls_token.pt", output=tmp_path / "vit.blob", input_shapes=("[1, 3, 64, 64]",)
    )
    report = convert(options).to_dict()
    diagnosis = report["numeric"]["diagnosis"]
    assert diagnosis["cause"] == "runtime", diagnosis
    assert diagnosis["first_divergence"]["layer"] == "/Concat_1"
    assert diagnosis["first_divergence"]["onnx_node"] == "/Concat_1"
    warning = next(w for w in report["warnings"] if "outputs differ" in w)
    assert "OpenVINO 2021.4's CPU plugin" in warning and "2022.3" in warning and "`/Concat_1`" in warning
    assert "--reverse-input-channels" not in warning and "--mean" not in warning


class FaintDetector(torch.nn.Module):
    """A sigmoid map with nothing to detect: every value below 1e-3 on any input."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return torch.sigmoid(self.conv(x / 255.0) - 12.0)


def test_output_too_small_to_compare_is_judged_on_its_logits(tmp_path):
    path = tmp_path / "faint.pt"
    torch.jit.save(torch.jit.trace(FaintDetector().eval(), torch.zeros(1, 3, 64, 64)), str(path))
    blob = tmp_path / "faint.blob"
    result = run_cli("convert", "--input", path, "--input-shape", "[1, 3, 64, 64]", "--output", blob)
    assert result.returncode == 0, result.stderr
    report = _report(blob)
    (output,) = report["numeric"]["outputs"]
    assert output["passed"] and output["note"].startswith("too small to compare")
    assert "judged on the logits feeding its Sigmoid" in output["note"]
    # The values themselves (~1e-5) are below FP16's smallest normal: the device flushes them, and the verdict says so.
    assert report["verdict"]["reasons"] == ["FP16 underflow in layer output"]


def test_strict_follows_the_verdict(cases, tmp_path):
    # case10: a warning verdict (FP16 overflow) is exit 14 with --strict, and no blob.
    blob = tmp_path / "energy.blob"
    result = run_cli(
        "convert",
        "--input",
        cases / "case10_fp16_overflow.pt",
        "--input-shape",
        "[1, 3, 64, 64]",
        "--output",
        blob,
        "--strict",
    )
    assert result.returncode == 14 and "FP16 overflow" in result.stderr.splitlines()[0]
    assert not blob.exists() and _report(blob)["verdict"]["result"] == "failed"


def test_two_inputs_each_get_an_input_and_the_fp16_check(tmp_path):
    import models

    path = tmp_path / "two.pt"
    torch.jit.save(
        torch.jit.trace(models.TwoInputs().eval(), (torch.zeros(1, 3, 32, 32), torch.zeros(1, 1, 32, 32))), str(path)
    )
    blob = tmp_path / "two.blob"
    result = run_cli(
        "convert",
        "--input",
        path,
        "--input-shape",
        "rgb=[1, 3, 32, 32]",
        "--input-shape",
        "depth=[1, 1, 32, 32]",
        "--output",
        blob,
        "--strict",
    )
    assert result.returncode == 0, result.stderr
    numeric = _report(blob)["numeric"]
    assert numeric["fp16"]["checked"] and numeric["fp16"]["layers"]
    assert {layer["onnx_node"] for layer in numeric["fp16"]["layers"]} >= {"/rgb/Conv", "/depth/Conv"}


# --- Unit tests: the photo, the verdict ---


@pytest.mark.unit
def test_check_photo_is_a_real_image_with_text():
    photo = check_photo(120, 160)
    assert photo.size == (160, 120)
    pixels = np.asarray(photo, dtype=np.float32)
    assert pixels.std() > 40  # a photograph, not a flat field
    band = pixels[-30:]
    assert (band.mean(2) < 80).mean() > 0.05 and (band.mean(2) > 200).mean() > 0.3  # dark letters on a light band
    u8 = photo_input((1, 3, 120, 160), True, False)
    bgr = photo_input((1, 3, 120, 160), True, True)
    assert u8.shape == (1, 3, 120, 160) and u8.max() <= 255 and np.array_equal(bgr[:, ::-1], u8)
    normalized = photo_input((1, 3, 120, 160), False, False)
    assert -3 < normalized.min() < 0 < normalized.max() < 3


@pytest.mark.unit
def test_verdict_is_passed_only_without_any_warning():
    base = {"status": "succeeded", "findings": []}
    assert overall_verdict(base) == {"result": "passed", "reasons": []}
    missed = NumericCheck(
        "photo",
        Tolerances(),
        (OutputComparison("y", (1, 4), 0.5, 0.9, 0.9, None, None, 0, False, "too small to compare"),),
    )
    (finding,) = outputs_findings(missed)
    assert finding.reason == "numeric check: output y differs from the original's (too small to compare)"
    assert finding.message.startswith("the converted model's outputs differ from the original's (y: cosine")
    assert overall_verdict(base | {"findings": [finding.to_dict()]}) == {
        "result": "warnings",
        "reasons": [finding.reason],
    }
    assert overall_verdict({"status": "succeeded"})["reasons"] == ["the checks did not run"]
    assert overall_verdict({"status": "failed", "error": {"stage": "compile", "message": "x"}})["result"] == "failed"
    assert SATURATED_LOGIT == 8.0
