"""What the runner gives the step, each of it optional: a runner file or variable that is absent
(GitHub Enterprise Server before step summaries, a container run by hand, a file-command directory
not mounted) is one ::notice, and the step goes on with the conversion's own exit code.

The table below is the one list of them: the variable, what is lost without it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import github_action_utils as gha

from myriad_blob.markdown_text import fit

RUNNER = {
    "GITHUB_WORKSPACE": "the workspace is the current directory",
    "GITHUB_EVENT_NAME": "the event is unknown, so nothing is commented or uploaded",
    "GITHUB_EVENT_PATH": "the event's payload is unknown, so nothing is commented or uploaded",
    "GITHUB_STEP_SUMMARY": "the report is not in the step summary",
    "GITHUB_OUTPUT": "the step's outputs are not set",
}

_noticed: set[str] = set()


def notice_missing(variable: str, why: str) -> None:
    """One notice per variable and run."""
    if variable in _noticed:
        return
    _noticed.add(variable)
    gha.notice(f"{variable} {why}: {RUNNER[variable]}", title="myriad-blob: runner file missing")


def variable(name: str) -> str | None:
    value = os.environ.get(name)
    if not value:
        notice_missing(name, "is not set")
        return None
    return value


def workspace() -> Path:
    return Path(variable("GITHUB_WORKSPACE") or ".")


def event_name() -> str:
    return variable("GITHUB_EVENT_NAME") or ""


def event_payload() -> dict:
    path = variable("GITHUB_EVENT_PATH")
    if path is None:
        return {}
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        notice_missing("GITHUB_EVENT_PATH", f"names {path}, which cannot be read ({error.strerror})")
        return {}
    except ValueError as error:
        notice_missing("GITHUB_EVENT_PATH", f"names {path}, which is not JSON ({error})")
        return {}
    if not isinstance(payload, dict):
        notice_missing("GITHUB_EVENT_PATH", f"names {path}, which holds no JSON object")
        return {}
    return payload


def _write(name: str, write) -> None:
    path = variable(name)
    if path is None:
        return
    try:
        write()
    except OSError as error:
        notice_missing(name, f"names {path}, which cannot be written ({error.strerror})")


SUMMARY_LIMIT = 1024 * 1024  # GitHub's step summary limit, in bytes: beyond it the summary is dropped


def append_summary(markdown: str) -> None:
    """Add to the step summary, cut (markdown_text.fit) to what is left of GitHub's limit."""

    def append():
        path = os.environ["GITHUB_STEP_SUMMARY"]
        used = os.path.getsize(path) if os.path.exists(path) else 0
        note = "*(The report was cut to fit GitHub's step summary; the full report is in its Markdown file.)*"
        room = max(0, SUMMARY_LIMIT - used - 1)  # the newline append_job_summary adds
        gha.append_job_summary(fit(markdown, room, note, measure=lambda part: len(part.encode())))

    _write("GITHUB_STEP_SUMMARY", append)


def set_output(name: str, value) -> None:
    _write("GITHUB_OUTPUT", lambda: gha.set_output(name, value))
