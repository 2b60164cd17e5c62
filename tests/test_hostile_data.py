"""Nothing internal from bad data (issue 24): a damaged or unwritable cache, ONNX external data
outside the model's folder, an input too large for the Myriad X, a zip that declares gigabytes,
a non-finite timeout and a cancelled run each end in one line with a documented exit code, a
report, and nothing left behind."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli


def assert_one_line_failure(result, stage, exit_code, *fragments):
    assert result.returncode == exit_code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"myriad-blob: {stage} failed: "), first
    for fragment in fragments:
        assert fragment in first, first
    return first


def assert_failed_report(blob: Path, stage: str, exit_code: int) -> dict:
    assert not blob.exists()
    assert not [p for p in blob.parent.glob("*") if p.suffix in (".blob", ".partial")]
    report = json.loads(blob.with_name(blob.name + ".report.json").read_text())
    assert report["status"] == "failed"
    assert (report["error"]["stage"], report["error"]["exit_code"]) == (stage, exit_code)
    return report


# --- a non-finite --compile-timeout -----------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_a_non_finite_compile_timeout_is_an_options_error(value, model_files, tmp_path):
    blob = tmp_path / "x.blob"
    result = run_cli("convert", "--input", model_files["onnx"], "--compile-timeout", value, "--output", blob)
    assert_one_line_failure(result, "options", 2, "--compile-timeout must be a finite number of seconds above 0")
    assert_failed_report(blob, "options", 2)


@pytest.mark.unit
def test_a_non_finite_compile_timeout_action_input_is_refused(monkeypatch, tmp_path):
    import entrypoint.inputs as action_inputs

    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.onnx").write_bytes(b"x")
    monkeypatch.setenv("INPUT_MODEL", "m.onnx")
    monkeypatch.setenv("INPUT_COMPILE-TIMEOUT", "inf")
    with pytest.raises(action_inputs.InputError, match="input compile-timeout must be a finite number of seconds"):
        action_inputs.read_inputs(tmp_path)


# --- the blob cache: damaged entries are misses, an unwritable cache is a warning --------------


def _cache_entry(cache: Path) -> Path:
    (entry,) = [p for p in cache.glob("*/*") if p.is_dir() and ".partial-" not in p.name]
    return entry


def _not_json(entry: Path) -> None:
    (entry / "report.json").write_text("this is not JSON {")


def _truncated(entry: Path) -> None:
    text = (entry / "report.json").read_text()
    (entry / "report.json").write_text(text[: len(text) // 2])


def _not_a_report(entry: Path) -> None:
    (entry / "report.json").write_text('{"stages": 3}')


def _wrong_types_inside(entry: Path) -> None:
    report = json.loads((entry / "report.json").read_text())
    report["warnings"], report["numeric"] = 5, "fine"
    (entry / "report.json").write_text(json.dumps(report))


def _blob_missing(entry: Path) -> None:
    (entry / "model.blob").unlink()


def _a_file_in_its_place(entry: Path) -> None:
    import shutil

    shutil.rmtree(entry)
    entry.write_text("not a directory")


DAMAGES = [_not_json, _truncated, _not_a_report, _wrong_types_inside, _blob_missing, _a_file_in_its_place]


def test_a_damaged_cache_entry_is_a_miss_and_is_replaced(model_files, tmp_path, isolated_cache):
    """Each damage, in turn, to the one entry of one conversion: reconverted (not from the cache),
    the entry replaced with a whole one, which the next run is served from."""
    args = ["convert", "--input", model_files["onnx"], "--output", tmp_path / "m.blob"]
    assert run_cli(*args).returncode == 0
    for damage in DAMAGES:
        entry = _cache_entry(isolated_cache)
        damage(entry)
        result = run_cli(*args)
        assert result.returncode == 0, (damage.__name__, result.stderr)
        assert "from the cache" not in result.stdout and "warning" not in result.stderr, damage.__name__
        assert json.loads((tmp_path / "m.blob.report.json").read_text())["status"] == "succeeded"
        entry = _cache_entry(isolated_cache)
        assert json.loads((entry / "report.json").read_text())["blob"]["sha256"], damage.__name__
        assert (entry / "model.blob").read_bytes() == (tmp_path / "m.blob").read_bytes()
    hit = run_cli(*args)
    assert hit.returncode == 0 and "from the cache" in hit.stdout


@pytest.mark.parametrize("where", ["the cache directory", "the entry's parent"])
def test_a_cache_that_cannot_be_written_is_a_warning_and_the_blob_stands(where, model_files, tmp_path):
    """A regular file where a directory is expected (chmod does not stop root, whom tests may run as)."""
    cache = tmp_path / "cache"
    if where == "the cache directory":
        cache.write_text("a file where the cache directory should be")
    else:  # every entry's two-letter parent directory
        cache.mkdir()
        for a in "0123456789abcdef":
            for b in "0123456789abcdef":
                (cache / (a + b)).write_text("")
    blob = tmp_path / "m.blob"
    result = run_cli("convert", "--input", model_files["onnx"], "--output", blob, "--cache-dir", cache)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    warning = f"the blob cache {cache} cannot be written"
    assert [line for line in result.stderr.splitlines() if warning in line and "was not cached" in line]
    assert blob.is_file() and blob.stat().st_size > 0
    report = json.loads((tmp_path / "m.blob.report.json").read_text())
    assert report["status"] == "succeeded" and report["verdict"]["result"] == "passed"
    assert any(warning in w for w in report["warnings"]) and report["cache"] is None
    assert warning in (tmp_path / "m.blob.report.md").read_text()
    assert not list(tmp_path.rglob("*.partial*"))


# --- ONNX external data outside the model's folder ---------------------------------------------


def _onnx_with_external_data(folder: Path, location: str) -> Path:
    """y = x + bias, the bias's 12 bytes in an external file at `location` (as the model says)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    bias = numpy_helper.from_array(np.array([1, 2, 3], dtype=np.float32).reshape(1, 3, 1, 1), "bias")
    (folder / "bias.bin").write_bytes(bias.raw_data)
    bias.ClearField("raw_data")
    bias.external_data.add(key="location", value=location)
    bias.data_location = TensorProto.EXTERNAL
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "bias"], ["y"], name="add")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
        [bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = folder / "model.onnx"
    onnx.save_model(model, str(path))
    return path


@pytest.mark.parametrize(
    "where", ["../secret.bin", "absolute", "a symlink out", "a symlink in", "../model/bias.bin", "missing", "beside"]
)
def test_external_data_outside_the_model_folder_is_refused_at_load(where, tmp_path):
    """onnx itself refuses all of these but the last (as exit 1, internal error): refused first, at load."""
    folder = tmp_path / "model"
    folder.mkdir()
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"SECRETSECRET")  # 12 bytes: three float32s, if anything read it
    location = {
        "absolute": str(secret),
        "a symlink out": "out.bin",
        "a symlink in": "alias.bin",
        "missing": "missing.bin",
        "beside": "bias.bin",
    }.get(where, where)
    model = _onnx_with_external_data(folder, location)
    (folder / "out.bin").symlink_to(secret)
    (folder / "alias.bin").symlink_to(folder / "bias.bin")
    blob = tmp_path / "out" / "m.blob"
    result = run_cli("convert", "--input", model, "--output", blob)
    if where == "beside":
        assert result.returncode == 0, result.stderr
        return
    why = "which is not a file in the model's folder" if where == "missing" else "outside the model's folder"
    first = assert_one_line_failure(result, "load", 10, f"tensor 'bias' keeps its data in {location!r}", why)
    assert ("is a symlink" in first) == where.startswith("a symlink")
    report = assert_failed_report(blob, "load", 10)
    assert "SECRET" not in json.dumps(report)


