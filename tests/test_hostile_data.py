"""Nothing internal from bad data (issue 24): a damaged or unwritable cache, ONNX external data
outside the model's folder, an input too large for the Myriad X, a zip that declares gigabytes,
a non-finite timeout and a cancelled run each end in one line with a documented exit code, a
report, and nothing left behind."""

import json
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


def _blob_missing(entry: Path) -> None:
    (entry / "model.blob").unlink()


def _a_file_in_its_place(entry: Path) -> None:
    import shutil

    shutil.rmtree(entry)
    entry.write_text("not a directory")


DAMAGES = [_not_json, _truncated, _not_a_report, _blob_missing, _a_file_in_its_place]


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
