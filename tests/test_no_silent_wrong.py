"""No silent wrong results: each case once gave a wrong blob or a wrong answer with no error."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import SHAPE_ARG, run_cli
from test_convert import assert_depthai_agrees

CONSOLE_SCRIPT = Path(sys.executable).with_name("myriad-blob")


class LeftRight(nn.Module):
    """forward(left, right): the output takes left's size; right only shifts it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, left, right):
        return self.conv(left) + right.mean()


def _report(blob):
    return json.loads(blob.with_name(blob.name + ".report.json").read_text())


def test_named_pytorch_inputs_bind_by_name_not_by_flag_order(tmp_path):
    torch.manual_seed(0)
    model = tmp_path / "lr.pt"
    torch.jit.save(
        torch.jit.trace(LeftRight().eval(), (torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 8, 8))), str(model)
    )
    blob = tmp_path / "lr.blob"
    result = run_cli(
        "convert",
        "--input",
        model,
        "--output",
        blob,
        "--input-shape",
        "right=[1, 3, 8, 8]",
        "--input-shape",
        "left=[1, 3, 16, 16]",
        "--mean",
        "left=[100, 100, 100]",
        "--scale",
        "right=[50, 50, 50]",
        "--strict",
    )
    assert result.returncode == 0, result.stderr
    info = assert_depthai_agrees(blob)
    assert {t.name: t.shape for t in info.inputs} == {"left": (1, 3, 16, 16), "right": (1, 3, 8, 8)}
    assert [t.shape for t in info.outputs] == [(1, 4, 16, 16)]
    report = _report(blob)
    assert report["preprocessing"]["mean"] == {"left": [100.0, 100.0, 100.0]}
    assert report["preprocessing"]["scale"] == {"right": [50.0, 50.0, 50.0]}
    assert report["numeric"]["passed"]


def test_a_name_forward_does_not_take_is_refused(tmp_path):
    model = tmp_path / "lr.pt"
    torch.jit.save(
        torch.jit.trace(LeftRight().eval(), (torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 8, 8))), str(model)
    )
    result = run_cli(
        "convert",
        "--input",
        model,
        "--output",
        tmp_path / "x.blob",
        "--input-shape",
        "rgb=[1, 3, 8, 8]",
        "--input-shape",
        "left=[1, 3, 16, 16]",
    )
    assert result.returncode == 11 and "forward takes (left, right)" in result.stderr


