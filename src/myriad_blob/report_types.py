"""The JSON report's shape, as types: each section is the dict its stage writes (pipeline.Conversion),
typed here so the schema in the repository (docs/report.schema.json) is generated from them
(scripts/report_schema.py, with pydantic) and every report the tests write is checked against it.

TypedDicts rather than dataclasses: the stages keep writing plain JSON-ready dicts, and the types
cost nothing at run time; pydantic turns them into JSON Schema. A field that may be null is
`X | None`; every field is always present.
"""

from __future__ import annotations

from typing import Any, Literal

from typing_extensions import TypedDict

from .options import FAMILY_KEYS, FRONTEND_TITLES

SCHEMA_ID = "urn:myriad-blob:report:2"  # the report's "$schema", and the schema file's "$id"


class Tool(TypedDict):
    name: str
    version: str


class StageRecord(TypedDict):
    name: Literal["load", "export", "ir", "compile", "verify"]
    status: Literal["succeeded", "failed", "skipped", "not run"]
    duration_s: float | None  # seconds
    tools: dict[str, Any]  # tool name -> version (and the front end, the exporter, the opset)
    error: str | None  # the failure, or why it was skipped
    reused: bool  # in a batch: another variant's identical result
    commands: list[list[str]]  # the exact argv of every toolchain process the stage ran


class Error(TypedDict):
    stage: str  # errors.Stage, or "internal", or "interrupted"/"terminated" (cancel.py)
    exit_code: int
    message: str  # one line: what went wrong and what to change


class Source(TypedDict):
    path: str
    format: str | None  # onnx, torchscript, torch.export, state-dict, checkpoint, full-model pickle, ...
    size: int  # bytes
    sha256: str


class Tensor(TypedDict):
    name: str
    shape: list[int | str]  # a str for a dynamic dimension
    dtype: str


class CutPoint(TypedDict):
    name: str  # an ONNX tensor --output-names can cut at
    op: str | None  # the op of the node computing it


class OnnxSection(TypedDict):
    opset: int
    exported: bool  # False when the user gave ONNX
    opset_fallbacks: list[dict[str, Any]]
    inputs: list[Tensor]
    outputs: list[Tensor]
    tensors: list[CutPoint]


class PrepStep(TypedDict):
    name: str  # a row of rules/onnx_rules.ONNX_RULES, or "graph edits"
    kept: bool  # False: dropped (ONNX Runtime disagreed, or it could not run)
    detail: str
    duration_s: float


class Rewrite(TypedDict):
    rule: str  # a row of LEGALIZATION (toolchain/scripts/ov2022_ir.py)
    layers: int


class IRSection(TypedDict):
    version: int
    frontend: Literal[tuple(FRONTEND_TITLES)]  # --frontend's value (options.FRONTEND_TITLES)
    frontend_fallback: str | None
    preparation: list[PrepStep]
    rewrites: list[Rewrite]
    inputs: list[Tensor]
    outputs: list[Tensor]


class OutputComparison(TypedDict):
    name: str
    shape: list[int]
    max_abs_error: float
    max_relative_error: float  # relative to the output's largest magnitude
    cosine: float
    top1_reference: int | None
    top1_ir: int | None
    top1_agrees: bool | None
    nonfinite: int
    passed: bool
    note: str
    agreement: float | None  # integer outputs: the share of values equal (TopK indices: picked too)
    yardstick: str  # "the output", or the logits before its final Sigmoid/Softmax


class LayerDivergence(TypedDict):
    layer: str
    type: str
    onnx_tensor: str | None
    onnx_node: str | None
    onnx_op: str | None
    error_2021: float | None
    error_2022: float | None
    after_input: bool


class Diagnosis(TypedDict):
    cause: Literal["runtime", "conversion", "fp16", "preprocessing", "unknown", "error"]
    message: str
    layers_compared: int
    first_divergence: LayerDivergence | None


class Fp16Section(TypedDict):
    checked: bool
    error: str | None
    fp16_max: float
    near_overflow_headroom: float
    fp16_min_normal: float
    underflow_fraction: float
    underflow_peak: float
    overflow: list[str]  # IR layer names
    near_overflow: list[str]
    underflow: list[str]
    emulation: dict[str, Any] | None
    layers: list[dict[str, Any]]


class StageCheckSection(TypedDict):
    """FP16 where the chip computes: the Myriad plugin's own stages (fp16_stages.py)."""

    checked: bool
    error: str | None
    counts: dict[str, int]  # {"NCE": n, "SHAVE": m, "DMA": k}: the stages that run, by unit
    frames: list[str]  # "photo" and the hard frames the stages were checked on
    layers: list[dict[str, Any]]  # IR layers decomposed or moved to SHAVEs, with their stages
    stages: list[dict[str, Any]]  # every decomposed layer's stage on every frame: largest value, verdict
    hard_frames: dict[str, Any]  # frame -> the IR-layer range check's worst layer and overflows on it
    not_emulated: list[str]  # decomposed layers whose ONNX node was not found (not checked)


class Tolerances(TypedDict):
    max_relative_error: float
    min_cosine: float


class NumericSection(TypedDict):
    passed: bool  # the outputs match and no layer overflows FP16
    outputs_passed: bool
    input: str  # the check photo, "seeded", or the --sample path
    seed: int
    tolerances: Tolerances
    outputs: list[OutputComparison]
    fp16: Fp16Section | None
    diagnosis: Diagnosis | None
    truncated_inputs: list[str]  # U8 inputs fed values that are not integers in 0..255 (the IR got them truncated)


