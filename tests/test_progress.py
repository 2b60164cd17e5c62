"""A stage that runs long shows its elapsed time on a terminal, then clears the line."""

import io
import time

import pytest

from myriad_blob import report as report_module
from myriad_blob.report import ConversionReport

pytestmark = pytest.mark.unit


def test_a_long_stage_shows_elapsed_time_and_clears_it(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(report_module, "PROGRESS_AFTER_S", 0.2)
    monkeypatch.setattr(report_module, "_progress_stream", stream)
    report = ConversionReport({})
    with report.stage("compile"):
        time.sleep(1.5)
    shown = stream.getvalue()
    assert "\rmyriad-blob: compile … 0 s" in shown or "\rmyriad-blob: compile … 1 s" in shown
    assert shown.endswith("\r\033[K")  # the line is cleared when the stage ends


def test_a_quick_stage_prints_nothing(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(report_module, "_progress_stream", stream)
    with ConversionReport({}).stage("load"):
        pass
    assert stream.getvalue() == ""


def test_no_terminal_no_progress():
    assert report_module._progress_stream is None  # the CLI sets it only when stderr is a TTY
