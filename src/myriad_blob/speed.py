"""How fast a blob runs on the Myriad X, estimated offline from its own stage table.

A linear cost model over the stages the blob runs (blob_stages.parse_stage_table): each stage's
time is a sum of work terms, each a count the stage table gives times a coefficient fitted on
Luxonis' published RVC2 figures (tools/calibrate_speed.py; data/speed_calibration.json holds the
coefficients and their provenance):

- NCE (MyriadXHwOp): multiply-accumulates, counted as output pixels x the weights the NCE is given
  (its weights are stored with the channels it pads to, so a channel count the NCE tiles badly costs
  what it costs on the chip), and the bytes it streams in and out (pooling: those alone);
- SHAVE stages: elements over the SHAVEs the stage runs on, by op kind (activation, element-wise,
  data movement, multiply-accumulate work on SHAVEs, other);
- DMA (Copy) stages: bytes moved; every stage: bytes read from or written to DDR;
- a fixed cost per stage (dispatch), per inference, and the USB transfer of inputs and outputs.

Each coefficient is at least its unit's peak rate; the fit sets some to that floor or to zero (the
DDR and USB terms with 2 inference threads overlapping them): speed_calibration.json says which.
Units: work in MACs, elements or bytes; coefficients in seconds per unit; FPS frames per second.

Stages injected into an NCE stage run while the NCE works: they are not counted. The estimate of
the same blob is the same whoever compiled it: it reads nothing but the blob (the plugin's stage
graph, when there is one, only names the layers and why they cost what they cost).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
from functools import cache
from importlib import resources

from .blob import BlobFormatError, parse_blob
from .blob_stages import DDR_LOCATIONS, BlobStage, parse_stage_table
from .errors import EXIT_CODES, Stage
from .markdown_text import code, markdown_table, message, text

FEATURES = (
    "inference",  # 1 per inference
    "stages",  # stages dispatched
    "nce_macs",  # NCE multiply-accumulates (padded channels included)
    "nce_data",  # bytes NCE stages read and write (CMX or DDR): what a data-bound NCE op waits on
    "ddr_bytes",  # bytes every stage moves to or from DDR
    "dma_bytes",  # bytes Copy stages move
    "shave_activation",  # SHAVE elements / SHAVEs, by op kind
    "shave_eltwise",
    "shave_move",
    "shave_macs",
    "shave_other",
    "usb_bytes",  # the inputs sent and outputs returned over USB
)
# Activations the NCE cannot fuse (it fuses ReLU, leaky ReLU and clamp): they run on SHAVEs.
ACTIVATIONS = frozenset(
    {
        "Swish",
        "Sigmoid",
        "HSwish",
        "Mish",
        "Tanh",
        "Elu",
        "Gelu",
        "Exp",
        "Log",
        "SoftPlus",
        "Erf",
        "Power",
        "Pow",
        "PRelu",
        "Floor",
        "Ceiling",
    }
)
ELEMENTWISE = frozenset(
    {
        "Sum",
        "Prod",
        "Max",
        "Min",
        "Div",
        "Scale",
        "ScaleShift",
        "Bias",
        "Relu",
        "LeakyRelu",
        "BiasRelu",
        "BiasLeakyRelu",
        "Clamp",
        "Convert",
        "Squared_diff",
        "Select",
        "Equal",
        "Not_equal",
        "Greater",
        "Greater_equal",
        "Less",
        "Less_equal",
        "Logical_NOT",
        "Logical_AND",
        "Logical_OR",
        "Logical_XOR",
        "Floor_mod",
        "SCRelu",
    }
)
MOVES = frozenset(
    {
        "Permute",
        "Concat",
        "Resample",
        "Interp",
        "Upsampling",
        "Pad",
        "StridedSlice",
        "Gather",
        "GatherND",
        "Tile",
        "Broadcast",
        "ReorgYolo",
        "HwFcRelayout",
        "Copy",
        "ReverseSequence",
        "ScatterUpdate",
        "ScatterElementsUpdate",
        "OneHot",
    }
)
SHAVE_MACS = frozenset(
    {"Conv", "DepthConv", "FC", "Deconvolution", "DepthDeconv", "GEMM", "Im2ColConvolution", "RefConvolution", "ConvND"}
)
SHAVE_COUNTS = tuple(range(1, 17))


def _shave_kind(stage_type: str) -> str:
    for kind, types in (
        ("shave_activation", ACTIVATIONS),
        ("shave_eltwise", ELEMENTWISE),
        ("shave_move", MOVES),
        ("shave_macs", SHAVE_MACS),
    ):
        if stage_type in types:
            return kind
    return "shave_other"


def _weights(stage: BlobStage):
    constants = [b for b in stage.buffers if b.location == "Blob"]
    return max(constants, key=lambda b: b.elements) if constants else None


def _pixels(buffer) -> int:
    """Output positions of a buffer stored W, H, C, N (innermost first): W x H x N."""
    dims = buffer.dims
    return dims[0] * (dims[1] if len(dims) > 1 else 1) * math.prod(dims[3:])


def stage_work(stage: BlobStage, shaves: int, blob_shaves: int) -> dict[str, float]:
    """The stage's work terms (FEATURES' names -> amounts) were the blob run with `shaves` SHAVEs.
    A SHAVE stage given all the blob's SHAVEs is taken to spread over `shaves`; one given fewer
    (the plugin limits some, e.g. to 2) keeps its own count, at most `shaves`."""
    work = {"stages": 1.0}
    data = [b for b in stage.buffers if b.location != "Blob"]
    work["ddr_bytes"] = float(sum(b.bytes for b in data if b.location in DDR_LOCATIONS))
    largest = max((b.elements for b in data), default=0)
    if stage.unit == "NCE":
        weights = _weights(stage)
        if weights is not None and data:
            work["nce_macs"] = float(_pixels(data[-1]) * weights.elements)
        work["nce_data"] = float(sum(b.bytes for b in data))
    elif stage.unit == "DMA":
        work["dma_bytes"] = float(data[-1].bytes if data else 0)
    else:
        own = max(stage.shaves, 1)
        used = shaves if own >= blob_shaves else min(own, shaves)
        kind = _shave_kind(stage.type)
        weights = _weights(stage)
        if kind == "shave_macs" and weights is not None and data:
            amount = _pixels(data[-1]) * weights.elements
        else:
            amount = largest
        work[kind] = amount / used
    return work


def blob_work(stages: tuple[BlobStage, ...], io_bytes: int, shaves: int, blob_shaves: int) -> list[dict]:
    """Per stage work terms, then one entry for the inference itself (fixed cost and USB)."""
    rows = [stage_work(stage, shaves, blob_shaves) for stage in stages]
    return rows + [{"inference": 1.0, "usb_bytes": float(io_bytes)}]


def totals(rows: list[dict]) -> list[float]:
    return [sum(row.get(name, 0.0) for row in rows) for name in FEATURES]


# --- the fit (used by tools/calibrate_speed.py) ---------------------------------------------------


def nnls(a: list[list[float]], b: list[float], iterations: int = 500) -> list[float]:
    """Non-negative least squares (Lawson and Hanson's active set), min |a x - b| with x >= 0."""
    import numpy as np

    a, b = np.asarray(a, float), np.asarray(b, float)
    n = a.shape[1]
    x, passive = np.zeros(n), np.zeros(n, bool)
    w = a.T @ (b - a @ x)
    for _ in range(iterations):
        if passive.all() or w[~passive].max(initial=0) <= 1e-12:
            break
        j = np.argmax(np.where(passive, -np.inf, w))
        passive[j] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > 0).all():
                x = z
                break
            ratios = np.where(passive & (z <= 0), x / np.maximum(x - z, 1e-300), np.inf)
            alpha = ratios.min()
            x = x + alpha * (z - x)
            passive &= x > 1e-12
        w = a.T @ (b - a @ x)
    return [float(v) for v in x]


