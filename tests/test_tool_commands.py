"""The exact command lines the toolchain's tools receive, and the report's record of them.

A copy of the set-up toolchain whose interpreters and compile helper are shims: each logs the
argv it was started with (and, for a warm worker, every job line it reads) and then runs the real
tool, so the conversions below are real. Each report stage's `commands` must be exactly what the
tools received; in a batch, where warm workers run the jobs, the recorded one-shot command lines
must carry exactly the jobs the workers were sent.
"""

import json
import os
import shutil
import textwrap

import pytest

from conftest import SHAPE_ARG, run_cli
from myriad_blob import toolchain as toolchain_module
from myriad_blob.toolchain import FRONTEND_SCRIPT, LEGACY_WORKER_SCRIPT, RUN_IR_ON_CPU_SCRIPT

# Logs "$0" "$@" NUL-separated, one record per start (\x1e-terminated); a --worker or
# legacy_worker.py start also logs each stdin line (the jobs) to $LOG.jobs.
SHIM = """\
#!/bin/bash
{{ printf '%s\\0' "$0" "$@"; printf '\\036'; }} >> "$MYRIAD_BLOB_TEST_ARGV_LOG"
case "$*" in
  *--worker*|*legacy_worker.py*) tee -a "$MYRIAD_BLOB_TEST_ARGV_LOG.jobs" | "{real}" "$@"; exit "${{PIPESTATUS[1]}}" ;;
esac
exec "{real}" "$@"
"""
TOOLS = ["venv/bin/python", "venv-ov2022/bin/python", "bin/myriad_compile_blob"]


@pytest.fixture
def shimmed(tmp_path):
    """(toolchain dir whose tools log their argv, the log's path, the real toolchain)."""
    real = toolchain_module.locate()
    root = tmp_path / "toolchain"
    for tool in TOOLS:
        shim = root / tool
        shim.parent.mkdir(parents=True, exist_ok=True)
        shim.write_text(SHIM.format(real=real.root / tool))
        shim.chmod(0o755)
    (root / "venv" / "bin" / "mo").symlink_to(real.model_optimizer)
    shutil.copy(real.root / "toolchain.json", root / "toolchain.json")
    return root, tmp_path / "argv.log", real


def _received(log):
    """Every logged tool start as its argv (the shim's own path as argv[0])."""
    if not log.exists():
        return []
    return [record.split("\0")[:-1] for record in log.read_text().split("\x1e")[:-1]]


