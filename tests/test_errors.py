"""Bad input fails at a named stage: one readable line, a documented exit code, no traceback,
no blob left behind, and still a report."""

import argparse
import json
import os

import pytest
import torch

import models
from conftest import SHAPE, SHAPE_ARG, run_cli


def assert_fails(tmp_path, args, stage, exit_code, *fragments, env_extra=None):
    blob = tmp_path / "out" / "model.blob"
    result = run_cli("convert", *args, "--output", blob, env_extra=env_extra)
    assert result.returncode == exit_code, (result.returncode, result.stderr)
    first_line = result.stderr.splitlines()[0]
    assert first_line.startswith(f"myriad-blob: {stage} failed: "), result.stderr
    for fragment in fragments:
        assert fragment in first_line, first_line
    assert "Traceback" not in result.stderr
    assert not blob.exists()
    assert not [p for p in blob.parent.glob("*") if p.suffix in (".blob", ".partial")]
    report = json.loads((tmp_path / "out" / "model.blob.report.json").read_text())
    assert report["status"] == "failed"
    assert report["error"]["stage"] == stage and report["error"]["exit_code"] == exit_code
    assert (tmp_path / "out" / "model.blob.report.md").read_text().count(f"**Failed** at stage `{stage}`") == 1
    return report


def test_missing_file(tmp_path):
    assert_fails(tmp_path, ["--input", tmp_path / "nope.onnx"], "load", 10, "does not exist")


