"""The seeds' missing features: layouts (--input-layout/--output-layout), a precision per tensor
(--input-type/--output-type name=TYPE) and the Myriad plugin's own settings (--compile-config),
each checked on real blobs read back with depthai."""

import json
import re

import depthai as dai
import numpy as np
import pytest
import torch

import models
from conftest import SHAPE, SHAPE_ARG, make_ir, run_cli
from myriad_blob.compile_config import BY_KEY, MYRIAD_KEYS, parse_compile_config
from myriad_blob.errors import EXIT_CODES, Stage
from myriad_blob.numeric import make_inputs, run_ir_with_ranges
from myriad_blob.options import BY_NAME, ConversionOptions, InputSpec, parse_options, parse_per_tensor
from test_convert import assert_depthai_agrees

EXIT_OPTIONS = EXIT_CODES[Stage.OPTIONS]


def _report(path):
    return json.loads(path.read_text())


def _small_cnn_ir(tmp_path, model_files):
    """(the toolchain, the SmallCNN's IR), made by the pipeline's own stages."""
    options = ConversionOptions(
        input=model_files["torchscript"], output=tmp_path / "m.blob", input_shapes=(InputSpec(None, tuple(SHAPE)),)
    )
    toolchain, _, _, ir = make_ir(options, tmp_path)
    return toolchain, ir


# --- layouts -------------------------------------------------------------------------------------


def test_an_nhwc_blob_takes_interleaved_frames(tmp_path, model_files):
    """depthai reads the input as NHWC; the numeric check runs the same interleaved frame; the
    report and the NN Archive tell the camera to send BGR888i."""
    planar, interleaved = tmp_path / "planar.blob", tmp_path / "interleaved.blob"
    common = ["--input", model_files["torchscript"], "--input-shape", SHAPE_ARG, "--reverse-input-channels", "--strict"]
    assert run_cli("convert", *common, "--output", planar).returncode == 0
    result = run_cli("convert", *common, "--output", interleaved, "--input-layout", "NHWC", "--nn-archive")
    assert result.returncode == 0, result.stderr
    info = assert_depthai_agrees(interleaved)  # depthai's order is the header's
    (image,) = info.inputs
    assert (image.order, image.shape, image.data_type) == ("NHWC", tuple(SHAPE), "U8")
    assert dai.OpenVINO.Blob(str(interleaved)).networkInputs["input"].order == dai.TensorInfo.StorageOrder.NHWC
    assert assert_depthai_agrees(planar).inputs[0].order == "NCHW"
    assert interleaved.read_bytes() != planar.read_bytes()

    report = _report(tmp_path / "interleaved.blob.report.json")
    assert report["verdict"]["result"] == "passed" and report["numeric"]["passed"]
    assert report["compile_settings"]["tensor_layouts"] == {"input": "NHWC"}
    assert report["blob"]["camera_frame_type"] == "BGR888i"
    assert _report(tmp_path / "planar.blob.report.json")["blob"]["camera_frame_type"] == "BGR888p"
    assert "Camera frames: `BGR888i`" in (tmp_path / "interleaved.blob.report.md").read_text()

    archive = dai.NNArchive(str(tmp_path / "interleaved.tar.xz"))
    (model_input,) = archive.getConfigV1().model.inputs
    assert model_input.layout == "NHWC" and model_input.preprocessing.daiType == "BGR888i"
    # The shape goes in the layout's order, so depthai reads the frame size right (review finding:
    # it read 64 x 3 from [1, 3, 64, 80] beside NHWC).
    assert list(model_input.shape) == [1, SHAPE[2], SHAPE[3], 3]
    assert (archive.getInputWidth(), archive.getInputHeight()) == (SHAPE[3], SHAPE[2])


def test_the_check_runs_the_frame_interleaved_and_a_planar_frame_would_miss(tmp_path, model_files):
    """The IR run with the blob's NHWC layout gives the original's numbers only when fed the frame
    interleaved; the same bytes sent planar (a camera left at BGR888p) give others."""
    toolchain, ir = _small_cnn_ir(tmp_path, model_files)
    frames, _ = make_inputs(ir, "U8", None, False)
    planar_run, _ = run_ir_with_ranges(ir, frames, toolchain)
    interleaved_run, _ = run_ir_with_ranges(ir, frames, toolchain, layouts={"input": "NHWC"})
    np.testing.assert_allclose(interleaved_run["output"], planar_run["output"], rtol=1e-5, atol=1e-5)
    # The planar frame's bytes read as if interleaved: what an NHWC blob computes on a BGR888p frame.
    (batch, channels, height, width) = SHAPE
    misread = {"input": frames["input"].reshape(batch, height, width, channels).transpose(0, 3, 1, 2)}
    wrong, _ = run_ir_with_ranges(ir, misread, toolchain, layouts={"input": "NHWC"})
    assert np.abs(wrong["output"] - planar_run["output"]).max() > 0.05 * np.abs(planar_run["output"]).max()


