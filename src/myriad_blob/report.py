"""Stage 6, report: everything about one conversion, as JSON for machines and Markdown for people.

A failed conversion writes a report too, marking the stage that failed and its error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

from . import __version__
from .errors import ConversionError, Stage

SCHEMA = "https://github.com/myriad-blob/myriad-blob/report/v1"
STAGES = ("load", "export", "ir", "compile", "verify")


@dataclasses.dataclass
class StageRecord:
    name: str
    status: str = "not run"  # succeeded | failed | skipped | not run
    duration_s: float | None = None
    tools: dict = dataclasses.field(default_factory=dict)
    error: str | None = None


@dataclasses.dataclass
class ConversionReport:
    options: dict
    stages: dict = dataclasses.field(default_factory=lambda: {name: StageRecord(name) for name in STAGES})
    status: str = "running"
    error: dict | None = None
    warnings: list = dataclasses.field(default_factory=list)
    source: dict | None = None
    onnx: dict | None = None
    ir: dict | None = None
    preprocessing: dict | None = None
    compile_settings: dict | None = None
    layers: dict | None = None
    numeric: dict | None = None
    blob: dict | None = None
    nn_archive: dict | None = None
    toolchain: dict = dataclasses.field(default_factory=dict)
    total_duration_s: float | None = None

    @contextlib.contextmanager
    def stage(self, name: str, **tools):
        """Time one stage and record how it ended."""
        record = self.stages[name]
        record.tools.update(tools)
        start = time.perf_counter()
        try:
            yield record
        except ConversionError as error:
            record.status, record.error = "failed", error.message
            raise
        except Exception as error:
            record.status, record.error = "failed", f"internal error: {error!r}"
            raise
        else:
            record.status = "succeeded"
        finally:
            record.duration_s = round(time.perf_counter() - start, 4)

    def skip(self, name: str, why: str) -> None:
        self.stages[name].status, self.stages[name].error = "skipped", why

    def fail(self, error: ConversionError) -> None:
        self.status = "failed"
        self.error = {"stage": error.stage.value, "exit_code": error.stage.exit_code, "message": error.message}

    def to_dict(self) -> dict:
        data = {"$schema": SCHEMA, "tool": {"name": "myriad-blob", "version": __version__}}
        data |= dataclasses.asdict(self)
        data["stages"] = [dataclasses.asdict(record) for record in self.stages.values()]
        return data

    def to_markdown(self) -> str:
        return render_markdown(self.to_dict())

    def write(self, json_path: Path, markdown_path: Path) -> None:
        try:
            write_atomically(json_path, json.dumps(self.to_dict(), indent=2) + "\n")
            write_atomically(markdown_path, self.to_markdown())
        except OSError as error:
            raise ConversionError(Stage.OUTPUT, f"cannot write the report to {json_path}: {error.strerror}") from error


def write_atomically(path: Path, content: str | bytes) -> None:
    """Write beside the target, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content.encode() if isinstance(content, str) else content)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _tensor_rows(stage: str, tensors: list[dict]) -> list[list]:
    return [[stage, f"`{t['name']}`", "×".join(map(str, t["shape"])), t.get("dtype") or t.get("data_type")] for t in tensors]


def render_markdown(report: dict) -> str:
    out = [f"## myriad-blob: `{Path(report['options']['input']).name}`", ""]
    if report["status"] == "succeeded":
        blob = report["blob"]
        out.append(f"**Converted** to `{Path(blob['path']).name}`: {blob['size']:,} bytes, "
                   f"{report['compile_settings']['nshaves']} shaves, in {report['total_duration_s']:.1f} s.")
    else:
        error = report["error"]
        out.append(f"**Failed** at stage `{error['stage']}` (exit code {error['exit_code']}): {error['message']}")
    out.append("")
    out += [f"> **Warning:** {warning}" for warning in report["warnings"]] + ([""] if report["warnings"] else [])
    if report["source"]:
        src = report["source"]
        out.append(f"Source: `{src['path']}`, {src['format'] or 'unknown format'}, {src['size']:,} bytes, sha256 `{src['sha256'][:16]}…`")
        out.append("")
    rows = []
    if report["onnx"]:
        rows += _tensor_rows("ONNX in", report["onnx"]["inputs"]) + _tensor_rows("ONNX out", report["onnx"]["outputs"])
    if report["blob"]:
        header = report["blob"]["header"]
        rows += [["blob in", f"`{t['name']}`", "×".join(map(str, t["shape"])), f"{t['data_type']} ({t['order']})"] for t in header["inputs"]]
        rows += [["blob out", f"`{t['name']}`", "×".join(map(str, t["shape"])), f"{t['data_type']} ({t['order']})"] for t in header["outputs"]]
    if rows:
        out += ["### Inputs and outputs", "", _table(["where", "name", "shape", "type"], rows), ""]
    if report["preprocessing"]:
        pre = report["preprocessing"]
        out += ["### Preprocessing baked into the blob", "",
                f"- mean: {pre['mean'] or 'none'}", f"- scale: {pre['scale'] or 'none'}",
                f"- reverse input channels: {'yes' if pre['reverse_input_channels'] else 'no'}", ""]
    out += ["### Stages", "", _table(["stage", "status", "seconds", "tools"], [
        [s["name"], s["status"] + (f": {s['error']}" if s["error"] and s["status"] == "failed" else ""),
         "" if s["duration_s"] is None else f"{s['duration_s']:.2f}",
         ", ".join(f"{k} {v}" for k, v in s["tools"].items())] for s in report["stages"]]), ""]
    if report["layers"]:
        layers = report["layers"]
        out += ["<details><summary>Layer support: "
                f"{layers['supported']} of {layers['total']} layers run on the Myriad X</summary>", "",
                _table(["layer type", "count", "unsupported"],
                       [[kind, v["count"], v["unsupported"]] for kind, v in layers["by_type"].items()]), "", "</details>", ""]
    if report["compile_settings"]:
        settings = report["compile_settings"]
        out += ["### Compile settings", "", ", ".join(f"{k}: `{v}`" for k, v in settings.items()), ""]
    if report["blob"]:
        out += [f"Blob sha256 `{report['blob']['sha256']}`, format version {report['blob']['header']['version']}, "
                f"{report['blob']['header']['stage_count']} stages.", ""]
    return "\n".join(out)