def fit(points: list[tuple[list[float], float]], scales: list[float], floors: list[float] | None = None) -> list[float]:
    """Coefficients (seconds per unit of each feature) minimising the squared relative error of the
    time per frame over points [(feature totals, seconds per frame)], each at least its floor (the
    unit's peak rate: no fit makes a SHAVE faster than the SHAVE). scales: each feature's typical
    size (the fit runs on columns of similar magnitude)."""
    floors = floors or [0.0] * len(scales)
    a = [[value / scale / seconds for value, scale in zip(features, scales)] for features, seconds in points]
    # What the floors alone cost, taken off each point's time: the fit adds to the floors.
    b = [1.0 - sum(v * f for v, f in zip(features, floors)) / seconds for features, seconds in points]
    return [f + c / scale for c, scale, f in zip(nnls(a, b), scales, floors)]


# --- the estimate ---------------------------------------------------------------------------------


@cache
def calibration() -> dict:
    """data/speed_calibration.json: {"coefficients": {feature: seconds per unit}, "error": {...},
    "latency": {...}, "kinds": [...], "provenance": {...}}."""
    return json.loads(resources.files("myriad_blob").joinpath("data/speed_calibration.json").read_text())


@dataclasses.dataclass(frozen=True)
class StageTime:
    """One layer's (or stage's) share of the estimated time per frame, and why, where known."""

    name: str  # the plugin's layer name, or "stage N (type)" without a stage graph
    unit: str  # NCE | SHAVE | DMA
    types: str  # the stage types, e.g. "MyriadXHwOp + Swish"
    ms: float
    share: float  # of the time per frame, 0-1
    why: str | None = None
    change: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"ms": round(self.ms, 3), "share": round(self.share, 3)}


