"""convert-all: every variant of a manifest, sharing work, across both cores, never stopping at a failure.

Every variant runs in a thread pool, in one Session, so variants that share a model, an export
or an IR compute it once; a thread that needs the legacy toolchain borrows a warm worker
(started on first use). Cache hits are restored inside convert() without torch or workers. Each variant gets its own report; the batch report lists them.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from . import toolchain as toolchain_module
from .cache import BlobCache
from .cancel import Cancelled, stop_children
from .errors import ConversionError
from .files import write_atomically
from .manifest import Variant
from .markdown_text import code, markdown_table
from .pipeline import Session, convert
from .report import ConversionReport, verdict


@dataclasses.dataclass
class BatchResult:
    variant: Variant
    report: ConversionReport

    def to_dict(self) -> dict:
        report = self.report
        return {
            "id": self.variant.id,
            "model": self.variant.model,
            "variant": self.variant.name,
            "status": report.status,
            "error": report.error,
            "verdict": report.to_dict()["verdict"],  # its report's (report.overall_verdict)
            "blob": report.blob["path"] if report.blob else None,
            "sha256": report.blob["sha256"] if report.blob else None,
            "size": report.blob["size"] if report.blob else None,
            "superblob": report.superblob["path"] if report.superblob else None,
            "report": report.options["report"],
            "cached": bool((report.cache or {}).get("hit")),
            "warnings": report.warnings,
        }


def output_options(variant: Variant, output_dir: Path, superblob: bool):
    blob = output_dir / f"{variant.model}-{variant.name}.blob"
    return dataclasses.replace(variant.options, output=blob, superblob=superblob or variant.options.superblob)


def convert_all(
    variants: list[Variant],
    output_dir: Path,
    *,
    cache: BlobCache | None,
    jobs: int = 2,
    superblob: bool = False,
    toolchain_dir: Path | None = None,
    progress=lambda result: None,
) -> dict:
    started = time.perf_counter()
    planned = [(variant, output_options(variant, output_dir, superblob)) for variant in variants]
    jobs = max(1, min(jobs, len(planned)))
    try:
        toolchain = toolchain_module.locate(toolchain_dir)
    except ConversionError:
        toolchain = None  # each conversion reports the missing toolchain itself
    results: dict[str, BatchResult] = {}
    session = None
    try:
        with tempfile.TemporaryDirectory(prefix="myriad-blob-batch-") as tmp:
            session = Session.for_batch(Path(tmp), toolchain, jobs) if toolchain else Session(Path(tmp))
            with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
                futures = {
                    pool.submit(convert, options, toolchain_dir, session, cache): (variant, options)
                    for variant, options in planned
                }
                try:
                    for future in concurrent.futures.as_completed(futures):
                        variant, options = futures[future]
                        try:
                            report = future.result()
                        except Exception as error:  # a bug of ours in one variant must not stop the others
                            report = ConversionReport(
                                options.to_dict(),
                                status="failed",
                                error={"stage": "internal", "exit_code": 1, "message": f"internal error: {error!r}"},
                            )
                        results[variant.id] = BatchResult(variant, report)
                        progress(results[variant.id])
                except Cancelled:
                    _wind_down(pool, futures)
                    raise
    finally:
        if session is not None:
            session.close()
    ordered = [results[variant.id] for variant, _ in planned]
    summary = {
        "total_s": round(time.perf_counter() - started, 3),
        "jobs": jobs,
        "succeeded": sum(r.report.status == "succeeded" for r in ordered),
        "failed": sum(r.report.status != "succeeded" for r in ordered),
        "cached": sum(bool((r.report.cache or {}).get("hit")) for r in ordered),
        # The worst of the variants' verdicts (report.overall_verdict): passed only if every one passed.
        "verdict": worst_verdict(r.report.to_dict()["verdict"]["result"] for r in ordered),
        "variants": [r.to_dict() for r in ordered],
    }
    write_atomically(output_dir / "batch-report.json", json.dumps(summary, indent=2) + "\n")
    write_atomically(output_dir / "batch-report.md", render_batch_markdown(summary, ordered))
    return summary


def _wind_down(pool: concurrent.futures.ThreadPoolExecutor, futures) -> None:
    """On SIGTERM or SIGINT (cancel.Cancelled): the variants not started never start, and the
    running ones' child processes are stopped until those variants end (a thread past
    cancel.check as the signal came starts its child after the handler's stop)."""
    pool.shutdown(wait=False, cancel_futures=True)
    running = set(futures)
    while running:
        stop_children(grace_s=0.2)
        running = concurrent.futures.wait(running, timeout=0.2).not_done


def worst_verdict(results) -> str:
    order = ("passed", "warnings", "failed")
    return max(results, key=order.index, default="passed")


def render_batch_markdown(summary: dict, results: list[BatchResult]) -> str:
    rows = []
    for result in results:
        report = result.report.to_dict()
        rows.append([code(result.variant.id), verdict(report)])  # markdown_table escapes the verdict's `|`
    parts = [f"{summary['succeeded']} of {len(results)} variants converted"]
    if summary["failed"]:
        parts.append(f"{summary['failed']} failed")
    if summary["cached"]:
        parts.append(f"{summary['cached']} from the cache")
    head = f"### myriad-blob: {', '.join(parts)} · {summary['total_s']:.1f} s"
    return "\n".join([head, "", markdown_table(["variant", "result"], rows), ""])


def matrix(variants: list[Variant]) -> str:
    """The variants as a GitHub Actions matrix, for `strategy.matrix: ${{ fromJSON(...) }}`."""
    include = [{"model": v.model, "variant": v.name, "id": v.id} for v in variants]
    return json.dumps({"include": include}, separators=(",", ":"))


def select(variants: list[Variant], only: tuple[str, ...]) -> list[Variant]:
    """Variants named by --only: 'model' (all its variants) or 'model/variant'."""
    if not only:
        return variants
    chosen = [v for v in variants if v.id in only or v.model in only]
    known = {v.id for v in variants} | {v.model for v in variants}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise ValueError(
            f"--only {unknown[0]!r} is not in the manifest (it has {', '.join(sorted(v.id for v in variants))})"
        )
    return chosen
