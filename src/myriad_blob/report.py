"""Stage 6, report: everything about one conversion, as JSON for machines and Markdown for people.

A failed conversion writes a report too, marking the stage that failed and its error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from pathlib import Path

from . import __version__
from .cancel import check as check_cancelled
from .checks import VERIFY_CHECKS
from .errors import PIPELINE, ConversionError, Stage
from .families import FAMILIES
from .files import write_atomically
from .markdown_text import MESSAGE_LIMIT, code, html_code, markdown_table, message, text
from .options import FRONTEND_TITLES
from .report_types import SCHEMA_ID
from .toolchain.commands import recording

# The verify checks with a report section of their own (checks/: Check.key).
_SECTION_CHECKS = tuple(check for check in VERIFY_CHECKS if check.key)
SCHEMA = SCHEMA_ID  # docs/report.schema.json, generated from report_types.py
PROGRESS_AFTER_S = 2.0  # a stage running longer than this shows its elapsed time (see show_progress)
_progress_stream = None


def show_progress(stream) -> None:
    """Show each stage's elapsed time on stream (a terminal) while it runs longer than PROGRESS_AFTER_S."""
    global _progress_stream
    _progress_stream = stream


@contextlib.contextmanager
def _ticker(name: str):
    if _progress_stream is None:
        yield
        return
    done = threading.Event()
    start = time.monotonic()

    def tick():
        shown = False
        while not done.wait(PROGRESS_AFTER_S if not shown else 1.0):
            _progress_stream.write(f"\rmyriad-blob: {name} … {time.monotonic() - start:.0f} s")
            _progress_stream.flush()
            shown = True
        if shown:
            _progress_stream.write("\r\033[K")
            _progress_stream.flush()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


STAGES = tuple(stage.value for stage in PIPELINE)


@dataclasses.dataclass
class StageRecord:
    name: str
    status: str = "not run"  # succeeded | failed | skipped | not run
    duration_s: float | None = None
    tools: dict = dataclasses.field(default_factory=dict)
    error: str | None = None
    reused: bool = False  # in a batch: the result of another variant's identical stage
    commands: list = dataclasses.field(
        default_factory=list
    )  # argv of each toolchain process run (toolchain/commands.py)


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
    depthai_json: dict | None = None  # depthai v2's JSON beside the blob, for a family that gives one
    # A model family's own section, by its key (families/: Family.key).
    family_sections: dict = dataclasses.field(default_factory=dict)
    # A verify check's own section, by its key (checks/: Check.key).
    check_sections: dict = dataclasses.field(default_factory=dict)
    findings: list | None = None  # what the verify checks found (findings.Finding.to_dict), in their order
    superblob: dict | None = None
    cache: dict | None = None
    toolchain: dict = dataclasses.field(default_factory=dict)
    total_duration_s: float | None = None

    @contextlib.contextmanager
    def stage(self, name: str, **tools):
        """Time one stage and record how it ended (time adds up if a stage is entered again)."""
        check_cancelled()  # in a batch's other threads: no stage starts once a SIGTERM came
        record = self.stages[name]
        record.tools.update(tools)
        start = time.perf_counter()
        try:
            with _ticker(name), recording(record.commands):
                yield record
        except ConversionError as error:
            record.status, record.error = "failed", error.message
            raise
        except Exception as error:
            record.status, record.error = "failed", f"internal error: {error!r}"
            raise
        except BaseException as error:  # cancel.Cancelled (SIGTERM, SIGINT)
            record.status, record.error = "failed", str(error) or type(error).__name__
            raise
        else:
            record.status = "succeeded"
        finally:
            record.duration_s = round((record.duration_s or 0) + time.perf_counter() - start, 4)

    def skip(self, name: str, why: str) -> None:
        self.stages[name].status, self.stages[name].error = "skipped", why

    def fail(self, error: ConversionError) -> None:
        self.status = "failed"
        self.error = {"stage": error.stage.value, "exit_code": error.stage.exit_code, "message": error.message}

    @classmethod
    def from_dict(cls, data: dict) -> ConversionReport:
        fields = {f.name for f in dataclasses.fields(cls)}
        report = cls(**{k: v for k, v in data.items() if k in fields and k != "stages"})
        report.family_sections = {f.key: data[f.key] for f in FAMILIES if data.get(f.key) is not None}
        report.check_sections = {c.key: data[c.key] for c in _SECTION_CHECKS if data.get(c.key) is not None}
        report.stages = {s["name"]: StageRecord(**s) for s in data["stages"]}
        return report

    def to_dict(self) -> dict:
        data = {"$schema": SCHEMA, "tool": {"name": "myriad-blob", "version": __version__}}
        data |= dataclasses.asdict(self)
        sections = data.pop("family_sections")
        data |= {family.key: sections.get(family.key) for family in FAMILIES}
        sections = data.pop("check_sections")
        data |= {check.key: sections.get(check.key) for check in _SECTION_CHECKS}
        data["stages"] = [dataclasses.asdict(record) for record in self.stages.values()]
        data["verdict"] = overall_verdict(data)
        return data

    def to_markdown(self) -> str:
        return render_markdown(self.to_dict())

    def write(self, json_path: Path, markdown_path: Path | None) -> None:
        """The JSON report, and the Markdown one unless markdown_path is None (a JSON report that
        goes to a stream, a device or a FIFO has no "beside" for its Markdown twin)."""
        try:
            write_atomically(json_path, json.dumps(self.to_dict(), indent=2) + "\n")
            if markdown_path is not None:
                write_atomically(markdown_path, self.to_markdown())
        except OSError as error:
            path = error.filename or json_path
            raise ConversionError(Stage.OUTPUT, f"cannot write the report to {path}: {error.strerror}") from error