@dataclasses.dataclass(frozen=True)
class SpeedEstimate:
    """Estimated throughput (frames/s) and latency (ms, the USB return included) of a blob on an
    RVC2 device (OAK, Myriad X at 700 MHz), with 2 inference threads as Luxonis measured, at the
    blob's SHAVEs and at 1-16 SHAVEs; a range from the calibration's leave-one-architecture-out
    errors, wider where the blob's time is in stage kinds the calibration did not see."""

    shaves: int
    fps: float
    fps_low: float
    fps_high: float
    latency_ms: float
    latency_low_ms: float
    latency_high_ms: float
    fit: str  # "calibrated" | "partly outside the calibration" | "outside the calibration"
    uncalibrated_share: float  # of the time in stage kinds the calibration had (almost) none of
    by_shaves: dict[int, float]  # SHAVEs -> estimated FPS (the same blob recompiled, other things equal)
    top: tuple[StageTime, ...]
    by_type: tuple[dict, ...]  # {"type", "unit", "stages", "ms", "share"} per stage type, most time first
    units_ms: dict[str, float]  # NCE / SHAVE / DMA / DDR / USB / fixed: where the time goes
    calibration: str  # one line: what the estimate was fitted on

    def summary(self) -> str:
        return f"~{_round_fps(self.fps)} FPS at {self.shaves} SHAVEs"

    def to_dict(self) -> dict:
        return {
            "shaves": self.shaves,
            "fps": round(self.fps, 2),
            "fps_range": [round(self.fps_low, 2), round(self.fps_high, 2)],
            "latency_ms": round(self.latency_ms, 2),
            "latency_range_ms": [round(self.latency_low_ms, 2), round(self.latency_high_ms, 2)],
            "fit": self.fit,
            "uncalibrated_share": round(self.uncalibrated_share, 3),
            "by_shaves": {str(n): round(fps, 2) for n, fps in self.by_shaves.items()},
            "top_layers": [t.to_dict() for t in self.top],
            "by_stage_type": list(self.by_type),
            "time_ms": {k: round(v, 3) for k, v in self.units_ms.items()},
            "calibration": self.calibration,
            "summary": self.summary(),
        }


def _round_fps(fps: float) -> str:
    return f"{fps:.1f}" if fps < 10 else f"{fps:.0f}"


def _seconds(rows: list[dict], coefficients: dict) -> list[float]:
    return [sum(row.get(name, 0.0) * coefficients.get(name, 0.0) for name in FEATURES) for row in rows]


