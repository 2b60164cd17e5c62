"""Findings: what the verify checks found, and the one policy that judges them.

Every check (checks/: the blob header, the numeric check, the FP16 range; each model family's own
checks) returns a list of Findings. From that one list come the report's warnings, its verdict and
the verdict's reasons (report.overall_verdict), and --strict's failure (judge): a new check is
taught to nothing else.
"""

from __future__ import annotations

import dataclasses

from .errors import ConversionError, Stage

WARNING = "warning"  # the blob is written; the verdict is "warnings"; --strict fails the conversion at verify


@dataclasses.dataclass(frozen=True)
class Finding:
    """One thing a check found that the user must hear about.

    check: the check's name (checks.VERIFY_CHECKS, or a family's check). reason: the verdict's
    short reason (report.verdict.reasons). message: the warning, a full sentence that says what to
    change. strict_message: what --strict fails with, when it should say more than the message
    (default: the message)."""

    check: str
    reason: str
    message: str
    severity: str = WARNING
    strict_message: str | None = None

    def to_dict(self) -> dict:
        return {"check": self.check, "severity": self.severity, "reason": self.reason, "message": self.message}


def judge(findings: list[Finding], strict: bool) -> list[str]:
    """The warnings to report, in the checks' order; with --strict, the first finding fails the
    conversion at verify instead (so --strict passes exactly what the verdict passes)."""
    if strict and findings:
        first = findings[0]
        raise ConversionError(Stage.VERIFY, (first.strict_message or first.message) + " (--strict)")
    return [finding.message for finding in findings]
