"""The toolchain command lines a conversion runs, recorded for the report: each stage entry's
`commands` lists the exact argv of every toolchain process the stage ran (the front end, Model
Optimizer, the compile helper, the CPU run), in order.

A warm worker (convert-all) runs the same job inside a long-lived process; what is recorded for it
is the one-shot command line that runs that job, so a report says the same in a batch and alone.
Recording is on only inside report stages (ConversionReport.stage), per thread.
"""

from __future__ import annotations

import contextlib
import contextvars

_recording: contextvars.ContextVar[list | None] = contextvars.ContextVar("myriad_blob_tool_commands", default=None)


@contextlib.contextmanager
def recording(into: list):
    """Record every toolchain command line run in this thread into `into` (a list of argv lists)."""
    token = _recording.set(into)
    try:
        yield into
    finally:
        _recording.reset(token)


def record(command) -> None:
    into = _recording.get()
    if into is not None:
        into.append([str(part) for part in command])