def _jobs(log):
    path = log.with_name(log.name + ".jobs")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _convert(shimmed, tmp_path, *args):
    root, log, _ = shimmed
    blob = tmp_path / "out" / "m.blob"
    result = run_cli(
        "convert",
        *args,
        "--output",
        blob,
        "--no-cache",
        env_extra={"MYRIAD_BLOB_TOOLCHAIN": str(root), "MYRIAD_BLOB_TEST_ARGV_LOG": str(log)},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(blob.with_name(blob.name + ".report.json").read_text())
    return {stage["name"]: stage["commands"] for stage in report["stages"]}, _received(log)


def _all(commands):
    return [command for stage in commands.values() for command in stage]


def test_the_ov2022_front_end_and_the_compile_helper_receive_these_lines(shimmed, tmp_path, model_files):
    root = shimmed[0]
    commands, received = _convert(
        shimmed,
        tmp_path,
        "--input",
        model_files["onnx"],
        "--mean",
        "[1, 2, 3]",
        "--scale",
        "[4, 5, 6]",
        "--reverse-input-channels",
        "--input-type",
        "U8",
        "--nshaves",
        "4",
        "--nslices",
        "4",
        "--nstreams",
        "2",
    )
    # The query runs beside the compile: the two may start in either order.
    assert sorted(received) == sorted(_all(commands))
    assert commands["load"] == commands["export"] == []
    (frontend, read), (query, compile_) = commands["ir"], commands["compile"]
    assert frontend[:2] == [str(root / "venv-ov2022" / "bin" / "python"), str(FRONTEND_SCRIPT)] and len(frontend) == 3
    job = json.loads(frontend[2])
    xml = job["xml"]
    assert job == {
        "onnx": job["onnx"],
        "xml": xml,
        "inputs": ["input"],  # the ONNX inputs' names, which the IR's inputs keep (an input may feed an output)
        "outputs": ["scores"],
        "mean": {"input": [1.0, 2.0, 3.0]},
        "scale": {"input": [4.0, 5.0, 6.0]},
        "reverse_input_channels": True,
    }
    assert job["onnx"].endswith(".onnx") and xml.endswith("/ov2022/model.xml")
    helper = str(root / "bin" / "myriad_compile_blob")
    assert read == [helper, "read", xml]
    assert query == [helper, "query", xml]
    assert compile_ == [
        helper,
        "compile",
        xml,
        compile_[3],
        "-ip",
        "U8",
        "-op",
        "FP16",
        "MYRIAD_NUMBER_OF_SHAVES=4",
        "MYRIAD_NUMBER_OF_CMX_SLICES=4",
        "MYRIAD_THROUGHPUT_STREAMS=2",
        # The plugin's stage graph (stage_graph.py), to a temporary file: our key, never the user's.
        "MYRIAD_DUMP_ALL_PASSES=NO",
        compile_[-1],
    ]
    assert compile_[3].endswith("model.blob")
    assert compile_[-1].startswith("MYRIAD_DUMP_INTERNAL_GRAPH_FILE_NAME=") and compile_[-1].endswith("/stages.dot")
    # The numeric check's run on the photo, then the FP16 stage check's on the three hard frames.
    cpu_run, *hard_frames = commands["verify"]
    assert len(hard_frames) == 3 and all(run[:3] == cpu_run[:3] for run in hard_frames)
    assert cpu_run[:3] == [str(root / "venv" / "bin" / "python"), str(RUN_IR_ON_CPU_SCRIPT), xml]
    assert [os.path.basename(path) for path in cpu_run[3:]] == ["inputs.npz", "outputs.npz", "ranges.json"]


def test_model_optimizer_receives_these_lines(shimmed, tmp_path, model_files):
    root = shimmed[0]
    commands, received = _convert(
        shimmed,
        tmp_path,
        "--input",
        model_files["onnx"],
        "--frontend",
        "mo2021",
        "--input-shape",
        "input=[1, 3, 96, 128]",
        "--mean",
        "[1.5, 2, 3]",
        "--scale",
        "input=[4, 5, 6.25]",
        "--reverse-input-channels",
    )
    assert sorted(received) == sorted(_all(commands))
    (mo, read) = commands["ir"]
    python = str(root / "venv" / "bin" / "python")
    output_dir = mo[5]
    assert mo == [
        python,
        str(root / "venv" / "bin" / "mo"),
        "--input_model",
        mo[3],
        "--output_dir",
        output_dir,
        "--model_name",
        "model",
        "--data_type",
        "FP16",
        "--input",
        "input",
        "--input_shape",
        "[1,3,96,128]",
        "--mean_values",
        "input[1.5,2,3]",
        "--scale_values",
        "input[4,5,6.25]",
        "--reverse_input_channels",
    ]
    assert mo[3].endswith(".onnx") and output_dir.endswith("/mo2021/ir")
    assert read == [str(root / "bin" / "myriad_compile_blob"), "read", output_dir + "/model.xml"]
    assert commands["compile"][1][:4] == [
        str(root / "bin" / "myriad_compile_blob"),
        "compile",
        output_dir + "/model.xml",
        commands["compile"][1][3],
    ]


def test_in_a_batch_the_recorded_lines_carry_exactly_the_jobs_the_warm_workers_ran(shimmed, tmp_path, model_files):
    root, log, _ = shimmed
    shutil.copy(model_files["onnx"], tmp_path / "m.onnx")
    (tmp_path / "myriad-blob.toml").write_text(
        textwrap.dedent(f"""\
        [[models]]
        name = "ov"
        model = "m.onnx"
        input-shape = "{SHAPE_ARG}"
        mean = "[1, 2, 3]"

        [[models]]
        name = "mo"
        model = "m.onnx"
        input-shape = "{SHAPE_ARG}"
        frontend = "mo2021"
        """)
    )
    result = run_cli(
        "convert-all",
        "--jobs",
        "1",
        "--no-cache",
        "--output-dir",
        tmp_path / "out",
        cwd=tmp_path,
        env_extra={"MYRIAD_BLOB_TOOLCHAIN": str(root), "MYRIAD_BLOB_TEST_ARGV_LOG": str(log)},
    )
    assert result.returncode == 0, result.stderr
    recorded = []
    for report_path in sorted((tmp_path / "out").rglob("*.report.json")):
        recorded += _all({s["name"]: s["commands"] for s in json.loads(report_path.read_text())["stages"]})
    python, frontend_python = str(root / "venv" / "bin" / "python"), str(root / "venv-ov2022" / "bin" / "python")
    # The workers started once each; the one-shot lines recorded for them never ran as such.
    received = _received(log)
    assert [python, str(LEGACY_WORKER_SCRIPT)] in received
    assert [frontend_python, str(FRONTEND_SCRIPT), "--worker"] in received
    worker_lines = [c for c in recorded if c[0] in (python, frontend_python)]
    assert worker_lines and not any(line in received for line in worker_lines)
    # Each recorded one-shot line is exactly a job a worker ran: the front end's JSON job,
    # Model Optimizer's arguments, the CPU run's files.
    jobs = _jobs(log)
    expected = []
    for line in worker_lines:
        if line[0] == frontend_python:
            expected.append(json.loads(line[2]))
        elif line[1] == str(root / "venv" / "bin" / "mo"):
            expected.append({"op": "mo", "args": line[2:]})
        else:
            files = dict(zip(["xml", "inputs", "outputs", "ranges"], line[2:]))
            expected.append({"op": "infer", **files})
    assert sorted(json.dumps(j, sort_keys=True) for j in jobs) == sorted(
        json.dumps(j, sort_keys=True) for j in expected
    )
    # The compile helper runs cold in a batch too: recorded as received.
    helper_lines = [c for c in recorded if c[0] == str(root / "bin" / "myriad_compile_blob")]
    assert sorted(helper_lines) == sorted(c for c in received if c[0] == str(root / "bin" / "myriad_compile_blob"))
