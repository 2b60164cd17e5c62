"""The JSON report's schema (docs/report.schema.json) is generated from its types
(src/myriad_blob/report_types.py), and the reports conversions write follow it, failed ones too."""

import importlib.util
import json
from pathlib import Path

import jsonschema
import pytest

from conftest import SHAPE_ARG, run_cli

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("report_schema", ROOT / "scripts" / "report_schema.py")
report_schema = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report_schema)


def _validate(report: dict) -> None:
    schema = json.loads(report_schema.SCHEMA_FILE.read_text())
    assert report["$schema"] == schema["$id"]
    errors = [
        f"{list(e.absolute_path)}: {e.message[:200]}"
        for e in jsonschema.Draft202012Validator(schema).iter_errors(report)
    ]
    assert not errors, errors


@pytest.mark.unit
def test_schema_file_is_generated_from_the_report_types():
    assert report_schema.SCHEMA_FILE.read_text() == report_schema.generate(), "run scripts/report_schema.py"


def test_reports_follow_the_schema(tmp_path, model_files):
    ok = run_cli(
        "convert",
        "--input",
        model_files["torchscript"],
        "--input-shape",
        SHAPE_ARG,
        "--output",
        tmp_path / "ok.blob",
        "--nn-archive",
        "--reverse-input-channels",
    )
    assert ok.returncode == 0, ok.stderr
    _validate(json.loads((tmp_path / "ok.blob.report.json").read_text()))
    failed = run_cli(
        "convert",
        "--input",
        model_files["torchscript"],
        "--input-shape",
        "[1, 1, 8, 8]",
        "--output",
        tmp_path / "bad.blob",
    )
    assert failed.returncode == 11
    report = json.loads((tmp_path / "bad.blob.report.json").read_text())
    assert report["verdict"]["result"] == "failed"
    _validate(report)
