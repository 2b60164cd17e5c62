"""A tool's failure as one line: the compile helper's OpenVINO message cleaned of its status tag,
source path and colour-coded warnings; a child process's exit (signal or status)."""

from __future__ import annotations

import re
import signal

_STATUS_PREFIX = re.compile(r"^\[ [A-Z_]+ \]\s*")  # "[ GENERAL_ERROR ] "
_SOURCE_LOCATION = re.compile(r"^\S+\.(?:cpp|hpp|h):\d+\s*")  # "/home/jenkins/.../graph_transformer.cpp:88 "


def helper_error(stderr: str, returncode: int = 1) -> str:
    """The helper's error as one line: OpenVINO's message without its status tag, source path
    and the plugin's colour-coded warnings; a helper killed by a signal says so ("crashed (SIGSEGV)")."""
    if returncode < 0:
        said = helper_error(stderr) if stderr.strip() else ""
        return describe_exit(returncode, "" if said == "no message" else said)
    text = stderr.split("ERROR: ", 1)[1] if "ERROR: " in stderr else stderr
    parts = []
    for line in text.splitlines():
        if "[Warning]" in line:
            continue
        line = _SOURCE_LOCATION.sub("", _STATUS_PREFIX.sub("", line.strip()))
        if line:
            parts.append(line)
    return " ".join(parts) or "no message"


def describe_exit(returncode: int, last_line: str = "") -> str:
    """'crashed (SIGSEGV)' / 'exited with status 3', plus its last line of stderr."""
    if returncode < 0:
        try:
            text = f"crashed ({signal.Signals(-returncode).name})"
        except ValueError:
            text = f"crashed (signal {-returncode})"
    else:
        text = f"exited with status {returncode}"
    return text + (f": {last_line}" if last_line else "")


def last_line(output: str) -> str:
    """A tool's last non-empty line of output (its error, after any traceback)."""
    return ([line for line in output.splitlines() if line.strip()][-1:] or ["no message"])[0]