def _shape(shape) -> str:
    return "×".join(text(dimension) for dimension in shape)  # a dynamic dimension is a name from the model


def _size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"


def _details(summary: str, body: list[str]) -> list[str]:
    # Blank lines around the body let GitHub render Markdown inside <details>. The summary is raw
    # HTML, not Markdown: a model's string goes in it as html_code().
    return [f"<details><summary>{summary}</summary>", "", *body, "", "</details>", ""]


def overall_verdict(report: dict) -> dict:
    """One verdict a machine can read: "passed" only when the blob was written and no check found
    anything; "warnings" when it was written but a check missed, warned or could not run (each
    finding's reason, in the checks' order: findings.py); "failed" when there is no blob. The
    Markdown verdict line, the batch report, the action's output and --strict's exit code follow
    it. {"result": ..., "reasons": [...]}"""
    if report["status"] != "succeeded":
        error = report.get("error") or {}
        return {"result": "failed", "reasons": [f"{error.get('stage', 'internal')}: {error.get('message', 'failed')}"]}
    findings = report.get("findings")
    reasons = [finding["reason"] for finding in findings] if findings is not None else ["the checks did not run"]
    return {"result": "warnings" if reasons else "passed", "reasons": reasons}


def verdict(report: dict) -> str:
    """The report's first line: converted or not, do the numbers match, size, time."""
    name = Path(report["options"]["input"]).name
    if report["status"] != "succeeded":
        error = report["error"]
        return f"❌ **Failed** at stage {code(error['stage'])} (exit {error['exit_code']}): {message(error['message'])}"
    numeric = report["numeric"]
    if numeric and numeric.get("outputs_passed", numeric["passed"]):
        floats = [o["max_relative_error"] for o in numeric["outputs"] if o.get("agreement") is None]
        agreements = [o["agreement"] for o in numeric["outputs"] if o.get("agreement") is not None]
        numbers = (
            "numbers match ("
            + ", ".join(
                ([f"max relative error {max(floats):.1e}"] if floats else [])
                + ([f"integer outputs {min(agreements):.2%} equal"] if agreements else [])
            )
            + ")"
        )
    elif numeric:
        numbers = "⚠️ **numbers differ** from the original model"
    else:
        numbers = "numbers not checked"
    overflow = ((numeric or {}).get("fp16") or {}).get("overflow") or []
    # What else a check found (findings.py), first of all: numbers that match on the CPU say nothing
    # of an overflow on the camera, in a plugin stage or on a hard frame.
    caveat = next((f["reason"] for f in report.get("findings") or [] if f["check"] != "numeric"), None)
    if overflow:  # the camera's FP16 arithmetic would overflow where the CPU check could not see it
        numbers += f" · ⚠️ **FP16 overflow** in {code(overflow[0])}" + (
            f" and {len(overflow) - 1} more" if len(overflow) > 1 else ""
        )
    elif caveat:
        numbers += f" · ⚠️ **{text(caveat)}**"
    icon = "✅" if overall_verdict(report)["result"] == "passed" else "⚠️"
    cached = " · from the cache" if (report.get("cache") or {}).get("hit") else ""
    return (
        f"{icon} **Converted** {code(name)} → {code(Path(report['blob']['path']).name)}: {numbers} · "
        f"{_size(report['blob']['size'])} · {report['total_duration_s']:.1f} s{cached}"
        + "".join(f" · {c.headline(report[c.key])}" for c in _SECTION_CHECKS if c.headline and report.get(c.key))
    )