def test_empty_file(tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    assert_fails(tmp_path, ["--input", tmp_path / "empty.onnx"], "load", 10, "is empty")


def test_truncated_onnx(tmp_path, model_files):
    data = model_files["onnx"].read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    assert_fails(tmp_path, ["--input", tmp_path / "cut.onnx"], "load", 10, "truncated or corrupt")


def test_truncated_torch_archive(tmp_path, model_files):
    data = model_files["torchscript"].read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    assert_fails(tmp_path, ["--input", tmp_path / "cut.pt", "--input-shape", SHAPE_ARG], "load", 10, "cut.pt")


def test_random_bytes(tmp_path):
    (tmp_path / "noise.onnx").write_bytes(os.urandom(4096))
    assert_fails(tmp_path, ["--input", tmp_path / "noise.onnx"], "load", 10, "not a model this tool reads")


def test_text_file_named_onnx(tmp_path):
    (tmp_path / "model.onnx").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    assert_fails(tmp_path, ["--input", tmp_path / "model.onnx"], "load", 10, "is a text file, not a model")


def test_missing_input_shape_for_pytorch(tmp_path, model_files):
    assert_fails(tmp_path, ["--input", model_files["torchscript"]], "export", 11, "--input-shape is required")


def test_input_shape_the_model_rejects(tmp_path, model_files):
    assert_fails(
        tmp_path,
        ["--input", model_files["torchscript"], "--input-shape", "[1, 1, 64, 80]"],
        "export",
        11,
        "rejects input shape [1, 1, 64, 80]",
        "check --input-shape",
    )


@pytest.mark.unit
def test_malformed_input_shape(tmp_path, model_files):
    assert_fails(
        tmp_path,
        ["--input", model_files["onnx"], "--input-shape", "1x3x64x80"],
        "options",
        2,
        "--input-shape must be a list",
    )


def test_input_shape_naming_an_unknown_input(tmp_path, model_files):
    assert_fails(
        tmp_path,
        ["--input", model_files["onnx"], "--input-shape", "image=[1, 3, 64, 80]"],
        "export",
        11,
        "names input 'image'",
        "inputs are input",
    )


def test_onnx_input_shape_that_does_not_fit(tmp_path, model_files):
    assert_fails(
        tmp_path,
        ["--input", model_files["onnx"], "--input-shape", "[1, 1, 64, 80]"],
        "ir",
        12,
        "check --input-shape",
        "Input channels C is not equal to kernel channels",
    )


def _torchscript(tmp_path, model):
    path = tmp_path / f"{type(model).__name__}.pt"
    torch.jit.save(torch.jit.trace(model.eval(), torch.zeros(SHAPE)), str(path))
    return path


def test_op_model_optimizer_does_not_support(tmp_path):
    report = assert_fails(
        tmp_path,
        ["--input", _torchscript(tmp_path, models.IsNanNet()), "--input-shape", SHAPE_ARG],
        "ir",
        12,
        "does not support op IsNaN",
    )
    assert report["stages"][2]["status"] == "failed"


def test_op_the_myriad_plugin_does_not_support(tmp_path):
    # The compiler's verdict, the layer traced to its ONNX node, with the known fix.
    report = assert_fails(
        tmp_path,
        ["--input", _torchscript(tmp_path, models.AtanNet()), "--input-shape", SHAPE_ARG],
        "compile",
        13,
        "the Myriad X cannot run 1 layer(s)",
        "(Atan; ONNX node `/Atan`, Atan)",
        "--output-names",
        "(the compiler: Failed to compile layer",
        'unsupported layer type "Atan"',
    )
    assert report["layers"]["unsupported"][0]["type"] == "Atan"  # the report names it too
    assert {s["name"]: s["status"] for s in report["stages"]}["compile"] == "failed"


class _Payload:
    """Unpickling this writes a file: proof that code from the pickle ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_is_refused_without_trust_pickle_and_runs_nothing(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"model": _Payload(str(marker))}, path)
    assert_fails(
        tmp_path, ["--input", path, "--input-shape", SHAPE_ARG], "load", 10, "full-model pickle", "--trust-pickle"
    )
    assert not marker.exists()


def test_full_model_pickle_without_trust_pickle(tmp_path, model_files):
    assert_fails(
        tmp_path,
        ["--input", model_files["full-model pickle"], "--input-shape", SHAPE_ARG],
        "load",
        10,
        "loading one runs code from the file",
    )


def test_trusted_pickle_whose_class_cannot_be_imported(tmp_path, model_files):
    # The pickle refers to models.SmallCNN; with tests/ off PYTHONPATH that module is not importable.
    assert_fails(
        tmp_path,
        ["--input", model_files["full-model pickle"], "--input-shape", SHAPE_ARG, "--trust-pickle"],
        "load",
        10,
        "needs a class that cannot be imported",
        "models",
        env_extra={"PYTHONPATH": ""},
    )


def test_model_class_that_cannot_be_imported(tmp_path, model_files):
    assert_fails(
        tmp_path,
        [
            "--input",
            model_files["state-dict"],
            "--input-shape",
            SHAPE_ARG,
            "--model-class",
            "no_such_package.nets:Detector",
        ],
        "load",
        10,
        "cannot import module 'no_such_package.nets'",
    )


def test_model_class_that_needs_arguments(tmp_path, model_files):
    assert_fails(
        tmp_path,
        ["--input", model_files["state-dict"], "--input-shape", SHAPE_ARG, "--model-class", "models:NeedsArguments"],
        "load",
        10,
        "constructible with no arguments",
    )


def test_state_dict_without_model_class(tmp_path, model_files):
    assert_fails(
        tmp_path, ["--input", model_files["state-dict"], "--input-shape", SHAPE_ARG], "load", 10, "pass --model-class"
    )


def test_checkpoint_without_the_model_key(tmp_path, model_files):
    assert_fails(
        tmp_path,
        [
            "--input",
            model_files["checkpoint"],
            "--input-shape",
            SHAPE_ARG,
            "--model-class",
            "models:SmallCNN",
            "--model-key",
            "net",
        ],
        "load",
        10,
        "without a model or state dict under key 'net'",
        "epoch",
    )


@pytest.mark.unit
def test_toolchain_not_set_up(tmp_path, model_files):
    assert_fails(
        tmp_path,
        ["--input", model_files["onnx"]],
        "toolchain",
        3,
        "myriad-blob setup",
        env_extra={"MYRIAD_BLOB_TOOLCHAIN": str(tmp_path / "none")},
    )


@pytest.mark.unit
def test_debug_shows_the_traceback(tmp_path, model_files):
    result = run_cli(
        "convert",
        "--input",
        model_files["onnx"],
        "--output",
        tmp_path / "m.blob",
        "--nshaves",
        "5",
        "--nslices",
        "4",
        "--debug",
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr  # an options error is not a bug


def test_new_export_of_a_torchscript_model(tmp_path, model_files):
    assert_fails(
        tmp_path,
        ["--input", model_files["torchscript"], "--input-shape", SHAPE_ARG, "--new-export"],
        "export",
        11,
        "cannot export a TorchScript model",
        "drop --new-export",
    )


@pytest.mark.unit
def test_out_of_range_shaves_is_an_options_error_with_a_report(tmp_path, model_files):
    assert_fails(
        tmp_path,
        ["--input", model_files["onnx"], "--nshaves", "17"],
        "options",
        2,
        "--nshaves must be between 1 and 16, got 17",
    )


class _TrainingState:
    """Something a training script pickles beside the weights (not plain data)."""

    def __init__(self):
        self.step = 3


@pytest.mark.parametrize(
    "extra, flags",
    [
        # argparse hyper-parameters and numbers: plain data, loaded without --trust-pickle
        ({"args": argparse.Namespace(lr=0.1, epochs=3), "epoch": 7, "best_map": 0.5}, []),
        # an object of the training code's own: only with --trust-pickle (and its class importable)
        ({"trainer": _TrainingState(), "epoch": 7}, ["--trust-pickle"]),
    ],
    ids=["namespace", "custom-object"],
)
def test_training_checkpoint_with_non_tensor_entries(extra, flags, tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": models.SmallCNN().state_dict(), **extra}, path)
    result = run_cli(
        "convert",
        "--input",
        path,
        "--input-shape",
        SHAPE_ARG,
        "--model-class",
        "models:SmallCNN",
        "--output",
        tmp_path / "out.blob",
        *flags,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out.blob.report.json").read_text())
    assert report["source"]["format"] == "checkpoint" and report["numeric"]["passed"]


def test_checkpoint_with_a_custom_object_needs_trust_pickle(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": models.SmallCNN().state_dict(), "trainer": _TrainingState()}, path)
    assert_fails(
        tmp_path,
        ["--input", path, "--input-shape", SHAPE_ARG, "--model-class", "models:SmallCNN"],
        "load",
        10,
        "test_errors._TrainingState, not only tensors",
        "--trust-pickle",
    )


def _deep_chain(path, blocks: int):
    """An ONNX chain of `blocks` Add+ReLU pairs on a [1, 8, 16, 16] tensor (2 x blocks IR layers deep)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, constants, x = [], [], "x"
    for i in range(blocks):
        constants.append(numpy_helper.from_array(np.full([1, 8, 1, 1], 0.001 * (i % 7), np.float32), f"c{i}"))
        nodes += [
            helper.make_node("Add", [x, f"c{i}"], [f"a{i}"], name=f"/blocks.{i}/Add"),
            helper.make_node("Relu", [f"a{i}"], [f"r{i}"], name=f"/blocks.{i}/Relu"),
        ]
        x = f"r{i}"
    tensor = [1, 8, 16, 16]
    graph = helper.make_graph(
        nodes,
        "deep",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, tensor)],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, tensor)],
        constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.conversion
