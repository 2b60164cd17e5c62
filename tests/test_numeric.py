"""Trusting the blob: the numeric check, layer support traced to ONNX, camera-ready outputs."""

import json

import depthai as dai
import numpy as np
import torch

import models
from conftest import SHAPE, SHAPE_ARG, make_ir, run_cli
from myriad_blob.numeric import numeric_check
from myriad_blob.options import ConversionOptions, InputSpec

IMAGENET = ["--mean", "[123.675, 116.28, 103.53]", "--scale", "[58.4, 57.12, 57.38]"]


def _torchscript(tmp_path, model, name="model.pt"):
    torch.manual_seed(0)
    path = tmp_path / name
    torch.jit.save(torch.jit.trace(model.eval(), torch.zeros(SHAPE)), str(path))
    return path


def test_clean_conversion_passes_with_the_figures_in_the_report(tmp_path, model_files):
    result = run_cli(
        "convert",
        "--input",
        model_files["torchscript"],
        "--input-shape",
        SHAPE_ARG,
        "--output",
        tmp_path / "m.blob",
        "--reverse-input-channels",
        "--strict",
        *IMAGENET,
    )
    assert result.returncode == 0, result.stderr
    numeric = json.loads((tmp_path / "m.blob.report.json").read_text())["numeric"]
    assert numeric["passed"] and numeric["input"].startswith("photo")
    (output,) = numeric["outputs"]
    assert output["cosine"] > 0.9999 and output["max_relative_error"] < 0.01 and output["top1_agrees"] is True
    assert output["max_abs_error"] > 0  # FP16 weights: never exactly equal
    markdown = (tmp_path / "m.blob.report.md").read_text()
    assert "numbers match" in markdown.splitlines()[2]


def test_onnx_input_is_checked_with_onnx_runtime(tmp_path, model_files):
    result = run_cli("convert", "--input", model_files["onnx"], "--output", tmp_path / "m.blob", "--strict")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "m.blob.report.json").read_text())
    assert report["numeric"]["passed"] and "onnxruntime" in report["stages"][4]["tools"]


def test_a_channel_order_mistake_is_caught(tmp_path, model_files):
    """The IR reverses channels but the reference does not: the check must fail, with figures."""
    options = ConversionOptions(
        input=model_files["torchscript"],
        output=tmp_path / "m.blob",
        input_shapes=(InputSpec(None, tuple(SHAPE)),),
        reverse_input_channels=True,
    )
    toolchain, loaded, prepared, ir = make_ir(options, tmp_path)
    onnx_model = prepared.reference
    honest = numeric_check(loaded.module, onnx_model, ir, toolchain, input_type="U8")
    wrong = numeric_check(
        loaded.module,
        onnx_model,
        ir,
        toolchain,
        input_type="U8",
        reference_preprocessing=dict(ir.preprocessing, reverse_input_channels=False),
    )
    assert honest.passed
    assert not wrong.passed
    (output,) = wrong.outputs
    assert output.cosine < 0.999 or output.max_relative_error > 0.02 or output.top1_agrees is False


def test_fp16_overflow_warns_and_fails_with_strict(tmp_path):
    model = _torchscript(tmp_path, models.HugeWeights())
    lenient = run_cli("convert", "--input", model, "--input-shape", SHAPE_ARG, "--output", tmp_path / "a" / "m.blob")
    assert lenient.returncode == 0, lenient.stderr
    assert "warning: the converted model's outputs differ" in lenient.stderr
    report = json.loads((tmp_path / "a" / "m.blob.report.json").read_text())
    assert report["numeric"]["passed"] is False and report["warnings"]
    assert "differ" in (tmp_path / "a" / "m.blob.report.md").read_text().splitlines()[2]

    strict = run_cli(
        "convert", "--input", model, "--input-shape", SHAPE_ARG, "--output", tmp_path / "b" / "m.blob", "--strict"
    )
    assert strict.returncode == 14
    assert strict.stderr.startswith("myriad-blob: verify failed: the converted model's outputs differ")
    assert not (tmp_path / "b" / "m.blob").exists()
    assert json.loads((tmp_path / "b" / "m.blob.report.json").read_text())["numeric"]["passed"] is False


def test_unsupported_layer_is_named_with_its_onnx_node(tmp_path):
    result = run_cli(
        "convert",
        "--input",
        _torchscript(tmp_path, models.SinNet()),
        "--input-shape",
        SHAPE_ARG,
        "--output",
        tmp_path / "m.blob",
    )
    assert result.returncode == 13
    assert "ONNX node `/Sin`, Sin" in result.stderr and "(Sin;" in result.stderr
    report = json.loads((tmp_path / "m.blob.report.json").read_text())
    (layer,) = report["layers"]["unsupported"]
    assert layer["type"] == "Sin" and layer["onnx_op"] == "Sin" and layer["onnx_node"]
    assert report["layers"]["by_type"]["Sin"] == {"count": 1, "unsupported": 1}
    assert report["stages"][3]["status"] == "failed" and report["blob"] is None


def test_nn_archive_loads_in_depthai(tmp_path, model_files):
    result = run_cli(
        "convert",
        "--input",
        model_files["torchscript"],
        "--input-shape",
        SHAPE_ARG,
        "--output",
        tmp_path / "cam.blob",
        "--nn-archive",
        "--reverse-input-channels",
        *IMAGENET,
    )
    assert result.returncode == 0, result.stderr
    archive = dai.NNArchive(str(tmp_path / "cam.tar.xz"))
    assert archive.getModelType() == dai.ModelType.BLOB
    assert archive.getInputWidth() == SHAPE[3] and archive.getInputHeight() == SHAPE[2]
    assert archive.getBlob().numShaves == 6
    config = archive.getConfigV1()
    (model_input,) = config.model.inputs
    assert model_input.name == "input" and model_input.dtype == dai.nn_archive.v1.DataType.UINT8
    # Preprocessing is baked into the blob, so the archive must not ask for it again.
    assert model_input.preprocessing.mean == [0.0, 0.0, 0.0] and model_input.preprocessing.scale == [1.0, 1.0, 1.0]
    assert model_input.preprocessing.daiType == "BGR888p"
    assert [(o.name, list(o.shape)) for o in config.model.outputs] == [("output", [1, 5])]


def test_sample_image_and_npy(tmp_path, model_files):
    from PIL import Image

    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (100, 120, 3), dtype=np.uint8)).save(tmp_path / "frame.png")
    result = run_cli(
        "convert",
        "--input",
        model_files["torchscript"],
        "--input-shape",
        SHAPE_ARG,
        "--output",
        tmp_path / "m.blob",
        "--sample",
        tmp_path / "frame.png",
        "--strict",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "m.blob.report.json").read_text())["numeric"]["input"].endswith("frame.png")

    np.save(tmp_path / "wrong.npy", np.zeros((1, 3, 8, 8), dtype=np.float32))
    result = run_cli(
        "convert",
        "--input",
        model_files["torchscript"],
        "--input-shape",
        SHAPE_ARG,
        "--output",
        tmp_path / "n.blob",
        "--sample",
        tmp_path / "wrong.npy",
    )
    assert result.returncode == 14
    assert "has shape [1, 3, 8, 8], the input needs [1, 3, 64, 80]" in result.stderr
    assert not (tmp_path / "n.blob").exists()
