"""Conversion stages, their exit codes, and the one error type the pipeline raises."""

from __future__ import annotations

import enum


class Stage(str, enum.Enum):
    """A pipeline stage; each failure is reported against one, with its own exit code."""

    OPTIONS = "options"
    TOOLCHAIN = "toolchain"
    LOAD = "load"
    EXPORT = "export"
    IR = "ir"
    COMPILE = "compile"
    VERIFY = "verify"
    OUTPUT = "output"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self]


# The one vocabulary of stages. PIPELINE: the stages a conversion runs, in order, as the report
# times them (OPTIONS, TOOLCHAIN and OUTPUT fail around them). SHARED_STEPS: the results a batch
# shares between variants, in order; the IR stage's ONNX preparation ("ir.prepare", which both
# front ends share) is a step of its own and fails as Stage.IR.
PIPELINE = (Stage.LOAD, Stage.EXPORT, Stage.IR, Stage.COMPILE, Stage.VERIFY)
SHARED_STEPS = (Stage.LOAD.value, Stage.EXPORT.value, "ir.prepare", Stage.IR.value)

# Documented in the README ("Exit codes"); 1 is an internal error. 2 is a usage error, as click's own.
EXIT_CODES = {
    Stage.OPTIONS: 2,
    Stage.TOOLCHAIN: 3,
    Stage.LOAD: 10,
    Stage.EXPORT: 11,
    Stage.IR: 12,
    Stage.COMPILE: 13,
    Stage.VERIFY: 14,
    Stage.OUTPUT: 15,
}
EXIT_INTERNAL = 1  # a bug: an exception no stage turned into a ConversionError
EXIT_MANIFEST = 16  # convert-all, matrix: an invalid myriad-blob.toml or --only
EXIT_SOME_FAILED = 17  # convert-all: at least one variant failed
EXIT_PUBLISH = 20  # the action: converted, but commenting or uploading failed
# Cancelled (cancel.py): the shell's 128 + the signal's number, for SIGINT (Ctrl-C) and SIGTERM.
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
# Every exit code, by the name the README's "Exit codes" table gives it (tests/test_options_table.py checks it).
ALL_EXIT_CODES = {
    "—": 0,
    "internal": EXIT_INTERNAL,
    **{stage.value: code for stage, code in EXIT_CODES.items()},
    "manifest": EXIT_MANIFEST,
    "batch": EXIT_SOME_FAILED,
    "publish": EXIT_PUBLISH,
    "interrupted": EXIT_INTERRUPTED,
    "terminated": EXIT_TERMINATED,
}


class ConversionError(Exception):
    """A failure the user can act on: one line naming what went wrong and what to change."""

    def __init__(self, stage: Stage, message: str):
        super().__init__(message)
        self.stage = stage
        self.message = message

    def __str__(self) -> str:
        return f"{self.stage.value}: {self.message}"


def first_line(error: BaseException) -> str:
    """An exception's message, cut to its first line, for one-line errors."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def cause_line(error: BaseException) -> str:
    """The line of an exception's message that names the cause. TorchScript's interpreter puts
    "The following operation failed..." first and the real error ("RuntimeError: Sizes of tensors
    must match ...") last, after both tracebacks: take that one, without its class name."""
    lines = [line.strip() for line in (str(error).strip() or type(error).__name__).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("The following operation failed in the TorchScript interpreter"):
        last = lines[-1]
        head, separator, rest = last.partition(": ")
        return rest if separator and head.endswith(("Error", "Exception")) and " " not in head else last
    return lines[0]
