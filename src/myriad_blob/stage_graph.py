"""The Myriad plugin's own stage graph: what the chip runs, stage by stage.

The 2021.4 plugin writes its final internal graph (a Graphviz file) when the compile is given the
private config key MYRIAD_DUMP_INTERNAL_GRAPH_FILE_NAME (toolchain-notes.md, "The plugin's own
stage graph"; OpenVINO 2021.4 inference-engine/src/vpu/graph_transformer/src/utils/dot_io.cpp).
The dump does not change the blob (tests/test_stage_graph.py compares the bytes). Each stage node's
label reads `[exec / pos] Stage NAME`, then `key = value` lines (`\\l`-separated, nested in `[ ]`):
`type`, `origLayer = [name, type, precision]`, `numSHAVEs`, `extraAttrs = [...]`. Each data node's
label reads `Data NAME`, then `desc = [type, dimsOrder, dims = [W : 16, H : 16, C : 3, N : 1]]` and
`dataLocation`. Edges `data -> stage` (StageInput, portInd) and `stage -> data` (StageOutput).

The stages' layer names are the plugin's own layers, after its front end: a layer it decomposes
keeps its IR name on the decomposition's last stage only (ReduceL2's `Power(0.5)`), the others get
new names (`Power_748`, `ReduceSum_749/pool`); fp16_stages.py attributes them to the IR layer.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

# The private key that makes the plugin write the dump; not a user key (compile_config.py refuses it).
DUMP_KEY = "MYRIAD_DUMP_INTERNAL_GRAPH_FILE_NAME"
# Without it the plugin also writes the graph after each of its ~40 passes beside the file.
DUMP_CONFIG = ("MYRIAD_DUMP_ALL_PASSES=NO",)
# Stage types that run on the DMA engine rather than on SHAVEs (the plugin's StageType::Copy and the
# copies it inserts to move data between CMX and DDR).
DMA_TYPES = frozenset({"Copy", "DmaCopy"})
NCE_TYPES = frozenset({"MyriadXHwOp"})
# The dump's dim names, in the order shapes are given here (outermost first, as IR shapes are).
_DIM_ORDER = "NCDHW"
# dataLocation values as the memory they sit in: BSS is the blob's scratch area in DDR.
_LOCATIONS = {"BSS": "DDR"}

_NODE = re.compile(r"^\s*((?:data|stage)_\w+)\s*\[\s*$(.*?)^\s*\];", re.S | re.M)
_LABEL = re.compile(r'label="((?:[^"\\]|\\.)*)"')
_EDGE = re.compile(r"^\s*((?:data|stage)_\w+)\s*->\s*((?:data|stage)_\w+)\s*\[(.*?)\];", re.S | re.M)
_PAIR = re.compile(r"^(.*?) =(?: (.*))?$", re.S)  # re.S: a model's layer name may hold a line break
_STAGE_HEAD = re.compile(r"^\[(-?\d+) / (\d+)\] Stage (.*)$", re.S)


@dataclasses.dataclass(frozen=True)
class StageData:
    """A data node: a tensor a stage reads or writes."""

    name: str
    shape: tuple[int, ...]  # outermost first (N, C, H, W), whatever the memory order
    precision: str  # "FP16", "S32", "U8", ...
    location: str  # "CMX", "DDR" (the dump's BSS), "Blob" (a constant), "Input", "Output", ...
    order: str = ""  # the dump's dimsOrder: the memory layout, e.g. "NCHW", "NHWC"
    data_location: str = ""  # the dump's own dataLocation word (BSS, CMX, Blob, Input, Output, None)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"shape": list(self.shape)}


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of the plugin's graph. index: execution order; -1 for a stage that does not run
    (a Reshape or Expand the plugin resolves by memory layout alone)."""

    index: int
    name: str
    type: str  # the plugin's stage type: "MyriadXHwOp", "Power", "ReduceMean", "Copy", ...
    unit: str  # "NCE" (MyriadXHwOp) | "DMA" (Copy) | "SHAVE" (everything else)
    shaves: int | None
    layer: str | None  # the plugin's layer the stage came from (origLayer): an IR layer, or one of its decomposition
    params: dict  # str -> str: extraAttrs as dumped, nested keys joined with "." (tiling.mode)
    inputs: tuple[StageData, ...]
    outputs: tuple[StageData, ...]
    layer_type: str | None = None  # the plugin layer's type (origLayer.type: Convolution, Power, Pooling)
    position: int = -1  # the stage's place in the graph's list (the dump's second number)

    @property
    def executed(self) -> bool:
        return self.index >= 0

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "name": self.name,
            "type": self.type,
            "unit": self.unit,
            "shaves": self.shaves,
            "layer": self.layer,
            "layer_type": self.layer_type,
            "params": dict(self.params),
            "inputs": [d.to_dict() for d in self.inputs],
            "outputs": [d.to_dict() for d in self.outputs],
        }


@dataclasses.dataclass(frozen=True)
class StageGraph:
    """The plugin's stages in execution order (stages that do not run, index -1, last)."""

    stages: tuple[Stage, ...]

    def counts(self) -> dict[str, int]:
        """{"NCE": n, "SHAVE": m, "DMA": k}: the stages that run, by the unit that runs them."""
        counts = {"NCE": 0, "SHAVE": 0, "DMA": 0}
        for stage in self.stages:
            if stage.executed:
                counts[stage.unit] += 1
        return counts

    def by_layer(self) -> dict[str, list[Stage]]:
        """{plugin layer name: its stages, in execution order}; stages with no layer are left out."""
        layers: dict[str, list[Stage]] = {}
        for stage in self.stages:
            if stage.layer is not None:
                layers.setdefault(stage.layer, []).append(stage)
        return layers

    def to_dict(self) -> dict:
        return {"counts": self.counts(), "stages": [stage.to_dict() for stage in self.stages]}