class BlobTensor(TypedDict):
    name: str
    data_type: str  # U8, FP16, FP32, I32, I8
    order: str  # NCHW, NHWC, CHW, ...
    shape: list[int]
    raw_dims: list[int]


class BlobHeader(TypedDict):
    size: int  # bytes, as the header says
    version: str  # "major.minor" of the blob format
    stage_count: int
    shaves: int
    cmx_slices: int
    inputs: list[BlobTensor]
    outputs: list[BlobTensor]


class BlobSection(TypedDict):
    path: str
    size: int  # bytes
    sha256: str
    header: BlobHeader
    camera_frame_type: str  # the frame type to ask the camera for (BGR888p, RGB888p; ...888i for NHWC)
    camera_frame_types: dict[str, str]  # per 3-channel image input, by its layout (--input-layout name=NHWC)


class SpeedLayer(TypedDict):
    name: str  # the plugin's layer (with a stage graph), else "stage N (type)"
    unit: Literal["NCE", "SHAVE", "DMA"]
    types: str  # its stage types, "MyriadXHwOp + Swish"
    ms: float  # estimated milliseconds per frame
    share: float  # of the time per frame, 0-1
    why: str | None  # what makes it cost this (an activation on SHAVEs, padded channels, a DDR round trip)
    change: str | None  # what would make it cheaper


class SpeedStageType(TypedDict):
    type: str  # the plugin's stage type (MyriadXHwOp, Swish, Copy, ...)
    unit: Literal["NCE", "SHAVE", "DMA"]
    stages: int
    ms: float
    share: float


class SpeedSection(TypedDict):
    """The estimate on an RVC2 camera (speed.py), fitted on Luxonis' published figures."""

    shaves: int  # the blob's SHAVEs
    fps: float  # frames per second, 2 inference threads as Luxonis measured
    fps_range: list[float]  # [low, high]: the calibration's leave-one-architecture-out spread
    latency_ms: float  # the USB return included
    latency_range_ms: list[float]
    fit: Literal["calibrated", "partly outside the calibration", "outside the calibration"]
    uncalibrated_share: float  # of the time, in stage kinds the calibration barely saw
    by_shaves: dict[str, float]  # "1".."16" -> estimated FPS
    top_layers: list[SpeedLayer]  # the five taking the most time
    by_stage_type: list[SpeedStageType]
    time_ms: dict[str, float]  # NCE, SHAVE, DMA, "fixed + USB"
    calibration: str  # what the estimate was fitted on
    summary: str  # "~28 FPS at 8 SHAVEs"
    target_fps: float | None  # --target-fps
    advice: str | None  # when the estimate falls short of --target-fps: what would reach it


class RowCopy(TypedDict):
    """A layer the Myriad plugin copied into one stage per row (checks/stage_count.py)."""

    layer: str  # the plugin's layer (an IR layer's name)
    rows: int
    stages: int  # its stages that run
    onnx_node: str | None
    onnx_op: str | None
    module: str | None  # the PyTorch module path the exporter kept in the node's name


class CompileSection(TypedDict):
    """What the Myriad compiler made of the IR (checks/stage_count.py)."""

    stages: int  # the blob's stage count
    ir_layers: int  # the IR's executed layers
    row_copies: list[RowCopy]  # the most copied first; empty when none (or no stage graph)


class FindingRecord(TypedDict):
    """What a verify check found (findings.Finding): the verdict's reasons are these, in order."""

    check: str  # the check's name: "numeric", "fp16 range", or a model family's check
    severity: Literal["warning"]
    reason: str  # the verdict's reason
    message: str  # the warning: what to change


class Verdict(TypedDict):
    result: Literal["passed", "warnings", "failed"]
    reasons: list[str]


Report = TypedDict(
    "Report",
    {
        "$schema": str,
        "tool": Tool,
        "options": dict[str, Any],  # every ConversionOptions field (options.py), as given
        "stages": list[StageRecord],
        "status": Literal["running", "succeeded", "failed"],
        "error": Error | None,
        "warnings": list[str],
        "source": Source | None,
        "onnx": OnnxSection | None,
        "ir": IRSection | None,
        "preprocessing": dict[str, Any] | None,  # baked into the blob: reverse_input_channels, mean, scale
        "compile_settings": dict[str, Any] | None,
        "layers": dict[str, Any] | None,  # the plugin's per-layer query (information only)
        "numeric": NumericSection | None,
        "blob": BlobSection | None,
        "nn_archive": dict[str, Any] | None,
        "depthai_json": dict[str, Any] | None,  # depthai v2's JSON beside the blob (a family's): path, config
        # A model family's section, by its key (families/*/family.toml): what the family reports.
        **dict.fromkeys(FAMILY_KEYS, dict[str, Any] | None),
        "superblob": dict[str, Any] | None,
        "cache": dict[str, Any] | None,
        "speed": SpeedSection | None,
        "compile": CompileSection
        | None,  # the compiler's stage count (checks/stage_count.py); None: no blob  # the speed estimate (speed.py); None when the stage table does not parse
        "toolchain": dict[str, Any],
        "total_duration_s": float | None,
        # FP16 on the Myriad plugin's own stages (checks/fp16_stages.py); None: no stage graph
        "plugin_stages": StageCheckSection | None,
        "findings": list[FindingRecord] | None,  # what the verify checks found; None until verify ran
        "verdict": Verdict,
    },
)