NET_SOURCE = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return {body}
"""


def test_editing_the_model_class_misses_the_cache(tmp_path, isolated_cache):
    """As the console script runs (and the action's python -P): the class's module must still be
    found from the current directory, and its source be part of the cache key."""
    (tmp_path / "mynet.py").write_text(textwrap.dedent(NET_SOURCE.format(body="torch.relu(self.conv(x))")))
    sys.path.insert(0, str(tmp_path))
    try:
        import mynet

        torch.manual_seed(0)
        torch.save(mynet.Net().state_dict(), tmp_path / "weights.pth")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("mynet", None)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def convert():
        result = subprocess.run(
            [
                str(CONSOLE_SCRIPT),
                "convert",
                "--input",
                "weights.pth",
                "--model-class",
                "mynet:Net",
                "--input-shape",
                SHAPE_ARG,
                "--output",
                "net.blob",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr
        return _report(tmp_path / "net.blob"), (tmp_path / "net.blob").read_bytes()

    _, first_blob = convert()
    again, _ = convert()
    assert again["cache"]["hit"]  # unchanged: served from the cache
    (tmp_path / "mynet.py").write_text(textwrap.dedent(NET_SOURCE.format(body="torch.sigmoid(self.conv(x))")))
    edited, edited_blob = convert()
    assert not (edited["cache"] or {}).get("hit")
    assert edited_blob != first_blob


def test_a_damaged_cache_entry_is_not_handed_out(model_files, tmp_path, isolated_cache):
    args = ["convert", "--input", model_files["onnx"], "--output", tmp_path / "a.blob"]
    assert run_cli(*args).returncode == 0
    cached = next(isolated_cache.rglob("model.blob"))
    cached.write_bytes(cached.read_bytes()[:-100])  # truncated on disk
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert not (_report(tmp_path / "a.blob")["cache"] or {}).get("hit")
    assert_depthai_agrees(tmp_path / "a.blob")


@pytest.mark.unit
def test_an_unwritable_report_fails_before_converting(model_files, tmp_path):
    (tmp_path / "file").write_text("not a directory")
    blob = tmp_path / "out.blob"
    result = run_cli(
        "convert", "--input", model_files["onnx"], "--output", blob, "--report", tmp_path / "file" / "r.json"
    )
    assert result.returncode == 15, result.stderr
    assert result.stderr.startswith("myriad-blob: output failed: --report") and "is not a directory" in result.stderr
    assert not blob.exists()


@pytest.mark.unit
@pytest.mark.parametrize("field, value", [("opset", "99"), ("max-relative-error", "-1"), ("min-cosine", "2")])
def test_manifest_ranges_are_the_flags_ranges(field, value, tmp_path, model_files):
    (tmp_path / "myriad-blob.toml").write_text(
        f'[[models]]\nname = "m"\nmodel = "{model_files["onnx"]}"\n{field} = {value}\n'
    )
    result = run_cli("convert-all", "--manifest", tmp_path / "myriad-blob.toml", "--output-dir", tmp_path / "out")
    assert result.returncode == 16
    assert f"models[0].{field} is invalid: --{field} must be" in result.stderr


@pytest.mark.unit
@pytest.mark.parametrize(
    "flag, value",
    [
        ("--input-type", "U32"),
        ("--input-type", "BF16"),
        ("--output-type", "U8"),
        ("--output-type", "I32"),
        ("--input-type", "BOOL"),
    ],
)
def test_precisions_the_myriad_x_does_not_take_fail_at_options(flag, value, model_files, tmp_path):
    result = run_cli("convert", "--input", model_files["onnx"], "--output", tmp_path / "x.blob", flag, value)
    assert result.returncode == 2
    assert f"{flag} must be one of" in result.stderr and "what the Myriad X takes" in result.stderr


def test_an_onnx_conversion_never_imports_torch(model_files, tmp_path):
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('torch imported' if 'torch' in sys.modules else 'no torch', file=sys.stderr))\n"
        "from myriad_blob.cli import main\n"
        "main()\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            probe,
            "convert",
            "--input",
            str(model_files["onnx"]),
            "--output",
            str(tmp_path / "x.blob"),
            "--no-cache",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "no torch"


def test_a_failed_nn_archive_leaves_no_blob(model_files, tmp_path):
    (tmp_path / "model.tar.xz").mkdir()  # the archive's path is taken by a directory
    blob = tmp_path / "model.blob"
    result = run_cli("convert", "--input", model_files["onnx"], "--output", blob, "--nn-archive")
    assert result.returncode == 15, result.stderr
    assert "cannot write the NN Archive" in result.stderr.splitlines()[0]
    assert not blob.exists()
    assert {s["name"]: s["status"] for s in _report(blob)["stages"]}["compile"] == "succeeded"


class SkipsMiddle(nn.Module):
    """forward(a, b=None, c=None): naming a and c must not feed c's tensor to b."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, a, b=None, c=None):
        return self.conv(a) + (0 if b is None else 100 * b.mean()) - (0 if c is None else c.mean())


def test_named_inputs_that_skip_a_parameter_are_refused(tmp_path):
    torch.save(SkipsMiddle().state_dict(), tmp_path / "w.pth")
    result = run_cli(
        "convert",
        "--input",
        tmp_path / "w.pth",
        "--model-class",
        "test_no_silent_wrong:SkipsMiddle",
        "--input-shape",
        "a=[1, 3, 8, 8]",
        "--input-shape",
        "c=[1, 3, 8, 8]",
        "--output",
        tmp_path / "x.blob",
    )
    assert result.returncode == 11, result.stderr
    assert "give shapes for its first 2 parameters (a, b)" in result.stderr.splitlines()[0]
    assert not (tmp_path / "x.blob").exists()


class ChannelsLast(nn.Module):
    """An NHWC input (as tf2onnx and TFLite exports have): channels in dimension 3."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(x.permute(0, 3, 1, 2))


def test_reverse_input_channels_on_an_input_it_cannot_reverse(tmp_path):
    path = tmp_path / "nhwc.onnx"
    torch.onnx.export(
        ChannelsLast().eval(),
        (torch.zeros(1, 16, 16, 3),),
        str(path),
        opset_version=14,
        dynamo=False,
        input_names=["image"],
    )
    result = run_cli("convert", "--input", path, "--reverse-input-channels", "--output", tmp_path / "x.blob")
    assert result.returncode == 2, result.stderr
    first = result.stderr.splitlines()[0]
    assert "--reverse-input-channels swaps the 3 channels of an NCHW input" in first and "image [1, 16, 16, 3]" in first


@pytest.mark.unit
def test_editing_a_module_the_model_class_imports_misses_the_cache(tmp_path, isolated_cache):
    """model.py imports layers.py: editing layers.py changes the model, so it must change the key."""
    from myriad_blob.cache import BlobCache
    from myriad_blob.options import parse_options

    (tmp_path / "layers.py").write_text("def act(x):\n    return x * 2\n")
    (tmp_path / "model.py").write_text("from layers import act\n")
    (tmp_path / "weights.pth").write_bytes(b"weights")
    options = parse_options(input=tmp_path / "weights.pth", model_class="model:Net", input_shapes=[SHAPE_ARG])
    cache = BlobCache(isolated_cache)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        before = cache.key(options, {})
        (tmp_path / "layers.py").write_text("def act(x):\n    return x * 3\n")
        after = cache.key(options, {})
    finally:
        os.chdir(cwd)
    assert before and after and before != after


@pytest.mark.unit
def test_manifest_list_items_must_be_strings(tmp_path, model_files):
    (tmp_path / "myriad-blob.toml").write_text(
        f'[[models]]\nname = "m"\nmodel = "{model_files["onnx"]}"\ninput-shape = ["[1, 3, 64, 80]", 5]\n'
    )
    result = run_cli("convert-all", "--manifest", tmp_path / "myriad-blob.toml", "--output-dir", tmp_path / "out")
    assert result.returncode == 16 and "Traceback" not in result.stderr
    assert "models[0].input-shape must be" in result.stderr and "every item a string" in result.stderr