def estimate_blob(data: bytes, stage_graph=None, cal: dict | None = None) -> SpeedEstimate:
    """The estimate for a blob's bytes. stage_graph: the plugin's StageGraph of this compile
    (stage_graph.py), for layer names and reasons; None names stages by index and type.
    BlobFormatError for bytes that are not a 2021 Myriad blob."""
    cal = cal or calibration()
    info = parse_blob(data)
    stages = parse_stage_table(data)
    io_bytes = sum(tensor_bytes(t) for t in info.inputs + info.outputs)
    return estimate_stages(stages, io_bytes, info.shaves, stage_graph, cal)


def tensor_bytes(tensor) -> int:
    """Bytes of a blob I/O tensor (blob.BlobTensor): what crosses USB for it each frame."""
    sizes = {"FP16": 2, "U8": 1, "I32": 4, "FP32": 4, "I8": 1}
    return math.prod(tensor.shape) * sizes.get(tensor.data_type, 2)


EXTRAPOLATION = 1.5  # beyond this factor of the calibration's fastest or slowest model: an extrapolation
_ROW_FPS = re.compile(r"([\d.]+) FPS$")


def calibrated_fps_range(cal: dict) -> tuple[float, float]:
    """(slowest, fastest) published FPS the coefficients were fitted on (the provenance's rows)."""
    figures = [float(m[1]) for row in cal["provenance"]["rows"] if (m := _ROW_FPS.search(row))]
    return (min(figures), max(figures)) if figures else (0.0, math.inf)


def estimate_stages(stages, io_bytes: int, shaves: int, stage_graph=None, cal: dict | None = None) -> SpeedEstimate:
    """The estimate from a parsed stage table (see estimate_blob)."""
    cal = cal or calibration()
    coefficients = cal["coefficients"]
    rows = blob_work(stages, io_bytes, shaves, shaves)
    seconds = _seconds(rows, coefficients)
    total = sum(seconds)
    fps = 1.0 / total
    # Stage kinds the calibration barely saw: their coefficient is a guess, the range widens.
    seen = set(cal.get("kinds", []))
    unseen = sum(s for stage, s in zip(stages, seconds) if _kind(stage) not in seen)
    uncalibrated = unseen / total
    error = cal["error"]
    spread = error["p90_relative"] * (1 + 2 * uncalibrated)
    fit = (
        "calibrated"
        if uncalibrated < 0.1
        else "partly outside the calibration"
        if uncalibrated < 0.4
        else "outside the calibration"
    )
    # A model much faster or slower than every calibration point is an extrapolation, whatever its
    # stage kinds: said, and the range widened by half.
    slowest, fastest = calibrated_fps_range(cal)
    if not slowest / EXTRAPOLATION <= fps <= fastest * EXTRAPOLATION:
        fit = "partly outside the calibration" if fit == "calibrated" else "outside the calibration"
        spread *= 1.5
    latency = cal["latency"]
    latency_ms = latency["per_frame"] * 1000 * total + latency["fixed_ms"]
    by_shaves = {n: 1.0 / sum(_seconds(blob_work(stages, io_bytes, n, shaves), coefficients)) for n in SHAVE_COUNTS}
    units = {"NCE": 0.0, "SHAVE": 0.0, "DMA": 0.0, "fixed + USB": seconds[-1]}
    for stage, s in zip(stages, seconds):
        units[stage.unit] += s
    return SpeedEstimate(
        shaves=shaves,
        fps=fps,
        fps_low=fps / (1 + spread),
        fps_high=fps * (1 + spread),
        latency_ms=latency_ms,
        latency_low_ms=latency_ms / (1 + spread),
        latency_high_ms=latency_ms * (1 + spread),
        fit=fit,
        uncalibrated_share=uncalibrated,
        by_shaves=by_shaves,
        top=_top(stages, seconds[:-1], total, stage_graph),
        by_type=_by_type(stages, seconds[:-1], total),
        units_ms={k: v * 1000 for k, v in units.items()},
        calibration=cal["provenance"]["summary"],
    )