def test_a_sample_for_an_nhwc_input_may_be_interleaved(tmp_path, model_files):
    """Review finding: the camera's interleaved (1, H, W, 3) frame was refused as --sample."""
    frame = np.random.default_rng(3).integers(0, 256, (1, SHAPE[2], SHAPE[3], 3)).astype(np.float32)
    np.save(tmp_path / "frame.npy", frame)
    result = run_cli(
        "convert",
        "--input",
        model_files["torchscript"],
        "--input-shape",
        SHAPE_ARG,
        "--output",
        tmp_path / "m.blob",
        "--input-layout",
        "NHWC",
        "--sample",
        tmp_path / "frame.npy",
        "--strict",
    )
    assert result.returncode == 0, result.stderr
    assert _report(tmp_path / "m.blob.report.json")["numeric"]["input"] == str(tmp_path / "frame.npy")


def test_an_nhwc_output_is_laid_out_so_and_still_matches(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "seg.pt"
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU()).eval()
    torch.jit.save(torch.jit.trace(model, torch.zeros(SHAPE)), str(path))
    result = run_cli(
        "convert",
        "--input",
        path,
        "--input-shape",
        SHAPE_ARG,
        "--output",
        tmp_path / "seg.blob",
        "--output-layout",
        "NHWC",
        "--strict",
    )
    assert result.returncode == 0, result.stderr
    (output,) = assert_depthai_agrees(tmp_path / "seg.blob").outputs
    assert (output.order, output.shape) == ("NHWC", (1, 4, SHAPE[2], SHAPE[3]))
    assert _report(tmp_path / "seg.blob.report.json")["numeric"]["outputs"][0]["cosine"] > 0.9999


# --- a precision per tensor ----------------------------------------------------------------------


def _stereo(tmp_path):
    """StereoWithState's state dict (its class: --model-class), and its three input shapes."""
    torch.manual_seed(0)
    path = tmp_path / "stereo.pth"
    torch.save(models.StereoWithState().state_dict(), path)
    return path, [
        "--model-class",
        "models:StereoWithState",
        "--input-shape",
        "left=[1, 3, 64, 80]",
        "--input-shape",
        "right=[1, 3, 64, 80]",
        "--input-shape",
        "state=[1, 16]",
    ]


def test_two_u8_images_and_an_fp16_state_in_one_blob(tmp_path):
    path, shapes = _stereo(tmp_path)
    result = run_cli(
        "convert",
        "--input",
        path,
        *shapes,
        "--output",
        tmp_path / "stereo.blob",
        "--input-type",
        "U8",
        "--input-type",
        "state=FP16",
        "--output-type",
        "state_out=FP32",
        "--input-layout",
        "left=NHWC",
        "--strict",
    )
    assert result.returncode == 0, result.stderr
    info = assert_depthai_agrees(tmp_path / "stereo.blob")
    assert {t.name: (t.data_type, t.order) for t in info.inputs} == {
        "left": ("U8", "NHWC"),
        "right": ("U8", "NCHW"),
        "state": ("FP16", "NC"),
    }
    assert {t.name: t.data_type for t in info.outputs} == {"disparity": "FP16", "state_out": "FP32"}
    report = _report(tmp_path / "stereo.blob.report.json")
    assert report["compile_settings"]["tensor_types"] == {"state": "FP16", "state_out": "FP32"}
    assert report["options"]["input_type_by_name"] == {"state": "FP16"}
    assert report["numeric"]["passed"], report["numeric"]
    assert report["blob"]["camera_frame_type"] == "RGB888i"  # the first image input's layout
    assert report["blob"]["camera_frame_types"] == {"left": "RGB888i", "right": "RGB888p"}
    assert "Camera frames: `left` `RGB888i`, `right` `RGB888p`." in (tmp_path / "stereo.blob.report.md").read_text()


