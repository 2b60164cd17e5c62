"""The check protocol: what every verify check is given, and what it returns."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..artifacts import CompiledBlob, IRModel, LoadedModel, PreparedOnnx
from ..findings import Finding
from ..options import ConversionOptions


@dataclasses.dataclass
class CheckContext:
    """One conversion's verify stage, as the checks see it. A check reads what the stages made,
    fills its own section of the report, and may leave a result for the checks after it
    (results, by check name: the FP16 range check reads the numeric check's run)."""

    options: ConversionOptions
    toolchain: Any  # toolchain.Toolchain
    session: Any  # pipeline.Session: session.worker() lends the legacy CPU worker
    report: Any  # report.ConversionReport: each check fills its own section
    loaded: LoadedModel
    ir: IRModel
    prepared: PreparedOnnx
    compiled: CompiledBlob
    data: bytes = b""  # the blob, as the blob header check read it
    info: Any = None  # blob.BlobInfo, after the blob header check
    results: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Check:
    """A verify check: run(context) -> findings. It raises ConversionError (at verify) only when
    the blob cannot be used at all; everything short of that is a Finding, which the one policy
    (findings.judge, report.overall_verdict) turns into warnings, the verdict and --strict."""

    name: str
    run: Callable[[CheckContext], list[Finding]]
    # A check with a report section of its own: its top-level key in the report (the check fills
    # context.report.check_sections[key]; report_types.py gives its schema) and its Markdown.
    key: str | None = None
    render_markdown: Callable[[dict], list[str]] | None = None
    # A few words for the report's first line (and the PR comment's) from its section, or None.
    headline: Callable[[dict], str] | None = None