def _kind(stage: BlobStage) -> str:
    if stage.unit == "NCE":
        return "nce_macs"
    if stage.unit == "DMA":
        return "dma_bytes"
    return _shave_kind(stage.type)


# --- where the time goes, and why -----------------------------------------------------------------


def _top(stages, seconds, total, graph) -> tuple[StageTime, ...]:
    by_index = {s.index: s for s in graph.stages} if graph is not None else {}
    groups: dict[str, list] = {}
    for stage, s in zip(stages, seconds):
        node = by_index.get(stage.index)
        name = node.layer if node is not None and node.layer else f"stage {stage.index} ({stage.type})"
        groups.setdefault(name, []).append((stage, s, node))
    ranked = sorted(groups.items(), key=lambda item: -sum(s for _, s, _ in item[1]))[:5]
    top = []
    for name, members in ranked:
        ms = sum(s for _, s, _ in members) * 1000
        units = {stage.unit for stage, _, _ in members}
        unit = max(units, key=lambda u: sum(s for st, s, _ in members if st.unit == u))
        types = " + ".join(dict.fromkeys(stage.type for stage, _, _ in members))
        why, change = _why(members, stages)
        top.append(StageTime(name, unit, types, ms, ms / 1000 / total, why, change))
    return tuple(top)


def _by_type(stages, seconds, total) -> tuple[dict, ...]:
    kinds: dict[tuple[str, str], list] = {}
    for stage, s in zip(stages, seconds):
        kinds.setdefault((stage.type, stage.unit), []).append(s)
    rows = [
        {"type": t, "unit": unit, "stages": len(times), "ms": round(sum(times) * 1000, 3),
         "share": round(sum(times) / total, 3)}
        for (t, unit), times in kinds.items()
    ]  # fmt: skip
    return tuple(sorted(rows, key=lambda row: -row["ms"])[:6])


def _why(members, stages) -> tuple[str | None, str | None]:
    members = sorted(members, key=lambda member: -member[1])  # the costliest stage speaks for its layer
    for stage, _, _ in members:
        if stage.unit == "SHAVE" and stage.type in ACTIVATIONS:
            before = stages[stage.index - 1] if 0 < stage.index <= len(stages) else None
            after_nce = before is not None and before.unit in ("NCE", "DMA")
            return (
                f"{stage.type} runs on SHAVEs"
                + (" after an NCE convolution: the NCE fuses only ReLU, leaky ReLU and clamp" if after_nce else ""),
                f"an activation the NCE fuses (ReLU, LeakyReLU, ReLU6) instead of {stage.type} takes it off the SHAVEs",
            )
        if stage.unit == "SHAVE" and stage.type in SHAVE_MACS:
            return (
                f"a {stage.type} runs on SHAVEs, not on the NCE",
                "a convolution the NCE takes (groups of 1 or depthwise, kernel up to 15, stride up to 8) runs "
                "several times faster",
            )
    for stage, _, node in members:
        if stage.unit != "NCE":
            continue
        params = getattr(node, "params", {}) or {}
        padded = _padded_channels(stage, node, params)
        if padded:
            return padded
        data = [b for b in stage.buffers if b.location != "Blob"]
        if data and data[-1].location in DDR_LOCATIONS and data[0].location in DDR_LOCATIONS:
            return (
                "its input and output do not fit CMX: a DDR round trip",
                "fewer channels or a smaller input keeps it in CMX (or raise --nslices)",
            )
    for stage, _, node in members:
        if stage.unit == "NCE":
            work = _nce_work(stage) if _weights(stage) is not None else "pooling on the NCE"
            return (work + _nce_params(getattr(node, "params", {}) or {}), None)
        if stage.unit == "SHAVE":
            return (f"{stage.type} runs on SHAVEs", None)
        if stage.unit == "DMA":
            return ("a copy between CMX and DDR (the DMA engine)", None)
    return (None, None)


def _nce_params(params: dict) -> str:
    """The stage graph's word on an NCE stage: its tiling mode, and the activation fused into it."""
    fused = [name for key, name in (("withReLU", "ReLU"), ("withClamp", "clamp")) if params.get(key) == "1"]
    mode = params.get("tiling.mode")
    return (f", {mode}" if mode else "") + (f", {' and '.join(fused)} fused" if fused else "")