class _SegmenterWithState(torch.nn.Module):
    """An image, a 3-D recurrent state; a class map (argmax: an integer output) and the next state."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.mix = torch.nn.Linear(16, 16)

    def forward(self, image, state):
        scores = self.conv(image / 255)
        return scores.argmax(1), torch.tanh(self.mix(state))


def test_integer_outputs_named_types_and_a_3d_state(tmp_path):
    """Review findings: `cls=ONNX` on an argmax asked the blob for I64 (verify failed); a named float
    type on an integer output was refused before the compiler was asked; a 3-D state crashed the
    check's seeded input (and the blob gives the 3-D state_out as [1, 1, 4, 16]: the same data, not a
    verify failure); a tensor name with a comma broke the compile helper's -iop list."""
    path = tmp_path / "seg.onnx"
    torch.onnx.export(
        _SegmenterWithState().eval(),
        (torch.zeros(SHAPE), torch.zeros(1, 4, 16)),
        str(path),
        opset_version=13,
        dynamo=False,
        input_names=["image", "state,h"],
        output_names=["cls", "state_out"],
    )
    for flags, cls_type in ((["--output-type", "cls=ONNX"], "I32"), ([], "I32")):
        blob = tmp_path / f"seg-{cls_type}-{len(flags)}.blob"
        result = run_cli("convert", "--input", path, "--output", blob, "--input-type", "state,h=FP16", *flags)
        assert result.returncode == 0, result.stderr
        info = assert_depthai_agrees(blob)
        assert {t.name: t.data_type for t in info.outputs}["cls"] == cls_type
        assert {t.name: t.data_type for t in info.inputs} == {"image": "U8", "state,h": "FP16"}
        report = _report(blob.with_name(blob.name + ".report.json"))
        assert report["numeric"]["outputs_passed"], report["numeric"]["outputs"]
    # A float type named for it is passed on; where the compiler refuses it, the line says what to change.
    result = run_cli("convert", "--input", path, "--output", tmp_path / "fp16.blob", "--output-type", "cls=FP16")
    assert result.returncode == EXIT_CODES[Stage.COMPILE]
    assert result.stderr.splitlines()[0].startswith(
        "myriad-blob: compile failed: output cls is an integer tensor that the Myriad X gives only as I32 here, but "
        "FP16 was asked: drop --output-type cls=..."
    )


def test_a_per_tensor_name_the_blob_lacks_is_an_options_error_naming_its_tensors(tmp_path, model_files):
    blob = tmp_path / "m.blob"
    result = run_cli(
        "convert",
        "--input",
        model_files["torchscript"],
        "--input-shape",
        SHAPE_ARG,
        "--output",
        blob,
        "--input-type",
        "image=FP16",
    )
    assert result.returncode == EXIT_OPTIONS
    assert "options failed: --input-type names 'image', but the blob's inputs are input" in result.stderr
    assert "Traceback" not in result.stderr and not blob.exists()
    assert _report(tmp_path / "m.blob.report.json")["error"]["stage"] == "options"
    result = run_cli(
        "convert",
        "--input",
        model_files["torchscript"],
        "--input-shape",
        SHAPE_ARG,
        "--output",
        blob,
        "--input-layout",
        "output=NHWC",
    )
    assert result.returncode == EXIT_OPTIONS
    assert "'output' is one of its outputs: use --output-layout" in result.stderr
    result = run_cli(
        "convert",
        "--input",
        model_files["torchscript"],
        "--input-shape",
        SHAPE_ARG,
        "--output",
        blob,
        "--output-layout",
        "output=NHWC",
    )
    assert result.returncode == EXIT_OPTIONS
    assert "output output is [1, 5], not 4-D" in result.stderr


