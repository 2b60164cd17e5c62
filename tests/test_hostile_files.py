"""A model file is hostile until proven data: pickles that call what they name, torch.export
archives with pickled parts. Each exploit is detected by its side effect (a file the payload
writes), never by the exit code alone; each ran its payload on the code before the fix."""

import io
import pathlib
import pickle
import zipfile

import pytest
import torch

from conftest import run_cli
from myriad_blob import pickle_scan

pytestmark = pytest.mark.unit  # every case fails at load, before any toolchain runs


class WritesAFile:
    """What an attacker pickles: unpickling it calls Path.write_text (via getattr at protocol 2)."""

    def __init__(self, target):
        self.target = pathlib.Path(target)

    def __reduce__(self):
        return (pathlib.Path.write_text, (self.target, "pwned"))


class Calls:
    """Pickles as `callable(*args)`: a REDUCE of whatever callable it is given."""

    def __init__(self, callable_, *args):
        self.callable, self.args = callable_, args

    def __reduce__(self):
        return (self.callable, self.args)


def _payload(directory: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """(a pickle that writes `pwned.txt` when loaded with weights_only=False, that file)."""
    marker = directory / "pwned.txt"
    torch.save({"model": WritesAFile(marker)}, directory / "payload.pt")
    return directory / "payload.pt", marker


def test_an_ultralytics_class_called_with_the_files_arguments_runs_nothing(tmp_path):
    """REDUCE of ultralytics' AutoBackend("payload.pt"): an allowed class whose constructor
    torch.loads another file with weights_only=False. Before: the payload ran, no flag asked."""
    from ultralytics.nn.autobackend import AutoBackend

    payload, marker = _payload(tmp_path)
    best = tmp_path / "best.pt"
    torch.save({"model": None, "ema": Calls(AutoBackend, str(payload)), "train_args": {"imgsz": 64}}, best)
    result = run_cli("convert", "--input", best, "--output", tmp_path / "best.blob")
    assert not marker.exists(), "the payload ran"
    assert result.returncode == 10, result.stderr
    assert "ultralytics.nn.autobackend.AutoBackend (called with arguments from the file)" in result.stderr
    assert "--trust-pickle" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "best.blob").exists()


def test_a_model_class_created_with_the_files_arguments_is_refused(tmp_path):
    """NEWOBJ with arguments and REDUCE of a model layer class: both refused by name, from the opcodes."""
    from ultralytics.nn.modules import Conv

    best = tmp_path / "best.pt"
    torch.save({"model": None, "ema": Calls(Conv, 3, 8)}, best)
    result = run_cli("convert", "--input", best, "--output", tmp_path / "best.blob")
    assert result.returncode == 10, result.stderr
    assert "ultralytics.nn.modules.conv.Conv (its constructor called with arguments from the file)" in result.stderr


