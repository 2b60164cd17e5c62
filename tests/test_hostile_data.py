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