def test_a_20000_layer_model_compiles_where_the_compiler_ran_out_of_stack(tmp_path):
    """Issue #28 ("no message" on a 20k-layer model): the compiler walks the graph recursively; under the
    usual 8 MiB stack a chain of 20,000 layers killed it with SIGSEGV, and the user read "the Myriad
    compiler failed: no message". Every tool now starts with TOOL_STACK_BYTES of stack; the compile
    helper (read straight from ONNX here, as the pipeline's IR takes minutes more to verify) gives a blob."""
    from myriad_blob.toolchain import locate

    model = _deep_chain(tmp_path / "deep.onnx", 10_000)
    toolchain = locate()
    result = toolchain.run(
        [str(toolchain.compile_helper), "compile", str(model), str(tmp_path / "deep.blob")], fast_clock=True
    )
    assert result.returncode == 0, result.returncode
    assert (tmp_path / "deep.blob").stat().st_size > 100_000


@pytest.mark.unit
def test_a_tool_killed_by_a_signal_says_so():
    """A helper or CPU run that crashed printed nothing: "no message"; now the signal is named."""
    from myriad_blob.toolchain import helper_error

    assert helper_error("", -11) == "crashed (SIGSEGV)"
    assert helper_error("ERROR: [ GENERAL_ERROR ] bad thing\n", -6) == "crashed (SIGABRT): bad thing"
    assert helper_error("ERROR: [ GENERAL_ERROR ] bad thing\n", 1) == "bad thing"