def render_markdown(report: dict) -> str:
    """The Markdown report (the PR comment): the verdict line, the warnings, then its sections."""
    out = [f"### myriad-blob: {code(Path(report['options']['input']).name)}", "", verdict(report), ""]
    out += [f"> ⚠️ {message(warning)}" for warning in report["warnings"]] + ([""] if report["warnings"] else [])
    for section in (
        _io_section,
        _numeric_section,
        _check_sections,
        _stages_section,
        _ir_section,
        _layers_section,
        _family_section,
        _details_section,
    ):
        out += section(report)
    return "\n".join(out)


def _io_section(report: dict) -> list[str]:
    """The blob's (or, before there is one, the model's) inputs and outputs, and the camera frame type."""
    out: list[str] = []
    rows = []
    if report["blob"]:
        header = report["blob"]["header"]
        chosen = (report["compile_settings"] or {}).get("input_precisions") or {}
        rows += [
            [
                "input",
                code(t["name"]),
                _shape(t["shape"]),
                text(
                    f"{t['data_type']} {t['order']}" + (f" — {chosen[t['name']]['why']}" if t["name"] in chosen else "")
                ),
            ]
            for t in header["inputs"]
        ]
        rows += [
            ["output", code(t["name"]), _shape(t["shape"]), text(f"{t['data_type']} {t['order']}")]
            for t in header["outputs"]
        ]
    elif report["onnx"]:
        rows += [
            ["input (ONNX)", code(t["name"]), _shape(t["shape"]), text(t["dtype"])] for t in report["onnx"]["inputs"]
        ]
        rows += [
            ["output (ONNX)", code(t["name"]), _shape(t["shape"]), text(t["dtype"])] for t in report["onnx"]["outputs"]
        ]
    if rows:
        out += [
            "**Blob inputs and outputs**" if report["blob"] else "**Model inputs and outputs**",
            "",
            markdown_table(["", "name", "shape", "type"], rows),
            "",
        ]
        if report["blob"]:
            out += [_camera_frames(report["blob"]) + _preprocessing_line(report), ""]
    return out


def _numeric_section(report: dict) -> list[str]:
    """The numeric check's table and the FP16 range section."""
    out: list[str] = []
    numeric = report["numeric"]
    if numeric:
        tolerances = numeric["tolerances"]
        out += [
            f"**Numeric check** (FP16 IR on OpenVINO CPU vs the original model, {text(numeric['input'])} input; "
            f"limits: cosine ≥ {tolerances['min_cosine']}, relative error ≤ {tolerances['max_relative_error']})",
            "",
            markdown_table(
                ["output", "max abs error", "max rel error", "cosine", "top-1", ""],
                [
                    [
                        code(o["name"]),
                        f"{o['max_abs_error']:.3g}",
                        f"{o['max_relative_error']:.2e}",
                        f"{o['cosine']:.7f}",
                        {True: "agrees", False: text(f"{o['top1_ir']} ≠ {o['top1_reference']}"), None: "—"}[
                            o["top1_agrees"]
                        ],
                        ("✅" if o["passed"] else "❌") + (f" {message(o['note'])}" if o.get("note") else ""),
                    ]
                    for o in numeric["outputs"]
                ],
            ),
            "",
        ]
        out += _fp16_section(numeric)
    return out


def _stages_section(report: dict) -> list[str]:
    """Each stage's status and time."""
    out: list[str] = []
    out += [
        "**Stages**",
        "",
        markdown_table(
            ["stage", "status", "seconds"],
            [
                [
                    s["name"],
                    {"succeeded": "✅", "failed": "❌ failed", "skipped": "skipped", "not run": "—"}[s["status"]]
                    + (f": {message(s['error'])}" if s["status"] == "skipped" else ""),
                    "" if s["duration_s"] is None else f"{s['duration_s']:.2f}",
                ]
                for s in report["stages"]
            ],
        ),
        "",
    ]
    return out


