"""Bad option values fail early at the options stage (exit 2) with one line naming the problem,
and a report path that is not a regular file is written through, never replaced."""

import json
import os
import stat
import threading

import pytest

from conftest import SHAPE_ARG, run_cli


def _fails_at_options(result, *phrases):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("myriad-blob: options failed: ")
    for phrase in phrases:
        assert phrase in first
    return first


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_mean_count_against_the_input_channels(fmt, model_files, tmp_path):
    shape = [] if fmt == "onnx" else ["--input-shape", SHAPE_ARG]  # ONNX: the model's own shape is known
    result = run_cli(
        "convert", "--input", model_files[fmt], *shape, "--mean", "[1, 2]", "--output", tmp_path / "x.blob"
    )
    _fails_at_options(result, "--mean gives 2 value(s) for input 'input', which has 3 channel(s)")
    assert not (tmp_path / "x.blob").exists()
    assert json.loads((tmp_path / "x.blob.report.json").read_text())["error"]["stage"] == "options"


def test_scale_count_for_a_named_input(model_files, tmp_path):
    result = run_cli(
        "convert", "--input", model_files["onnx"], "--scale", "input=[1, 2, 3, 4]", "--output", tmp_path / "x.blob"
    )
    _fails_at_options(result, "--scale gives 4 value(s) for input 'input', which has 3 channel(s)")


@pytest.mark.unit
@pytest.mark.parametrize(
    "flag, value, phrase",
    [
        ("--mean", "[1e40, 0, 0]", "must lie within FP16's range"),
        ("--scale", "[1, 0, 1]", "must not be 0"),
        ("--mean", "[nan, 0, 0]", "must be a list like"),
    ],
)
def test_absurd_mean_and_scale_values(flag, value, phrase, model_files, tmp_path):
    result = run_cli("convert", "--input", model_files["onnx"], flag, value, "--output", tmp_path / "x.blob")
    _fails_at_options(result, phrase)


@pytest.mark.unit
@pytest.mark.parametrize("flag, value", [("--output-type", "U8"), ("--output-type", "I32"), ("--input-type", "I64")])
def test_precisions_name_what_the_myriad_x_takes(flag, value, model_files, tmp_path):
    result = run_cli("convert", "--input", model_files["onnx"], flag, value, "--output", tmp_path / "x.blob")
    first = _fails_at_options(result, f"{flag} must be one of")
    assert ("U8, FP16, FP32" if flag == "--input-type" else "FP16, FP32") in first


def test_a_batch_of_two_is_in_the_blob(model_files, tmp_path):
    """The model takes batch 2 (ONNX Runtime runs it): the blob takes the whole batch (issue #28; it was
    exit 14, "the Myriad compiler made a batch-1 blob"), and the plugin's copy of each layer per item is
    no exploding stage count (its warning named the convolutions, found in the final read)."""
    import json

    result = run_cli(
        "convert", "--input", model_files["onnx"], "--input-shape", "[2, 3, 64, 80]", "--output", tmp_path / "x.blob"
    )
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    report = json.loads((tmp_path / "x.blob.report.json").read_text())
    assert report["blob"]["header"]["inputs"][0]["shape"] == [2, 3, 64, 80]
    assert report["compile"]["row_copies"] == [] and report["verdict"]["result"] == "passed", report["verdict"]


def test_a_batch_fixed_inside_the_exported_graph(tmp_path):
    """A Reshape to (1, -1) written at export: ONNX Runtime cannot run batch 2, and the message says why."""
    import torch

    class FixedBatch(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.head = torch.nn.Linear(4 * 8 * 8, 5)

        def forward(self, x):
            return self.head(self.conv(x).reshape(1, -1))

    path = tmp_path / "fixed.onnx"
    torch.onnx.export(
        FixedBatch().eval(),
        (torch.zeros(1, 3, 8, 8),),
        str(path),
        opset_version=14,
        dynamo=False,
        input_names=["input"],
    )
    result = run_cli("convert", "--input", path, "--input-shape", "[2, 3, 8, 8]", "--output", tmp_path / "x.blob")
    assert result.returncode == 12 and "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert "the model was exported with batch 1, fixed inside the graph" in first and "re-export" in first


def _read_fifo(path, into):
    with open(path, "rb") as fifo:
        into.append(fifo.read())


def test_a_fifo_report_is_written_through(model_files, tmp_path):
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=_read_fifo, args=(fifo, received))
    reader.start()
    result = run_cli("convert", "--input", model_files["onnx"], "--output", tmp_path / "x.blob", "--report", fifo)
    reader.join(timeout=60)
    assert result.returncode == 0, result.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still a FIFO, not replaced by a file
    assert json.loads(received[0])["status"] == "succeeded"
    assert not (tmp_path / "report.md").exists()  # no Markdown twin beside a FIFO


def test_a_device_report_path_is_not_replaced(model_files, tmp_path):
    """/dev/null stands in for /dev/full (root replaced that device node with a regular file)."""
    before = os.stat("/dev/null")
    result = run_cli(
        "convert", "--input", model_files["onnx"], "--output", tmp_path / "x.blob", "--report", "/dev/null"
    )
    assert result.returncode == 0, result.stderr
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert not os.path.exists("/dev/null.md")


def test_a_report_to_standard_output(model_files, tmp_path):
    """Standard output holds the JSON alone (the summary goes to stderr), so `| jq` works."""
    result = run_cli("convert", "--input", model_files["onnx"], "--output", tmp_path / "x.blob", "--report", "-")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "succeeded" and not (tmp_path / "-").exists()
    assert "blob:   " in result.stderr


@pytest.mark.unit
def test_the_blob_to_standard_output_is_refused(model_files, tmp_path):
    result = run_cli("convert", "--input", model_files["onnx"], "--output", "-", cwd=tmp_path)
    assert result.returncode == 15 and result.stdout == ""
    assert result.stderr.startswith("myriad-blob: output failed: --output -: the blob is binary")
    assert list(tmp_path.iterdir()) == []


def test_a_symlinked_report_stays_a_link(model_files, tmp_path):
    (tmp_path / "reports").mkdir()
    link = tmp_path / "latest.json"
    link.symlink_to(tmp_path / "reports" / "run.json")
    result = run_cli("convert", "--input", model_files["onnx"], "--output", tmp_path / "x.blob", "--report", link)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and json.loads((tmp_path / "reports" / "run.json").read_text())["status"] == "succeeded"


@pytest.mark.unit
@pytest.mark.parametrize("flag", ["--output", "--report"])
def test_a_directory_as_output_fails_before_converting(flag, model_files, tmp_path):
    (tmp_path / "adir").mkdir()
    args = {"--output": tmp_path / "x.blob", flag: tmp_path / "adir"}
    result = run_cli("convert", "--input", model_files["onnx"], *[a for pair in args.items() for a in pair])
    assert result.returncode == 15, result.stderr
    assert f"{flag} {tmp_path / 'adir'} is a directory" in result.stderr.splitlines()[0]
