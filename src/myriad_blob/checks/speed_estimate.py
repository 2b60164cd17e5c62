"""The speed estimate check: how fast the blob runs on an RVC2 camera (speed.py), in every report,
and a finding when it falls short of --target-fps (naming the SHAVEs or input size that would
reach it). An estimate that cannot be made (a stage table that does not read) is no finding."""

from __future__ import annotations

from ..findings import Finding
from ..speed import markdown, report_section, summary_of
from .base import Check, CheckContext


def check_speed(context: CheckContext) -> list[Finding]:
    # The blob's own stage table gives the estimate; the plugin's stage graph, when the compile
    # kept one, only names the layers (so `myriad-blob estimate` on the blob gives the same figures).
    section, short = report_section(
        context.data or context.compiled.path.read_bytes(),
        context.compiled.stage_graph,
        context.options.target_fps,
    )
    if section is not None:
        context.report.check_sections["speed"] = section
    return [Finding("speed", f"below --target-fps {context.options.target_fps:g}", short)] if short else []


CHECK = Check("speed", check_speed, key="speed", render_markdown=markdown, headline=summary_of)