def _nce_work(stage) -> str:
    """What an NCE stage computes, from its weights as the NCE takes them: (8 output channels,
    kernel positions, input channels, output channel blocks of 8), innermost first."""
    weights, data = _weights(stage), [b for b in stage.buffers if b.location != "Blob"]
    dims = weights.dims
    if len(dims) == 4 and dims[0] == 8 and data:
        kernel = math.isqrt(dims[1])
        size = kernel if kernel * kernel == dims[1] else dims[1]
        out = data[-1].dims
        where = f" at {out[0]}x{out[1]}" if len(out) >= 2 else ""
        return f"{size}x{size} convolution on the NCE, {dims[2]} -> {dims[0] * dims[3]} channels (as padded){where}"
    return "a convolution on the NCE"


def _padded_channels(stage, node, params) -> tuple[str, str] | None:
    real = None
    if node is not None and node.inputs and len(node.inputs[0].shape) >= 2:
        real = node.inputs[0].shape[1]
    extended = params.get("tiling.extendedInputDimC")
    mode = params.get("tiling.mode")
    if real and extended and extended.isdigit() and int(extended) >= 1.25 * real:
        return (
            f"{real} input channels are padded to {extended} for the NCE ({mode or 'its tiling'})",
            f"{_next_multiple(real)} channels (a multiple of 16) wastes no NCE lanes",
        )
    return None