# --- an input too large for the Myriad X ---------------------------------------------------------


@pytest.mark.unit
def test_the_input_limit_lets_real_inputs_through_and_names_itself():
    from myriad_blob.limits import MAX_INPUT_VALUES, input_too_large

    for shape in ([1, 3, 480, 640], [1, 3, 640, 640], [1, 3, 1080, 1920], [1, 1, 16384, 16384]):
        assert input_too_large(shape) is None, shape
    assert MAX_INPUT_VALUES == 16384 * 16384  # 512 MB of FP16
    assert input_too_large([1, 3, 16384, 16384]).endswith(
        "more than the Myriad X's 512 MB of memory holds (at most 268,435,456 values an input)"
    )
    assert input_too_large(["batch", 3, 100000, 100000]) is None  # a dynamic dim: --input-shape is asked for


@pytest.mark.unit
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_an_input_shape_flag_too_large_is_an_options_error(fmt, model_files, tmp_path):
    blob = tmp_path / "x.blob"
    result = run_cli(
        "convert", "--input", model_files[fmt], "--input-shape", "[1, 3, 100000, 100000]", "--output", blob
    )
    assert_one_line_failure(
        result,
        "options",
        2,
        "--input-shape [1, 3, 100000, 100000] is 30,000,000,000 values, 55.9 GB in FP16",
        "the Myriad X's 512 MB",
        "give a smaller shape",
    )
    assert_failed_report(blob, "options", 2)


