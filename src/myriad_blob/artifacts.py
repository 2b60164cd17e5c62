"""What the stages pass on: plain data, no behaviour beyond describing itself.

Every stage module returns one of these and takes the ones before it, so a stage imports this
module and never another stage for a type. Flow: load -> LoadedModel (SourceInfo) -> export ->
OnnxModel -> ONNX preparation -> PreparedOnnx (PrepStep) -> IR -> IRModel (IRLayer) -> compile ->
CompiledBlob (LayerSupport). TensorInfo describes a model input or output at every stage.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

# FP16's largest finite value: the Myriad X computes in FP16, so a value beyond it becomes inf there.
FP16_MAX = 65504.0


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple  # ints; a str for a dynamic dimension
    dtype: str

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


class ModelFormat:
    ONNX = "onnx"
    TORCHSCRIPT = "torchscript"
    TORCH_EXPORT = "torch.export"
    STATE_DICT = "state-dict"
    CHECKPOINT = "checkpoint"
    PICKLE = "full-model pickle"
    ULTRALYTICS = "ultralytics checkpoint"


@dataclasses.dataclass(frozen=True)
class SourceInfo:
    path: str
    size: int
    sha256: str
    format: str | None = None


@dataclasses.dataclass
class LoadedModel:
    source: SourceInfo
    module: Any = None  # torch.nn.Module for PyTorch formats; None for ONNX
    onnx_path: Path | None = None
    # A model family's model (families/base.FamilyModel): its head, names, preprocessing, checks.
    family_model: Any = None


@dataclasses.dataclass(frozen=True)
class OnnxModel:
    path: Path
    opset: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    exported: bool  # False when the user gave ONNX
    nodes: dict = dataclasses.field(default_factory=dict, repr=False)  # node name -> op type
    producers: dict = dataclasses.field(default_factory=dict, repr=False)  # tensor name -> node name
    opset_fallbacks: tuple = ()  # (opset, why the exporter failed at it) before the one used
    requested_opset: int | None = None  # the opset the exporter was asked for (it may write another)
    # An input that gives a Reduce op's axes or a Reshape's shape at run time (advice.COMPILE_TIME_INPUTS).
    compile_time_input: str | None = dataclasses.field(default=None, repr=False)
    # node name -> (the user's node, its op), for the nodes a rewrite rule made (onnx_graph.rewrite_origin)
    rewritten: dict = dataclasses.field(default_factory=dict, repr=False)

    def origin(self, layer_name: str) -> dict | None:
        """The user's ONNX node an IR layer came from, where Model Optimizer's naming lets us tell:
        the node's own name, a tensor it produced, or either with a suffix MO appended; for a node
        a rewrite made, the node it replaced."""
        candidate = layer_name
        while candidate:
            node = candidate if candidate in self.nodes else self.producers.get(candidate)
            if node in self.rewritten:
                node, op = self.rewritten[node]
                return {"node": node, "op": op}
            if node is not None:
                return {"node": node, "op": self.nodes[node]}
            candidate = candidate.rpartition("/")[0]
        return None


@dataclasses.dataclass(frozen=True)
class PrepStep:
    name: str
    kept: bool
    detail: str
    duration_s: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class PreparedOnnx:
    model: OnnxModel  # what the IR front end reads
    reference: OnnxModel  # shapes fixed and graph cut, nothing else: ONNX Runtime's reference
    steps: tuple[PrepStep, ...]


@dataclasses.dataclass(frozen=True)
class IRLayer:
    name: str
    type: str
    version: str = ""  # the op set ("opset8"), which the 2021.4 reader must know


@dataclasses.dataclass(frozen=True)
class IRModel:
    xml: Path
    bin: Path
    version: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    layers: tuple[IRLayer, ...]
    preprocessing: dict
    frontend: str = ""
    frontend_fallback: str | None = None  # why the preferred front end was not used
    rewrites: dict = dataclasses.field(default_factory=dict)  # legalization rule -> layers rewritten


@dataclasses.dataclass(frozen=True)
class LayerSupport:
    total: int
    by_type: dict  # type -> {"count": n, "unsupported": m}
    unsupported: tuple  # ({"name", "type"}, ...)
    queried: bool = True  # False: the query itself failed, so nothing is known per layer

    def to_dict(self) -> dict:
        return {
            "total": self.total,
            "supported": self.total - len(self.unsupported) if self.queried else None,
            "queried": self.queried,
            "by_type": self.by_type,
            "unsupported": list(self.unsupported),
        }


@dataclasses.dataclass(frozen=True)
class CompiledBlob:
    path: Path
    settings: dict
    # stage_graph.StageGraph: the plugin's own stages, from its dump (typed Any: artifacts sits below
    # the stages, and stage_graph is one). None: no dump, stage_graph_error says why.
    stage_graph: Any = None
    stage_graph_error: str | None = None


# IR precisions of integer tensors (an ArgMax class map, TopK indices). The Myriad compiler
# gives such an output only S32 ("output #0 has type FP16, but one of [S32] is expected").
INTEGER_PRECISIONS = {"I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL"}


def is_image_shape(shape) -> bool:
    """An image input, as a camera frame fills it: N, 1 or 3 channels, H and W of 8 pixels or more.
    Its blob input is U8 by default (the camera's frames), and the numeric check gives it the photo."""
    shape = tuple(shape)
    return (
        len(shape) == 4
        and shape[1] in (1, 3)
        and all(isinstance(d, int) and d >= 8 for d in shape[2:])  # a dynamic (str) H or W: not known to be
    )