def _next_multiple(channels: int, of: int = 16) -> int:
    return -(-channels // of) * of


# --- advice ---------------------------------------------------------------------------------------


def target_advice(estimate: SpeedEstimate, target_fps: float, input_shape: tuple | None) -> str | None:
    """None when the estimate reaches target_fps; else what would: a SHAVE count, and an input size
    (time taken as linear in pixels, as the published 416 -> 640 drops are, within ~20%)."""
    if estimate.fps >= target_fps:
        return None
    text = f"the estimate is {estimate.summary()} ({estimate.fps_low:.1f}-{estimate.fps_high:.1f}), below --target-fps {target_fps:g}"
    reach = [n for n, fps in estimate.by_shaves.items() if fps >= target_fps]
    options = []
    if reach:
        options.append(f"--nshaves {reach[0]} (est. {estimate.by_shaves[reach[0]]:.1f} FPS)")
    if input_shape and len(input_shape) == 4:
        size = _input_size_for(estimate, target_fps, input_shape[2], input_shape[3])
        if size is not None:
            (height, width), fps = size
            options.append(f"an input of {height}x{width} (est. ~{fps:.0f} FPS)")
    if options:
        text += "; would reach it: " + " or ".join(options)
    else:
        text += "; neither another SHAVE count nor a smaller input reaches it (the time per inference that does not scale with the input alone is too long)"
    return text


def _input_size_for(estimate: SpeedEstimate, target_fps: float, height: int, width: int):
    """((height, width), its estimated FPS) for the largest input (multiples of 32, the aspect kept)
    whose estimate reaches target_fps, or None. The stages' time scales with the pixels; the fixed
    per-inference time (dispatch, the USB return) does not, so a smaller input only divides the rest."""
    total = sum(estimate.units_ms.values())
    fixed = estimate.units_ms.get("fixed + USB", 0.0) / total if total > 0 else 0.0

    def fps_at(size: tuple) -> float:
        ratio = size[0] * size[1] / (height * width)
        return estimate.fps / (fixed + (1 - fixed) * ratio)

    scale = math.sqrt(max(0.0, (estimate.fps / target_fps - fixed) / (1 - fixed))) if fixed < 1 else 0.0
    size = (int(height * scale) // 32 * 32, int(width * scale) // 32 * 32)
    while min(size) >= 32 and fps_at(size) < target_fps:  # rounding: step down until it reaches
        size = (size[0] - 32, size[1] - 32)
    return (size, fps_at(size)) if min(size) >= 32 and size != (height, width) else None


def markdown(section: dict) -> list[str]:
    """The report's "Speed on the camera" lines, from its JSON section (SpeedEstimate.to_dict)."""
    low, high = section["fps_range"]
    latency_low, latency_high = section["latency_range_ms"]
    slowest, fastest = calibrated_fps_range(calibration())
    outside = (
        f" ({section['uncalibrated_share']:.0%} of the time in stage kinds the calibration barely saw)"
        if section["uncalibrated_share"] >= 0.1
        else f" (the models it was fitted on run at {slowest:g}–{fastest:g} FPS)"
        if section["fit"] != "calibrated"
        else ""
    )
    by_shaves = section["by_shaves"]
    lines = [
        # Bold, not a heading: the report's one heading is its title (a PR comment shows several reports).
        f"**Speed on the camera (estimate): {section['summary']}**, likely {low:.1f}–{high:.1f} FPS; latency ~{section['latency_ms']:.0f} ms "
        f"({latency_low:.0f}–{latency_high:.0f}, the USB return included). Fit: {section['fit']}{outside}. "
        "A measurement on the device beats any estimate.",
        "",
        "| SHAVEs | " + " | ".join(by_shaves) + " |",
        "|---|" + "---|" * len(by_shaves),
        "| FPS | " + " | ".join(_round_fps(fps) for fps in by_shaves.values()) + " |",
        "",
        "By stage type: "
        + ", ".join(
            f"{row['type']} on {row['unit']} ×{row['stages']} {row['share']:.0%}" for row in section["by_stage_type"]
        )
        + f"; per inference (dispatch, USB) {section['time_ms']['fixed + USB'] / (1000 / section['fps']):.0%}.",
        "",
        # A layer's name is the model's: a code span (markdown_text), never raw Markdown.
        markdown_table(
            ["where the time goes", "unit", "share", "why", "what to change"],
            [
                [
                    f"{code(layer['name'])} ({text(layer['types'])})",
                    text(layer["unit"]),
                    f"{layer['share']:.0%} ({layer['ms']:.1f} ms)",
                    message(layer["why"] or ""),
                    message(layer["change"] or ""),
                ]
                for layer in section["top_layers"]
            ],
        ),
    ]
    if section.get("advice"):
        lines += ["", f"⚠️ {message(section['advice'])}"]
    return lines + ["", f"<sub>{section['calibration']}</sub>", ""]


# --- the conversion report ------------------------------------------------------------------------


def report_section(data: bytes, stage_graph=None, target_fps: float | None = None) -> tuple[dict | None, str | None]:
    """(the report's "speed" section, the --target-fps warning or None) for a blob's bytes. A blob
    whose stage table does not parse gets (None, None): the estimate never fails a conversion."""
    try:
        estimate = estimate_blob(data, stage_graph)
        shape = parse_blob(data).inputs[0].shape if parse_blob(data).inputs else None
    except (BlobFormatError, ValueError, KeyError, ZeroDivisionError):
        return None, None
    section = estimate.to_dict() | {"target_fps": target_fps, "advice": None}
    warning = target_advice(estimate, target_fps, shape) if target_fps else None
    section["advice"] = warning
    return section, warning


def summary_of(section: dict | None) -> str:
    """The verdict line's speed part ("~28 FPS at 8 SHAVEs, est."), or "" without an estimate."""
    return f"{section['summary']} (est.)" if section else ""


def estimate_cli(path, as_json: bool, target_fps: float | None) -> int:
    """`myriad-blob estimate`: print the estimate; 0, or 14 (verify's exit code) when it falls short
    of target_fps, or 2 when the file is not a 2021 Myriad blob."""
    section, warning = report_section(path.read_bytes(), None, target_fps)
    if section is None:
        print(f"myriad-blob: {path} is not a Myriad blob the 2021.4 plugin wrote (no stage table)", file=sys.stderr)
        return 2
    print(json.dumps(section, indent=2) if as_json else "\n".join(markdown(section)))
    if warning:
        print(f"myriad-blob: {warning}", file=sys.stderr)
        return EXIT_CODES[Stage.VERIFY]
    return 0
