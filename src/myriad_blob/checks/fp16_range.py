"""The FP16 range check: every IR layer's values on the numeric check's input against FP16's
range (numeric.Fp16Range). The Myriad computes in FP16 where the CPU check computes in FP32, so
an overflow there is invisible to the output comparison."""

from __future__ import annotations

from ..findings import Finding
from ..numeric import Fp16Range
from .base import Check, CheckContext


def check_fp16_range(context: CheckContext) -> list[Finding]:
    check = context.results.get("numeric")
    return fp16_findings(check.fp16) if check is not None and check.fp16 is not None else []


def _layers(what: str, layers: list) -> str:
    return f"{what} in layer {layers[0].layer}" + (f" and {len(layers) - 1} more" if len(layers) > 1 else "")


def fp16_findings(fp16: Fp16Range) -> list[Finding]:
    """One finding per kind of trouble (Fp16Range.warnings' messages), in that order: the check
    could not run, overflow, near overflow, underflow."""
    messages = fp16.warnings()
    if fp16.error:
        return [Finding("fp16 range", f"the FP16 range check could not run ({fp16.error})", messages[0])]
    kinds = [
        (fp16.overflows, "FP16 overflow", fp16.overflow_summary() if fp16.overflows else None),
        (fp16.flagged("near overflow"), "FP16 near overflow", None),
        (fp16.flagged("underflow"), "FP16 underflow", None),
    ]
    present = [(layers, what, strict) for layers, what, strict in kinds if layers]
    return [
        Finding("fp16 range", _layers(what, layers), message, strict_message=strict)
        for (layers, what, strict), message in zip(present, messages)
    ]


CHECK = Check("fp16 range", check_fp16_range)