def _repack(source: pathlib.Path, target: pathlib.Path, replace: dict) -> None:
    """A copy of a zip archive with some members' bytes replaced (matched by name suffix)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = old.read(info.filename)
            for suffix, value in replace.items():
                if info.filename.endswith(suffix):
                    data = value(data)
            new.writestr(info, data)


def _exported(path: pathlib.Path) -> pathlib.Path:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    torch.export.save(torch.export.export(model, (torch.randn(1, 3, 16, 16),)), path)
    return path


@pytest.mark.parametrize("where", ["weights", "sample inputs"])
def test_a_pt2_with_a_pickled_part_runs_nothing(tmp_path, where):
    """A torch.export archive whose weights config says use_pickle (torch.export.load then calls
    torch.load(weights_only=False) on the weight), or whose sample inputs are a hostile pickle
    (loaded with a weights_only=False fallback). Before: the payload ran, no flag asked."""
    payload, marker = _payload(tmp_path)
    good = _exported(tmp_path / "good.pt2")
    bad = tmp_path / "bad.pt2"
    if where == "weights":
        _repack(
            good,
            bad,
            {
                "data/weights/weight_0": lambda _: payload.read_bytes(),
                "model_weights_config.json": lambda data: data.replace(
                    b'"use_pickle": false', b'"use_pickle": true', 1
                ),
            },
        )
    else:
        _repack(good, bad, {"data/sample_inputs/model.pt": lambda _: payload.read_bytes()})
    result = run_cli("convert", "--input", bad, "--input-shape", "[1, 3, 16, 16]", "--output", tmp_path / "bad.blob")
    assert not marker.exists(), "the payload ran"
    assert result.returncode == 10, result.stderr
    assert "torch.export program whose archive holds pickled or code-bearing parts" in result.stderr
    assert "--trust-pickle" in result.stderr and "Traceback" not in result.stderr


def test_what_a_trainer_saves_is_data():
    """The policy passes what real checkpoints hold, and names what they must not."""
    buffer = io.BytesIO()
    torch.save({"state_dict": torch.nn.Conv2d(3, 4, 3).state_dict(), "epoch": 3, "note": b"bytes"}, buffer)
    buffer.seek(0)
    found = [use for program in pickle_scan.pickles_in(buffer) for use in pickle_scan.uses(program)]
    assert pickle_scan.refusals(found) == []
    assert ("torch._utils._rebuild_tensor_v2", "call") in found
    for payload, name in (
        (WritesAFile("/tmp/x"), "builtins.getattr"),
        (Calls(print, "hi"), "builtins.print"),
        (Calls(torch.nn.Conv2d, 3, 4, 3), "torch.nn.modules.conv.Conv2d"),
    ):
        found = pickle_scan.uses(pickle.dumps(payload, protocol=2))
        assert name in [r.name for r in pickle_scan.refusals(found, ("torch.nn.modules.",))]


def test_a_module_class_is_only_created_without_its_constructor():
    """NEWOBJ with `()` then BUILD (what pickling an nn.Module writes) passes; with arguments it does not."""
    found = pickle_scan.uses(pickle.dumps(torch.nn.ReLU(), protocol=2))
    assert ("torch.nn.modules.activation.ReLU", "new") in found
    assert pickle_scan.refusals(found, ("torch.nn.modules.",)) == []
    assert pickle_scan.refusals(found) != []  # without the prefix: a class no checkpoint may hold


def _two_faced_zip(python_sees: dict[str, bytes], torch_sees: dict[str, bytes]) -> bytes:
    """One zip, two readings: Python's zipfile takes the central directory just before the end
    record (shifting every offset by the difference), miniz (torch) the one the end record's
    offset names. Each directory lists its own members."""
    import struct
    import zlib

    def local(files, pad=0):
        out, entries = io.BytesIO(), []
        for name, data in files.items():
            offset, raw = out.tell(), name.encode()
            header = struct.pack("<4s5H3L", b"PK\x03\x04", 20, 0, 0, 0, 0, zlib.crc32(data), len(data), len(data))
            out.write(header + struct.pack("<2H", len(raw), 0) + raw + data)
            entries.append((raw, zlib.crc32(data), len(data), offset))
        return out.getvalue() + b"\0" * pad, entries

    def directory(entries, shift):
        return b"".join(
            struct.pack(
                "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, crc, n, n, len(raw), 0, 0, 0, 0, 0, off + shift
            )
            + raw
            for raw, crc, n, off in entries
        )

    good, good_entries = local(python_sees)
    bad, bad_entries = local(torch_sees, pad=len(good) + 64)
    bad_directory = directory(bad_entries, 0)
    good_directory = directory(good_entries, len(bad) - len(good))  # Python adds len(bad_directory) + len(good)
    assert len(good_directory) == len(bad_directory)
    end = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, len(bad_entries), len(bad_entries), len(bad_directory), len(bad), 0
    )
    return bad + bad_directory + good + good_directory + end


def test_a_zip_that_shows_torch_another_pickle_runs_nothing(tmp_path):
    """The scan reads data.pkl with Python's zipfile; torch.load reads it with miniz. A crafted
    central directory gave the scan a checkpoint that only creates DetectionModel, and torch a
    pickle calling DetectionModel({"activation": ...}), which ultralytics eval()s. Before: the
    payload ran, no flag asked."""
    from ultralytics.nn.tasks import DetectionModel

    marker = tmp_path / "pwned.txt"
    cfg = {
        "activation": f"open({str(marker)!r}, 'w').write('pwned')",
        "nc": 1,
        "backbone": [[-1, 1, "Conv", [16, 3, 2]]],
    }
    cfg["head"] = []
    stamps = {"archive/.format_version": b"1", "archive/byteorder": b"little", "archive/version": b"3\n"}
    shown = b"\x80\x02}(X\x03\x00\x00\x00emacultralytics.nn.tasks\nDetectionModel\n)\x81}bu."
    loaded = pickle.dumps({"ema": Calls(DetectionModel, cfg)}, protocol=2)
    best = tmp_path / "best.pt"
    best.write_bytes(_two_faced_zip(stamps | {"archive/data.pkl": shown}, stamps | {"archive/data.pkl": loaded}))
    result = run_cli("convert", "--input", best, "--output", tmp_path / "best.blob", "--input-shape", "[1,3,64,64]")
    assert not marker.exists(), "the payload ran"
    assert result.returncode == 10, result.stderr
    assert "crafted archive" in result.stderr and "Traceback" not in result.stderr


def test_a_checkpoint_with_numpy_scalars_and_hyper_parameters_loads(tmp_path):
    """What the README says loads without --trust-pickle: argparse's hyper-parameters, numpy
    scalars and arrays beside the state dict. Before: numpy 2's dtypes failed torch.load's BUILD
    ("truncated or corrupt?", and torch's advice to load with weights_only=False)."""
    import argparse

    import numpy as np

    from myriad_blob.load import load_model
    from myriad_blob.options import ConversionOptions

    checkpoint = tmp_path / "checkpoint.pt"
    state = torch.nn.Conv2d(3, 4, 3).state_dict()
    extras = {"args": argparse.Namespace(lr=0.1), "best": np.float64(0.5), "epoch": np.int64(3), "hist": np.zeros(2)}
    torch.save({"state_dict": state, **extras}, checkpoint)
    options = ConversionOptions(input=checkpoint, output=tmp_path / "m.blob", model_class="torch.nn:Identity")
    with pytest.raises(Exception, match=r"do not fit torch\.nn:Identity"):  # the file was read, the class is wrong
        load_model(options)