def _declaring(path: Path, shape) -> Path:
    """A one-Relu ONNX file (about 100 bytes) whose input declares `shape`."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.save_model(model, str(path))
    return path


def test_an_input_the_onnx_file_declares_too_large_is_an_ir_error(tmp_path):
    model = _declaring(tmp_path / "huge.onnx", [1, 3, 100000, 100000])
    assert model.stat().st_size < 128
    blob = tmp_path / "out" / "x.blob"
    result = run_cli("convert", "--input", model, "--output", blob)
    assert_one_line_failure(
        result,
        "ir",
        12,
        "input 'x', as the ONNX model declares it: [1, 3, 100000, 100000] is 30,000,000,000 values",
        "the Myriad X's 512 MB",
        "pass --input-shape with a smaller shape",
    )
    assert_failed_report(blob, "ir", 12)


# --- a zip that declares gigabytes -------------------------------------------------------------


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory) -> Path:
    """torch.save's layout, but its data.pkl deflated: 1 GB of zeros in about 5 MB."""
    import zipfile

    path = tmp_path_factory.mktemp("bomb") / "checkpoint.pt"
    zeros = bytes(16 * 2**20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("archive/version", "3\n")
        with archive.open("archive/data.pkl", "w", force_zip64=True) as member:
            for _ in range(64):
                member.write(zeros)
    return path


@pytest.mark.parametrize("flags", [[], ["--trust-pickle"]])
def test_a_zip_whose_members_declare_gigabytes_is_refused_before_inflating(flags, zip_bomb, tmp_path):
    """With --trust-pickle the cache key reads the pickle's globals before loading: refused there too."""
    blob = tmp_path / "out" / "x.blob"
    result = run_cli("convert", "--input", zip_bomb, "--input-shape", "[1, 3, 64, 80]", *flags, "--output", blob)
    assert_one_line_failure(
        result, "load", 10, "would inflate to 1 GB", "'archive/data.pkl', declares 1 GB", "refused before inflating"
    )
    assert_failed_report(blob, "load", 10)


@pytest.mark.unit
def test_torch_archives_pass_the_zip_limit(model_files):
    import zipfile

    from myriad_blob.limits import check_zip_sizes

    for fmt in ("torchscript", "torch.export", "state-dict", "checkpoint", "full-model pickle"):
        with zipfile.ZipFile(model_files[fmt]) as archive:
            check_zip_sizes(model_files[fmt], archive)


# --- SIGTERM and SIGINT during a conversion ----------------------------------------------------


@pytest.fixture(scope="module")
def slow_to_compile(tmp_path_factory) -> Path:
    """25 convolutions at 240x320: the Myriad compiler takes about 18 s on it, time to cancel."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 64, 3, padding=1), nn.ReLU()]
    for _ in range(24):
        layers += [nn.Conv2d(64, 64, 3, padding=1), nn.ReLU()]
    path = tmp_path_factory.mktemp("slow") / "deep.onnx"
    torch.onnx.export(
        nn.Sequential(*layers).eval(), (torch.zeros(1, 3, 240, 320),), str(path), opset_version=12, dynamo=False
    )
    return path


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def _cancel_while_compiling(args, temp: Path, sig) -> tuple[int, str, list[int]]:
    """Run `myriad-blob ARGS` with TMPDIR=temp, send `sig` while the compiler runs, and check
    what every cancel must leave: one line, exit 128 + sig, no work directory, no child process.
    (returncode, stderr, the children it had)."""
    from myriad_blob.cancel import descendants

    env = dict(os.environ, TMPDIR=str(temp), PYTHONPATH=str(Path(__file__).parent))
    command = [sys.executable, "-m", "myriad_blob.cli", *map(str, args)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline, children = time.monotonic() + 300, []
    while time.monotonic() < deadline and process.poll() is None:  # until the compile helper runs
        children = descendants(process.pid)
        if any("myriad_compile_blob compile" in _command_line(pid) for pid in children):
            break
        time.sleep(0.01)
    assert process.poll() is None, "the conversion ended before the compile: " + process.stderr.read()
    assert list(temp.glob("myriad-blob-*"))
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + sig, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith(f"myriad-blob: cancelled by {signal.Signals(sig).name}: the child processes were stopped")
    assert not list(temp.glob("myriad-blob-*"))
    left = [pid for pid in children if Path(f"/proc/{pid}").exists() and "myriad" in _command_line(pid)]
    assert not left, [_command_line(pid) for pid in left]
    return process.returncode, stderr, children


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_cancelled_conversion_stops_its_children_and_leaves_no_work_directory(sig, slow_to_compile, tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    blob = tmp_path / "out" / "m.blob"
    _, stderr, _ = _cancel_while_compiling(["convert", "--input", slow_to_compile, "--output", blob], temp, sig)
    assert f"report: {blob}.report.json" in stderr
    stage = {signal.SIGTERM: "terminated", signal.SIGINT: "interrupted"}[sig]
    report = assert_failed_report(blob, stage, 128 + sig)
    assert report["error"]["message"].startswith(f"cancelled by {signal.Signals(sig).name}")
    assert report["stages"][3]["name"] == "compile" and report["stages"][3]["status"] == "failed"


def test_a_cancelled_batch_starts_no_more_variants(slow_to_compile, tmp_path):
    """Three variants, two at a time: SIGTERM during the first compiles; the third never starts."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    manifest = tmp_path / "myriad-blob.toml"
    variants = "".join(f'[[models.variants]]\nname = "s{n}"\nnshaves = {n}\n' for n in (6, 5, 4))
    manifest.write_text(f'[[models]]\nname = "deep"\nmodel = "{slow_to_compile}"\n{variants}')
    out = tmp_path / "blobs"
    args = ["convert-all", "--manifest", manifest, "--output-dir", out, "--jobs", "2", "--no-cache"]
    _cancel_while_compiling(args, temp, signal.SIGTERM)
    assert not list(out.glob("*.blob")) and not (out / "deep-s4.blob.report.json").exists()


@pytest.mark.unit
def test_external_data_is_found_in_constants_and_subgraphs_too(tmp_path):
    """Not only initializers: a Constant's value and a tensor inside an If's branch name files too."""
    from onnx import TensorProto, helper

    from myriad_blob.limits import external_data_locations, external_data_outside

    def external(name, location):
        tensor = helper.make_tensor(name, TensorProto.FLOAT, [1], [0.0])
        tensor.ClearField("float_data")
        tensor.external_data.add(key="location", value=location)
        tensor.data_location = TensorProto.EXTERNAL
        return tensor

    branch = helper.make_graph(
        [helper.make_node("Constant", [], ["b"], value=external("inner", "/etc/shadow"))],
        "branch",
        [],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["c"], value=external("outer", "beside.bin")),
            helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch),
        ],
        "g",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph)
    assert sorted(set(external_data_locations(model))) == [("inner", "/etc/shadow"), ("outer", "beside.bin")]
    (tmp_path / "beside.bin").write_bytes(bytes(4))
    assert "tensor 'inner' keeps its data in '/etc/shadow', outside" in external_data_outside(
        model, tmp_path / "m.onnx"
    )


def test_an_input_a_yolo_checkpoint_declares_too_large_is_an_ir_error(tmp_path):
    """The blob's input comes from the checkpoint's train_args.imgsz: the file declares it."""
    from yolo_checkpoints import best_pt

    checkpoint = best_pt(tmp_path, "yolov8n.yaml", imgsz=100000)
    blob = tmp_path / "out" / "best.blob"
    result = run_cli("convert", "--input", checkpoint, "--output", blob)
    assert_one_line_failure(
        result,
        "ir",
        12,
        "as the checkpoint's train_args.imgsz makes it: [1, 3, 100000, 100000] is 30,000,000,000 values",
        "the Myriad X's 512 MB",
    )
    assert_failed_report(blob, "ir", 12)


@pytest.mark.unit
def test_a_cancel_exits_with_the_shells_code_for_its_signal():
    from myriad_blob.cancel import SIGNALS, Cancelled
    from myriad_blob.errors import ALL_EXIT_CODES

    assert {ALL_EXIT_CODES[stage] for stage in SIGNALS.values()} == {130, 143}
    assert all(Cancelled(sig).exit_code == 128 + sig for sig in SIGNALS)
