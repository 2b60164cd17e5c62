"""How many stages the Myriad compiler made, and the layer that made the count explode.

The blob's stage table says how many stages run (blob.py reads the count from its header). A layer
the plugin copies once per row (a token-wise Linear whose rows are not a multiple of 10, which the
ONNX rule "token-wise MatMul by a constant -> 1x1 Conv" rewrites; its stages are named
`LAYER@fc-to-conv@batch=k/M` in the plugin's stage graph) takes M stages: its compile time grows
about as their cube, and each runs alone on the chip. Such a layer is named in the user's terms
(its ONNX node, its PyTorch module) when its copies outnumber the rest of the model's stages.
"""

from __future__ import annotations

import re

from ..compile import trace
from ..findings import Finding
from ..markdown_text import code, text
from ..rules.advice import module_path
from .base import Check, CheckContext

# Only the fully connected layers the plugin made convolutions of: a batched input's layers are copied
# once per item too (`LAYER@batch=k/N`), which is how the plugin runs a batch, not a count exploding.
_ROW_COPY = re.compile(r"@fc-to-conv@batch=(\d+)/(\d+)")
# Executed IR layers: what a compile without copies makes about one stage of each (plus DMA copies).
_NOT_EXECUTED = {"Const", "Parameter", "Result"}
# A count is "exploded" when the copied stages are more than this share of all stages.
EXPLODED_SHARE = 0.5


def row_copies(stage_graph, origins: tuple) -> list[dict]:
    """The layers the plugin copied once per row: {layer, rows, stages, onnx_node, onnx_op, module},
    the most copied first."""
    found: dict[str, dict] = {}
    for stage in stage_graph.stages if stage_graph else ():
        match = _ROW_COPY.search(stage.name)
        if match is None or not stage.executed:
            continue
        layer = stage.layer or stage.name.split("@", 1)[0]
        entry = found.setdefault(layer, {"layer": layer, "rows": int(match[2]), "stages": 0})
        entry["stages"] += 1
    for entry in found.values():
        origin = trace(entry["layer"], origins)
        entry["onnx_node"] = origin and origin["node"]
        entry["onnx_op"] = origin and origin["op"]
        entry["module"] = module_path(entry["onnx_node"])
    return sorted(found.values(), key=lambda entry: -entry["stages"])


def _describe(entry: dict) -> str:
    parts = [f"`{entry['layer']}`"]
    if entry["onnx_node"]:
        parts.append(f"ONNX node `{entry['onnx_node']}` ({entry['onnx_op']})")
    if entry["module"]:
        parts.append(f"PyTorch module `{entry['module']}`")
    return ", ".join(parts) + f": {entry['rows']:,} rows, {entry['stages']:,} stages"


def check_stage_count(context: CheckContext) -> list[Finding]:
    stages = context.info.stage_count
    layers = sum(layer.type not in _NOT_EXECUTED for layer in context.ir.layers)
    origins = (context.prepared.model, context.prepared.reference)
    copies = row_copies(context.compiled.stage_graph, origins)
    context.report.check_sections["compile"] = {"stages": stages, "ir_layers": layers, "row_copies": copies}
    copied = sum(entry["stages"] for entry in copies)
    if not copies or copied <= EXPLODED_SHARE * stages:
        return []
    named = "; ".join(_describe(entry) for entry in copies[:3])
    more = f" and {len(copies) - 3} more" if len(copies) > 3 else ""
    return [
        Finding(
            "stage count",
            f"{stages:,} compiled stages from {layers:,} layers",
            f"the Myriad compiler made {stages:,} stages from {layers:,} IR layers: it copied {len(copies)} layer(s) "
            f"once per row ({named}{more}), which makes the compile slow (it grows about as the cube of the "
            f"stages) and the blob slow; a MatMul by a constant whose rows are not a multiple of 10 is rewritten as "
            "a 1x1 convolution when ONNX Runtime agrees (the report's preparation steps say why it was not): write "
            "the layer as a 1x1 nn.Conv2d over a [1, C, 1, rows] tensor, or pick an input size whose token count "
            "is a multiple of 10",
        )
    ]


def markdown(section: dict) -> list[str]:
    line = f"**Compile**: {text(section['stages'])} stages from {text(section['ir_layers'])} IR layers"
    copies = section["row_copies"]
    if copies:
        line += "; copied once per row: " + "; ".join(
            f"{code(entry['layer'])} ({text(entry['rows'])} rows, {text(entry['stages'])} stages"
            + (f", ONNX node {code(entry['onnx_node'])}" if entry["onnx_node"] else "")
            + ")"
            for entry in copies[:3]
        )
    return [line, ""]


CHECK = Check("stage count", check_stage_count, key="compile", render_markdown=markdown)