def _ir_section(report: dict) -> list[str]:
    """The IR's front end, preparation steps and rewrites (folded)."""
    out: list[str] = []
    ir = report["ir"]
    if ir and ir.get("frontend"):
        title = FRONTEND_TITLES[ir["frontend"]]
        lines = [
            f"- IR v{ir['version']} made by {title}"
            + (f" ({message(ir['frontend_fallback'])})" if ir.get("frontend_fallback") else "")
        ]
        lines += [
            f"- ONNX preparation: {text(step['name'])}: {'kept' if step['kept'] else 'not kept'} "
            f"({message(step['detail'])})"
            for step in ir.get("preparation") or []
        ]
        lines += [
            f"- Rewritten for the 2021.4 compiler: {text(r['rule'])} ({text(r['layers'])} layer(s))"
            for r in ir.get("rewrites") or []
        ]
        out += _details(
            f"IR: {title}, {len(ir.get('rewrites') or [])} rewrite rule(s), "
            f"{sum(s['kept'] for s in ir.get('preparation') or [])} preparation step(s)",
            lines,
        )
    return out


def _layers_section(report: dict) -> list[str]:
    """The plugin's per-layer query (its suspects shown when the compile failed)."""
    out: list[str] = []
    layers = report["layers"]
    if layers:
        if layers["unsupported"] and report["status"] == "failed" and report["error"]["stage"] == "compile":
            out += [
                f"**{len(layers['unsupported'])} layer(s) the plugin's query lists as unsupported**",
                "",
                markdown_table(
                    ["layer", "type", "from ONNX node"],
                    [
                        [
                            code(u["name"]),
                            text(u["type"]),
                            f"{code(u['onnx_node'])} ({text(u['onnx_op'])})" if u["onnx_node"] else "—",
                        ]
                        for u in layers["unsupported"]
                    ],
                ),
                "",
            ]
        accepted = (
            f"the plugin's query accepts {text(layers['supported'])}"
            if layers.get("queried", True)
            else "the plugin's query failed"
        )
        out += _details(
            f"Layer support: {text(layers['total'])} layers; {accepted} (the compiler's verdict decides)",
            [
                markdown_table(
                    ["layer type", "count", "query: unsupported"],
                    [[text(kind), v["count"], v["unsupported"] or ""] for kind, v in layers["by_type"].items()],
                )
            ],
        )
    return out


def _check_sections(report: dict) -> list[str]:
    """The verify checks' own sections (checks/), each rendered by its check."""
    return [
        line for check in _SECTION_CHECKS if report.get(check.key) for line in check.render_markdown(report[check.key])
    ]


def _family_section(report: dict) -> list[str]:
    """A model family's own section (families/), rendered by the family."""
    return [
        line for family in FAMILIES if report.get(family.key) for line in family.render_markdown(report[family.key])
    ]


def _details_section(report: dict) -> list[str]:
    """Source, blob, settings and tool versions (folded)."""
    out: list[str] = []
    details = []
    if report["source"]:
        src = report["source"]
        details.append(
            f"- Source: {code(src['path'])} ({text(src['format'] or 'unknown format')}, {src['size']:,} bytes, "
            f"sha256 {code(src['sha256'])})"
        )
    if report["blob"]:
        blob = report["blob"]
        details.append(
            f"- Blob: {code(blob['path'])} ({blob['size']:,} bytes, sha256 {code(blob['sha256'])}), format "
            f"{text(blob['header']['version'])}, {blob['header']['stage_count']} stages, "
            f"{blob['header']['shaves']} shaves, {blob['header']['cmx_slices']} CMX slices"
        )
    if report["compile_settings"]:
        details.append(
            "- Compile settings: "
            + ", ".join(
                _setting(k, v)
                for k, v in report["compile_settings"].items()
                if v != {} and k != "input_precisions"  # in the inputs' table
            )
        )
    if report["nn_archive"]:
        details.append(f"- NN Archive: {code(report['nn_archive']['path'])}")
    if report.get("depthai_json"):
        details.append(f"- depthai v2 JSON: {code(report['depthai_json']['path'])}")
    for stage in report["stages"]:
        if stage["tools"]:
            details.append(
                f"- {code(stage['name'])} ran with " + ", ".join(text(f"{k} {v}") for k, v in stage["tools"].items())
            )
    out += _details("Details: source, blob, settings, tool versions", details)
    return out