@pytest.mark.unit
def test_per_tensor_values_parse_as_the_seeds_flags_would():
    every, named = parse_per_tensor(["fp16", "left=U8", "/model/in:0=u8"], BY_NAME["input-type"])
    assert (every, named) == ("FP16", {"left": "U8", "/model/in:0": "U8"})
    assert parse_per_tensor([], BY_NAME["output-type"]) == ("FP16", {})
    options = parse_options(input="m.onnx", input_type="U8", output_layout=["mask=nhwc"])
    assert (options.input_type, options.output_layout, options.output_layout_by_name) == (
        "U8",
        "NCHW",
        {"mask": "NHWC"},
    )
    for values, message in (
        (["U8", "FP16"], "given twice for every tensor"),
        (["a=U8", "a=FP16"], "twice for 'a'"),
        (["=U8"], "names no tensor"),
        (["a=U16"], "must be one of U8, FP16, FP32, ONNX"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_per_tensor(values, BY_NAME["input-type"])


# --- the compiler's own settings -----------------------------------------------------------------


@pytest.mark.unit
def test_an_unknown_compile_config_key_is_refused_at_options_with_the_close_ones(tmp_path):
    result = run_cli(
        "convert",
        "--input",
        tmp_path / "any.onnx",
        "--output",
        tmp_path / "m.blob",
        "--compile-config",
        "MYRIAD_TILING_CMX_LIMIT=512",
    )
    assert result.returncode == EXIT_OPTIONS
    assert result.stderr.splitlines()[0] == (
        "myriad-blob: options failed: --compile-config MYRIAD_TILING_CMX_LIMIT: the 2021.4 Myriad plugin has no such "
        "key; close ones: MYRIAD_TILING_CMX_LIMIT_KB"
    )
    assert _report(tmp_path / "m.blob.report.json")["error"]["stage"] == "options"


@pytest.mark.unit
@pytest.mark.parametrize(
    "given, message",
    [
        ("MYRIAD_NUMBER_OF_SHAVES=4", "is set by --nshaves: use that instead"),
        ("MYRIAD_WATCHDOG=NO", "is read where a blob runs"),
        ("MYRIAD_DUMP_ALL_PASSES=YES", "debugging aids"),
        ("MYRIAD_ENABLE_HW_ACCELERATION=maybe", "takes YES or NO, got 'maybe'"),
        ("MYRIAD_TILING_CMX_LIMIT_KB=lots", "takes a whole number"),
        ("MYRIAD_TILING_CMX_LIMIT_KB=99999999999", "from 0 to 2147483647"),  # the plugin's stoi failed at compile
        ("MYRIAD_TILING_CMX_LIMIT_KB", "takes KEY=VALUE"),
    ],
)
def test_compile_config_says_what_to_change(given, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_compile_config([given])


@pytest.mark.unit
def test_compile_config_values_are_written_as_the_plugin_takes_them():
    assert parse_compile_config(["MYRIAD_TILING_CMX_LIMIT_KB=0512", "myriad_enable_hw_acceleration=no"]) == {
        "MYRIAD_ENABLE_HW_ACCELERATION": "NO",
        "MYRIAD_TILING_CMX_LIMIT_KB": "512",
    }


def test_the_key_table_is_the_plugins(tmp_path, model_files):
    """Every row's key, with its example value, is one the 2021.4 plugin takes (the compiles
    succeed), and a key it lacks is refused by it too: the table cannot drift from the plugin."""
    toolchain, ir = _small_cnn_ir(tmp_path, model_files)

    def compile_with(settings):
        blob = tmp_path / "k.blob"
        blob.unlink(missing_ok=True)
        result = toolchain.run(
            [
                str(toolchain.compile_helper),
                "compile",
                str(ir.xml),
                str(blob),
                "MYRIAD_NUMBER_OF_SHAVES=6",
                "MYRIAD_NUMBER_OF_CMX_SLICES=6",
                *(f"{key}={value}" for key, value in settings),
            ],
            timeout=120,
        )
        return blob.exists(), result.stderr

    # The plugin checks every key (and value) before it compiles; the first it does not know fails
    # the compile and is named. One compile per role keeps this at three compiles.
    unknown = "key is not supported for VPU"
    compiled, stderr = compile_with((key.name, key.example) for key in MYRIAD_KEYS if key.role == "blob")
    assert compiled, stderr[-300:]
    compiled, stderr = compile_with((key.name, key.example) for key in MYRIAD_KEYS if key.role != "blob")
    assert compiled, stderr[-300:]  # not a blob's, but known to the plugin (refused by us, not by it)
    compiled, stderr = compile_with([("MYRIAD_TILING_CMX_LIMIT", "512")])
    assert not compiled and f"MYRIAD_TILING_CMX_LIMIT {unknown}" in stderr


def test_compile_config_changes_the_blob_and_is_in_the_report_and_the_cache_key(tmp_path, model_files):
    common = ["--input", model_files["torchscript"], "--input-shape", SHAPE_ARG, "--cache-dir", tmp_path / "cache"]
    assert run_cli("convert", *common, "--output", tmp_path / "hw.blob").returncode == 0
    result = run_cli(
        "convert", *common, "--output", tmp_path / "shaves.blob", "--compile-config", "MYRIAD_ENABLE_HW_ACCELERATION=NO"
    )
    assert result.returncode == 0, result.stderr
    assert "from the cache" not in result.stdout + result.stderr  # another setting: another cache entry
    assert (tmp_path / "shaves.blob").read_bytes() != (tmp_path / "hw.blob").read_bytes()
    report = _report(tmp_path / "shaves.blob.report.json")
    assert report["compile_settings"]["config"] == {"MYRIAD_ENABLE_HW_ACCELERATION": "NO"}
    assert report["options"]["compile_config"] == {"MYRIAD_ENABLE_HW_ACCELERATION": "NO"}
    assert report["numeric"]["passed"]
    assert "config `MYRIAD_ENABLE_HW_ACCELERATION=NO`" in (tmp_path / "shaves.blob.report.md").read_text()
    again = run_cli(
        "convert", *common, "--output", tmp_path / "again.blob", "--compile-config", "MYRIAD_ENABLE_HW_ACCELERATION=NO"
    )
    assert "from the cache" in again.stdout + again.stderr


@pytest.mark.unit
def test_every_key_row_is_well_formed():
    assert len(BY_KEY) == len(MYRIAD_KEYS)
    for key in MYRIAD_KEYS:
        assert key.role in ("blob", "option", "device", "debug"), key.name
        assert key.role != "option" or key.use, key.name


# --- every surface: the manifest and the action take them as the CLI does -------------------------


@pytest.mark.unit
def test_the_manifest_and_the_action_take_the_new_options(tmp_path, monkeypatch):
    from myriad_blob.manifest import load_manifest

    (tmp_path / "myriad-blob.toml").write_text(
        '[[models]]\nname = "stereo"\nmodel = "stereo.onnx"\ninput-type = ["U8", "state=FP16"]\n'
        'input-layout = "left=NHWC"\ncompile-config = ["MYRIAD_TILING_CMX_LIMIT_KB=256"]\n'
    )
    (variant,) = load_manifest(tmp_path / "myriad-blob.toml")
    assert (variant.options.input_type, variant.options.input_type_by_name) == ("U8", {"state": "FP16"})
    assert variant.options.input_layout_by_name == {"left": "NHWC"}
    assert variant.options.compile_config == {"MYRIAD_TILING_CMX_LIMIT_KB": "256"}

    import entrypoint.inputs as action_inputs

    monkeypatch.setenv("INPUT_INPUT-TYPE", "U8\nstate=FP16")
    monkeypatch.setenv("INPUT_OUTPUT-LAYOUT", "NCHW")
    monkeypatch.setenv("INPUT_COMPILE-CONFIG", "MYRIAD_ENABLE_HW_ACCELERATION=NO\nMYRIAD_TILING_CMX_LIMIT_KB=128")
    options = parse_options(input="m.onnx", **action_inputs._conversion_inputs())
    assert (options.input_type_by_name, options.output_layout) == ({"state": "FP16"}, "NCHW")
    assert options.compile_config == {"MYRIAD_ENABLE_HW_ACCELERATION": "NO", "MYRIAD_TILING_CMX_LIMIT_KB": "128"}


def test_a_torchscript_model_returning_a_dict_is_told_what_to_change(tmp_path):
    """Found converting StereoWithState traced with strict=False: the exporter refuses its dict at
    every opset, and "try another --opset" was the advice."""
    path = tmp_path / "stereo_traced.pt"
    shapes = [[1, 3, 64, 80], [1, 3, 64, 80], [1, 16]]
    torch.jit.save(
        torch.jit.trace(models.StereoWithState().eval(), tuple(torch.zeros(s) for s in shapes), strict=False), str(path)
    )
    result = run_cli(
        "convert",
        "--input",
        path,
        "--input-shape",
        "left=[1, 3, 64, 80]",
        "--input-shape",
        "right=[1, 3, 64, 80]",
        "--input-shape",
        "state=[1, 16]",
        "--output",
        tmp_path / "s.blob",
    )
    assert result.returncode == EXIT_CODES[Stage.EXPORT]
    line = result.stderr.splitlines()[0]
    assert line.startswith(
        "myriad-blob: export failed: torch.onnx.export cannot export a TorchScript model that "
        "returns (or builds) a dict or list"
    )
    assert "--model-class" in line and "another --opset" not in line