def unit_of(stage_type: str) -> str:
    """Which unit runs a stage type: NCE, DMA or SHAVE."""
    if stage_type in NCE_TYPES:
        return "NCE"
    return "DMA" if stage_type in DMA_TYPES else "SHAVE"


def parse_stage_graph(text: str) -> StageGraph:
    """The stages of a MYRIAD_DUMP_INTERNAL_GRAPH_FILE_NAME dump. ValueError for a text that is
    not such a dump (no `digraph ie_vpu_model_view`, a stage node with no type)."""
    if not text.lstrip().startswith("digraph ie_vpu_model_view"):
        raise ValueError("not a Myriad plugin graph dump (no `digraph ie_vpu_model_view` heading)")
    data: dict[str, StageData] = {}
    heads: dict[str, tuple[int, int, str, dict]] = {}
    for node_id, body in _NODE.findall(text):
        found = _LABEL.search(body)
        if not found:
            raise ValueError(f"graph dump node {node_id} has no label")
        first, fields = _label_fields(found[1])
        if node_id.startswith("data_"):
            data[node_id] = _data(first, fields)
        else:
            head = _STAGE_HEAD.match(first)
            if not head or "type" not in fields:
                raise ValueError(f"graph dump stage node {node_id} does not read `[i / j] Stage NAME`, `type = ...`")
            heads[node_id] = (int(head[1]), int(head[2]), head[3], fields)
    if not heads:
        raise ValueError("the graph dump holds no stages")
    inputs: dict[str, dict[int, StageData]] = {node: {} for node in heads}
    outputs: dict[str, dict[int, StageData]] = {node: {} for node in heads}
    for source, target, attributes in _EDGE.findall(text):
        label = _LABEL.search(attributes)
        kind, fields = _label_fields(label[1]) if label else ("", {})
        port = int(fields.get("portInd", len(inputs.get(target, ()))))
        if kind == "StageInput" and target in inputs and source in data:
            inputs[target][port] = data[source]
        elif kind == "StageOutput" and source in outputs and target in data:
            outputs[source][port] = data[target]
    stages = []
    for node_id, (index, position, name, fields) in heads.items():
        origin = fields.get("origLayer") if isinstance(fields.get("origLayer"), dict) else {}
        shaves = fields.get("numSHAVEs")
        stages.append(
            Stage(
                index=index,
                name=name,
                type=str(fields["type"]),
                unit=unit_of(str(fields["type"])),
                shaves=int(shaves) if isinstance(shaves, str) and shaves.isdigit() else None,
                layer=origin.get("name"),
                params=_flatten(fields.get("extraAttrs", {})),
                inputs=tuple(inputs[node_id][port] for port in sorted(inputs[node_id])),
                outputs=tuple(outputs[node_id][port] for port in sorted(outputs[node_id])),
                layer_type=origin.get("type"),
                position=position,
            )
        )
    stages.sort(key=lambda s: (not s.executed, s.index if s.executed else s.position))
    return StageGraph(tuple(stages))


def read_stage_graph(path: Path) -> tuple[StageGraph | None, str | None]:
    """(the graph, None) from a dump file, or (None, why) when there is none or it does not parse:
    the blob stands without it."""
    try:
        return parse_stage_graph(path.read_text(errors="replace")), None
    except OSError as error:
        return None, f"the plugin wrote no stage graph ({error.strerror})"
    except ValueError as error:
        return None, f"the plugin's stage graph does not parse: {error}"


def _data(first: str, fields: dict) -> StageData:
    desc = fields.get("desc") if isinstance(fields.get("desc"), dict) else {}
    dims = desc.get("dims", "")
    named = [part.split(":") for part in dims.strip("[]").split(",") if ":" in part] if isinstance(dims, str) else []
    by_name = {name.strip(): int(size) for name, size in named}
    shape = tuple(by_name[d] for d in sorted(by_name, key=lambda d: _DIM_ORDER.index(d) if d in _DIM_ORDER else 9))
    where = str(fields.get("dataLocation", ""))
    return StageData(
        name=first.removeprefix("Data "),
        shape=shape,
        precision=str(desc.get("type", "")),
        location=_LOCATIONS.get(where, where),
        order=str(desc.get("dimsOrder", "")),
        data_location=where,
    )


def _label_fields(label: str) -> tuple[str, dict]:
    """A label's first line and its `key = value` lines as a dict (`key = [` opens a nested one)."""
    lines = [line.replace('\\"', '"') for line in label.split("\\l")]
    stack: list[dict] = [{}]
    for line in lines[1:]:
        text = line.strip()
        if not text:
            continue
        pair = _PAIR.match(text)
        if pair is None:  # "]", or a list's last item "1.09375]" (a constant's content): the list ends
            if text.endswith("]") and len(stack) > 1:
                stack.pop()
            continue
        key, value = pair[1], pair[2] or ""
        if value == "[":
            nested: dict = {}
            stack[-1][key] = nested
            stack.append(nested)
        else:
            stack[-1][key] = value
    return lines[0], stack[0]


def _flatten(fields, prefix: str = "") -> dict:
    if not isinstance(fields, dict):
        return {}
    flat = {}
    for key, value in fields.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