def _fp16_section(numeric: dict) -> list[str]:
    """The FP16 range check: flagged layers in the open, else the top layers by magnitude folded."""
    fp16 = numeric.get("fp16")
    if not fp16:
        return []
    if not fp16["checked"]:
        return [f"**FP16 range**: not checked ({message(fp16['error'])})", ""]
    layers = fp16["layers"]
    if not layers:
        return []
    flagged = [layer for layer in layers if layer["verdict"] != "ok"]
    ranked = sorted(layers, key=lambda layer: (-(layer["nonfinite"] > 0), -layer["max_abs"]))
    shown = flagged[:10] + [layer for layer in ranked[:5] if layer not in flagged[:10]]
    icons = {"overflow": "❌ overflow", "near overflow": "⚠️ near overflow", "underflow": "⚠️ underflow", "ok": "✅"}

    def origin(layer):
        if not layer["onnx_node"]:
            return "—"
        return f"{code(layer['onnx_node'])} ({text(layer['onnx_op'])})" + (
            f", module {code(layer['module'])}" if layer["module"] else ""
        )

    table = markdown_table(
        ["IR layer", "from ONNX node", "largest magnitude", "range", "headroom", "FP16"],
        [
            [
                f"{code(layer['layer'])} ({text(layer['type'])})",
                origin(layer),
                f"{layer['max_abs']:.3g}",
                f"{layer['min']:.3g} .. {layer['max']:.3g}"
                + (f", {layer['nonfinite']} non-finite" if layer["nonfinite"] else ""),
                _headroom(layer["headroom"]),
                icons[layer["verdict"]],
            ]
            for layer in shown
        ],
    )
    top = ranked[0]
    limits = (
        f"Each IR layer's output on the check's {text(numeric['input'])} input, computed in FP32 on the CPU; "
        f"FP16's largest value is {fp16['fp16_max']:g}. Overflow: beyond it; near overflow: within "
        f"{fp16['near_overflow_headroom']:g}× of it; underflow: at least {fp16['underflow_fraction']:.0%} of a "
        f"layer's values below {fp16['fp16_min_normal']:.2g} while its largest is below {fp16['underflow_peak']:g}."
    )
    emulation = _emulation_line(fp16.get("emulation"))
    if flagged:
        counts = ", ".join(
            f"{len(fp16[key])} {key.replace('_', ' ')}"
            for key in ("overflow", "near_overflow", "underflow")
            if fp16[key]
        )
        return [f"**FP16 range** ({len(layers)} layers checked: {counts})", "", table, "", limits, "", *emulation]
    return _details(
        f"FP16 range: all {len(layers)} layers fit; largest magnitude {top['max_abs']:.3g} "
        f"({html_code(top['layer'])}, headroom {_headroom(top['headroom'])})",
        [table, "", limits, *([""] + emulation[:1] if emulation else [])],
    )


def _emulation_line(emulation: dict | None) -> list[str]:
    """The host's FP16 emulation (numeric.emulate_fp16_activations), one line."""
    if not emulation:
        return []
    if emulation.get("error"):
        return [f"FP16 emulation on the host could not run: {message(emulation['error'])}", ""]
    parts = [
        f"{code(o['name'])} cosine {o['cosine']:.6f}, max rel error {o['max_relative_error']:.2e}"
        + (f", {o['nonfinite']} non-finite" if o["nonfinite"] else "")
        for o in emulation["outputs"]
    ]
    return [
        ("✅" if emulation["passed"] else "⚠️") + " With every activation rounded to FP16 on the host "
        "(ONNX Runtime, Cast to float16 and back after each node): " + "; ".join(parts) + ".",
        "",
    ]


def _headroom(headroom: float | None) -> str:
    if headroom is None:
        return "∞"
    return f"{headroom:.3g}×" if headroom >= 1 else ("over" if headroom == 0 else f"over by {1 / headroom:.3g}×")


def _camera_frames(blob: dict) -> str:
    """One frame type for the blob, or one per image input when their layouts differ."""
    types = blob.get("camera_frame_types") or {}
    if not types:  # no 3-channel image input: nothing a camera frame fills
        return "Camera frames: none (no 3-channel image input: send each input as a tensor of its type). "
    if len(set(types.values())) > 1:
        return "Camera frames: " + ", ".join(f"{code(name)} {code(frame)}" for name, frame in types.items()) + ". "
    return f"Camera frames: {code(blob['camera_frame_type'])}. "


def _setting(key: str, value) -> str:
    """One compile setting for the Markdown: a table of them (per tensor, --compile-config) as name=value."""
    if isinstance(value, dict):  # per tensor: the names are the model's
        value = ", ".join(f"{name}={item}" for name, item in value.items())
    return f"{text(key)} {code(value, MESSAGE_LIMIT)}"


def _preprocessing_line(report: dict) -> str:
    pre = report["preprocessing"] or {}
    parts = []
    if pre.get("reverse_input_channels"):
        parts.append("channels reversed (BGR → RGB)")
    for key in ("mean", "scale"):
        for name, values in (pre.get(key) or {}).items():
            parts.append(f"{key} {code(name)} {text(values)}")
    return (
        "Baked into the blob: " + ("; ".join(parts) if parts else "nothing (the model gets the camera's values)") + "."
    )
