"""FP16 checked where the chip computes: the plugin's own stages, not only the IR's layers.

The numeric check's FP16 range check (numeric.Fp16Range) reads every IR layer's output. But the
2021.4 Myriad plugin decomposes some IR layers into several FP16 stages (its stage graph,
stage_graph.py), and an intermediate of such a decomposition can leave FP16's range while the
layer's own output does not: `ReduceL2` runs as `Power(x, 2)` -> mean (`AvgPool` or `ReduceMean`)
-> `Power(scale = N)` -> `Power(0.5)`, so a 128-value embedding whose L2 norm is 414 has a sum of
squares of 171,021 > 65,504: inf on the chip, and every normalised value 0.

DECOMPOSITIONS holds one row per IR layer type the plugin decomposes, as the dumps show it
(tests/test_fp16_stages.py compiles a micro-model per row and checks the dump's stage sequence, so
the table cannot drift from the plugin). Each row's emulate() computes the stages' outputs in FP16
(NumPy float16) from the IR layer's input values (ONNX Runtime on the ONNX model the IR was made
from, extra outputs at the layer's inputs). Layers kept as one stage are the IR-layer check's.

The check runs on the numeric check's photo and on HARD_FRAMES a camera sends (saturated white,
black, high contrast): an overflow only on a hard frame is a warning naming the stage and frame
(--strict fails it); the IR layers' ranges on those frames are reported with the worst and its frame.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from ..compile import IMAGE_INPUT_TYPE, trace
from ..findings import Finding
from ..markdown_text import code, markdown_table, message, text
from ..numeric import (
    FP16_MAX,
    IMAGENET_MEAN,
    IMAGENET_STD,
    NEAR_OVERFLOW_HEADROOM,
    Fp16Range,
    layer_ranges,
    make_inputs,
    photo_fits,
    reference_inputs,
    run_ir_with_ranges,
)
from ..ort import ort_session
from ..rules.advice import module_path, where
from ..stage_graph import Stage, StageGraph
from .base import Check, CheckContext

CHECK_NAME = "plugin stages"
SECTION = "plugin_stages"  # the report's top-level key for this check's section
# Stage types that are the plugin's own plumbing, not arithmetic on values (a Copy moves data).
_NOT_COMPUTING = frozenset({"Copy", "Reshape", "Expand", "Convert", "Permute", "Crop", "Concat", "Split"})
# IR layer types the NCE can run: on SHAVEs they cost many times more (the report's moved layers).
NCE_LAYER_TYPES = frozenset({"Convolution", "GroupConvolution", "MatMul", "MaxPool", "AvgPool", "FullyConnected"})
# The same work as SHAVE stage types (the plugin's software kernels for it).
NCE_STAGE_TYPES = frozenset({"Conv", "DepthConv", "GEMM", "MaxPool", "AvgPool", "FC", "Deconvolution"})


@dataclasses.dataclass(frozen=True)
class Decomposition:
    """How the plugin runs one IR layer type as several FP16 stages."""

    layer_type: str  # the IR layer type ("ReduceL2")
    stages: tuple[frozenset, ...]  # the plugin's stage types, in order (a step may take either of a few)
    steps: tuple[str, ...]  # what each stage computes, for messages ("x^2", "sum of squares")
    emulate: Callable  # (inputs: list of float32 arrays, node attributes: dict) -> one float16 array per stage
    fix: str  # what the user can do when an intermediate overflows
    onnx_op: str = ""  # the ONNX op such a layer comes from (its inputs are the layer's)

    def matches(self, stage_types: list[str]) -> bool:
        return len(stage_types) == len(self.stages) and all(t in s for t, s in zip(stage_types, self.stages))


def _fp16(value) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(value, dtype=np.float32).astype(np.float16)


def _f32(value: np.ndarray) -> np.ndarray:
    return value.astype(np.float32)


def _reduce_l2(inputs: list, attributes: dict) -> list:
    """ReduceL2 as the plugin computes it: x^2, the mean over the reduced axes, times N, the root."""
    x, axes = _fp16(inputs[0]), attributes["axes"]
    count = int(np.prod([x.shape[a] for a in axes]))
    with np.errstate(over="ignore", invalid="ignore"):
        squares = _fp16(_f32(x) ** 2)
        mean = _fp16(np.mean(_f32(squares), axis=axes, keepdims=True))
        total = _fp16(_f32(mean) * count)
        root = _fp16(np.sqrt(_f32(total)))
    return [squares, mean, total, root]


def _reduce_sum(inputs: list, attributes: dict) -> list:
    x, axes = _fp16(inputs[0]), attributes["axes"]
    count = int(np.prod([x.shape[a] for a in axes]))
    with np.errstate(over="ignore", invalid="ignore"):
        mean = _fp16(np.mean(_f32(x), axis=axes, keepdims=True))
        return [mean, _fp16(_f32(mean) * count)]


def _divide(inputs: list, attributes: dict) -> list:
    """x / y as the plugin computes it: 1/y (inf where y rounds to 0 or |y| < 1.5e-5), then x * (1/y)."""
    x, y = _fp16(inputs[0]), _fp16(inputs[1])
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        reciprocal = _fp16(1.0 / _f32(y))
        return [reciprocal, _fp16(_f32(x) * _f32(reciprocal))]


def _subtract(inputs: list, attributes: dict) -> list:
    """x - y as the plugin computes it: -y (a Power with scale -1), then x + (-y)."""
    x, y = _fp16(inputs[0]), _fp16(inputs[1])
    with np.errstate(over="ignore", invalid="ignore"):
        negated = _fp16(-_f32(y))
        return [negated, _fp16(_f32(x) + _f32(negated))]


_MEAN = frozenset({"AvgPool", "ReduceMean"})
DECOMPOSITIONS: tuple[Decomposition, ...] = (
    Decomposition(
        "ReduceL2",
        (frozenset({"Power"}), _MEAN, frozenset({"Power"}), frozenset({"Power"})),
        ("x^2", "mean of x^2", "sum of squares (mean x N)", "square root"),
        _reduce_l2,
        "the sum of squares leaves FP16 where the L2 norm passes 256: divide the input by a power of two "
        "first (the norm scales with it; F.normalize's result does not change), or let myriad-blob's rule "
        "'ReduceL2 -> scaled mean of squares' do it",
        "ReduceL2",
    ),
    Decomposition(
        "ReduceSum",
        (_MEAN, frozenset({"Power"})),
        ("mean", "sum (mean x N)"),
        _reduce_sum,
        "scale the input down before the sum",
        "ReduceSum",
    ),
    Decomposition(
        "Divide",
        (frozenset({"Power"}), frozenset({"Prod", "Eltwise"})),
        ("1/y", "x * (1/y)"),
        _divide,
        "the divisor's reciprocal leaves FP16 where |y| < 1.5e-5 (FP16 cannot hold a smaller eps either): "
        "clamp the divisor to at least 1e-4 (F.normalize(eps=1e-4)), or scale both operands up",
        "Div",
    ),
    Decomposition(
        "Subtract",
        (frozenset({"Power"}), frozenset({"Sum", "Eltwise"})),
        ("-y", "x + (-y)"),
        _subtract,
        "scale both operands down",
        "Sub",
    ),
)
BY_TYPE = {row.layer_type: row for row in DECOMPOSITIONS}


def camera_frames(shape: tuple, integer: bool) -> dict:
    """The hard frames a camera sends, as pixel values 0..255 of shape (N, C, H, W): a saturated
    white, a black (lens cap), and high contrast (8-pixel black and white stripes, the largest
    gradients a frame has). Normalised as numeric.photo_input normalises a float input."""
    channels, width = shape[1], shape[3]
    columns = (np.arange(width) // 8) % 2 * 255.0
    frames = {
        "white": np.full(shape, 255.0, np.float32),
        "black": np.zeros(shape, np.float32),
        "contrast": np.broadcast_to(columns[None, None, None, :], shape).astype(np.float32),
    }
    if not integer:
        mean = np.asarray(IMAGENET_MEAN[:channels] if channels == 3 else (0.449,), np.float32).reshape(-1, 1, 1)
        std = np.asarray(IMAGENET_STD[:channels] if channels == 3 else (0.226,), np.float32).reshape(-1, 1, 1)
        frames = {name: ((frame / 255.0 - mean) / std).astype(np.float32) for name, frame in frames.items()}
    return frames


HARD_FRAMES = ("white", "black", "contrast")


@dataclasses.dataclass(frozen=True)
class StageRange:
    """One stage of a decomposed IR layer, on one frame."""

    stage: str  # the plugin's stage name
    index: int  # its execution index
    type: str  # the plugin's stage type (Power, ReduceMean, ...)
    step: str  # what it computes ("sum of squares (mean x N)")
    layer: str  # the IR layer it belongs to
    layer_type: str
    frame: str  # "photo" or one of HARD_FRAMES
    max_abs: float  # largest finite magnitude
    nonfinite: int  # inf/NaN this stage made (its inputs were finite)
    onnx_node: str | None = None
    onnx_op: str | None = None

    @property
    def verdict(self) -> str:
        if self.nonfinite:
            return "overflow"
        return "near overflow" if self.max_abs * NEAR_OVERFLOW_HEADROOM > FP16_MAX else "ok"

    @property
    def module(self) -> str | None:
        return module_path(self.onnx_node)

    def where(self) -> str:
        origin = {"node": self.onnx_node, "op": self.onnx_op} if self.onnx_node else None
        return f"stage `{self.stage}` ({self.type}, {self.step}) of layer " + where(self.layer, self.layer_type, origin)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"verdict": self.verdict, "module": self.module}


@dataclasses.dataclass(frozen=True)
class LayerStages:
    """An IR layer and the plugin's stages for it (the report's table: decomposed or moved to SHAVEs)."""

    layer: str
    type: str
    stages: tuple[Stage, ...]  # computing stages, in execution order
    kind: str  # "decomposed" (a DECOMPOSITIONS row), "unknown decomposition", "moved to SHAVEs"
    onnx_node: str | None = None

    def to_dict(self) -> dict:
        return {
            "layer": self.layer,
            "type": self.type,
            "kind": self.kind,
            "onnx_node": self.onnx_node,
            "module": module_path(self.onnx_node),
            "stages": [{"index": s.index, "name": s.name, "type": s.type, "unit": s.unit} for s in self.stages],
        }


@dataclasses.dataclass(frozen=True)
class StageCheck:
    """The plugin's stage graph and FP16 on its stages, on the photo and the hard frames."""

    counts: dict  # {"NCE": n, "SHAVE": m, "DMA": k}
    layers: tuple[LayerStages, ...] = ()
    stages: tuple[StageRange, ...] = ()  # every decomposed layer's stages, on every frame
    frames: dict = dataclasses.field(default_factory=dict)  # frame -> {"worst": IR layer range, "overflow": [...]}
    error: str | None = None  # the check could not run (the blob and the IR-layer check stand)
    not_emulated: tuple[str, ...] = ()  # decomposed layers whose ONNX node was not found: not checked

    def overflows(self, photo: bool) -> list[StageRange]:
        return [s for s in self.stages if s.verdict == "overflow" and (s.frame == "photo") == photo]

    def findings(self, photo_overflows: frozenset = frozenset()) -> list[Finding]:
        """The check could not run; an overflow inside a decomposition on the photo; then one on a
        hard frame only (a layer already named on the photo is not named again); then an IR layer
        that overflows on a hard frame only (photo_overflows: the IR layers the FP16 range check
        already names on the photo)."""
        if self.error:
            why = f"the FP16 check of the plugin's stages could not run ({self.error})"
            return [Finding(CHECK_NAME, why, why + "; the IR layers' FP16 range check stands")]
        found = []
        on_photo = self.overflows(photo=True)
        if on_photo:
            first = on_photo[0]
            found.append(
                Finding(
                    CHECK_NAME,
                    f"FP16 overflow in stage {first.stage} ({first.step}) of layer {first.layer} on the photo",
                    f"FP16 overflow inside a decomposed layer: {first.where()} reaches inf on the numeric check's "
                    "input, though the layer's own output is within FP16's range (the IR check cannot see it): the "
                    f"Myriad plugin runs {first.layer_type} as several FP16 stages. Fix: {BY_TYPE[first.layer_type].fix}",
                )
            )
        named = {s.layer for s in on_photo}
        hard = [s for s in self.overflows(photo=False) if s.layer not in named]
        if hard:
            first = hard[0]
            frames = "/".join(sorted({s.frame for s in hard if s.layer == first.layer}))
            found.append(
                Finding(
                    CHECK_NAME,
                    f"FP16 overflow in stage {first.stage} ({first.step}) of layer {first.layer} on the {frames} frame",
                    f"FP16 overflow on a hard frame: {first.where()} reaches inf on the {frames} frame a camera "
                    f"sends, though not on the check's photo. Fix: {BY_TYPE[first.layer_type].fix}",
                )
            )
        for frame in HARD_FRAMES:  # the first frame on which an IR layer overflows that the photo does not
            info = self.frames.get(frame) if isinstance(self.frames.get(frame), dict) else {}
            new = [layer for layer in info.get("overflow") or () if layer not in photo_overflows]
            if new:
                where = info.get("first_overflow") if info["overflow"][0] == new[0] else f"`{new[0]}`"
                found.append(
                    Finding(
                        CHECK_NAME,
                        f"FP16 overflow in layer {new[0]} on the {frame} frame",
                        f"FP16 overflow on a hard frame: layer {where} goes beyond FP16's largest value {FP16_MAX:g} "
                        f"on the {frame} frame a camera sends, though not on the check's photo: on the Myriad it "
                        "becomes inf there and what follows is lost. Rescale that layer (smaller weights or input "
                        "scale, with the factor moved to a later layer), or run that part on the host",
                    )
                )
                break
        return found

    def to_dict(self) -> dict:
        return {
            "checked": self.error is None,
            "error": self.error,
            "counts": self.counts,
            "frames": ["photo", *HARD_FRAMES],
            "layers": [layer.to_dict() for layer in self.layers],
            "stages": [s.to_dict() for s in self.stages],
            "hard_frames": self.frames,
            "not_emulated": list(self.not_emulated),
        }


def attribute(graph: StageGraph, layer_names: set) -> dict[int, str]:
    """{stage position: IR layer} for the stages that run. A stage whose plugin layer is an IR layer
    belongs to it; one named "IR/suffix" (ReduceSum's "y/pool") to that layer; one the plugin made
    (ReduceL2's "Power_748") to the first IR layer downstream of it, through such stages only."""
    consumers: dict[str, list[Stage]] = {}
    for stage in graph.stages:
        for data in stage.inputs:
            consumers.setdefault(data.name, []).append(stage)

    def own(stage: Stage) -> str | None:
        if stage.layer is None:
            return None
        if stage.layer in layer_names:
            return stage.layer
        head = stage.layer
        while "/" in head:
            head = head.rpartition("/")[0]
            if head in layer_names:
                return head
        return None

    owners: dict[int, str] = {}
    for stage in graph.stages:
        found = own(stage)
        if found is None and stage.layer is not None:
            seen, frontier = set(), [stage]
            while frontier and found is None:
                current = frontier.pop(0)
                for data in current.outputs:
                    for consumer in consumers.get(data.name, []):
                        if id(consumer) in seen:
                            continue
                        seen.add(id(consumer))
                        found = own(consumer)
                        if found is not None:
                            break
                        frontier.append(consumer)
                    if found is not None:
                        break
        if found is not None:
            owners[stage.position] = found
    return owners


def layer_stages(graph: StageGraph, ir, origins: tuple = ()) -> tuple[LayerStages, ...]:
    """The IR layers the plugin decomposes or runs on SHAVEs though the NCE could, with their stages."""
    types = {layer.name: layer.type for layer in ir.layers}
    owners = attribute(graph, set(types))
    grouped: dict[str, list[Stage]] = {}
    for stage in graph.stages:
        if stage.executed and stage.position in owners and stage.type not in _NOT_COMPUTING:
            grouped.setdefault(owners[stage.position], []).append(stage)
    result = []
    for layer, stages in grouped.items():
        row = BY_TYPE.get(types[layer])
        stage_types = [s.type for s in stages]
        on_nce = any(s.unit == "NCE" for s in stages)
        if row is not None and row.matches(stage_types):
            kind = "decomposed"
        elif not on_nce and (types[layer] in NCE_LAYER_TYPES or any(t in NCE_STAGE_TYPES for t in stage_types)):
            kind = (
                "moved to SHAVEs"  # a convolution, GEMM or pooling the NCE could run (a bias-add layer holds its conv)
            )
        elif len(stages) > 1 and not on_nce:
            kind = "unknown decomposition"
        else:
            continue
        origin = trace(layer, origins)
        result.append(LayerStages(layer, types[layer], tuple(stages), kind, origin and origin["node"]))
    return tuple(result)


def _node_inputs(onnx_path, layers: list[LayerStages]) -> tuple[dict, dict]:
    """{IR layer: ([input tensor names], {"axes": [...], "keepdims": k})} for the decomposed layers,
    and the loaded model. A layer's ONNX node is the one named as the layer, or producing the tensor
    the layer is named after (the 2022.3 front end names layers so), or its traced node, of the
    row's ONNX op in each case: a layer whose node is not found is not emulated (check_stages says so)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_model(str(onnx_path))
    constants = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute:
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    by_name = {node.name: node for node in model.graph.node if node.name}
    by_output = {output: node for node in model.graph.node for output in node.output}
    found = {}
    for layer in layers:
        op = BY_TYPE[layer.type].onnx_op
        candidates = (by_name.get(layer.layer), by_output.get(layer.layer), by_name.get(layer.onnx_node or ""))
        node = next((n for n in candidates if n is not None and n.op_type == op), None)
        if node is None:
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        axes = attributes.get("axes")
        if axes is None and node.op_type.startswith("Reduce") and len(node.input) > 1 and node.input[1] in constants:
            axes = constants[node.input[1]].tolist()
        found[layer.layer] = ([i for i in node.input if i], {"axes": axes, "keepdims": attributes.get("keepdims", 1)})
    return found, {"model": model, "constants": constants}


def _tensor_session(loaded: dict, names: list[str]):
    """(ONNX Runtime session giving the named tensors as extra outputs, the names it computes, the
    names that are model inputs): built once, run on every frame."""
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(loaded["model"])
    present = {o.name for o in model.graph.output}
    fed = {i.name for i in model.graph.input}  # a layer reading a model input reads what is fed
    wanted = [n for n in names if n not in loaded["constants"] and n not in fed]
    for name in wanted:
        if name not in present:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    return ort_session(model.SerializeToString()), wanted, fed


def _tensor_values(loaded: dict, names: list[str], inputs: dict) -> dict:
    """The named tensors' values on ONNX Runtime (extra graph outputs), float32."""
    session, wanted, fed = loaded["session"]
    feeds = {  # float inputs as float32 (a U8 frame is fed as the float the model takes); others as given
        arg.name: inputs[arg.name].astype(np.float32) if arg.type == "tensor(float)" else inputs[arg.name]
        for arg in session.get_inputs()
    }
    outputs = [o.name for o in session.get_outputs()]
    values = dict(zip(outputs, session.run(None, feeds)))
    result = {name: np.asarray(values[name], np.float32) for name in wanted}
    result.update({name: feeds[name] for name in names if name in fed and name in feeds})
    result.update({name: np.asarray(loaded["constants"][name], np.float32) for name in names if name not in result})
    return result


def prepare_emulation(layers: tuple[LayerStages, ...], onnx_model) -> dict | None:
    """What emulate_layers needs for every frame, read once: the decomposed layers, their ONNX
    nodes' inputs and attributes, and the ONNX Runtime session giving those inputs. None when the
    plugin decomposes no layer."""
    decomposed = [layer for layer in layers if layer.kind == "decomposed"]
    if not decomposed:
        return None
    nodes, loaded = _node_inputs(onnx_model.path, decomposed)
    names = sorted({name for inputs, _ in nodes.values() for name in inputs})
    loaded["session"] = _tensor_session(loaded, names)
    return {"decomposed": decomposed, "nodes": nodes, "loaded": loaded, "names": names}


def emulate_layers(emulation: dict | None, model_inputs: dict, frame: str, origins: tuple):
    """StageRange for every decomposed layer's stages on one frame's model inputs (emulation:
    prepare_emulation's)."""
    if emulation is None:
        return []
    decomposed, nodes = emulation["decomposed"], emulation["nodes"]
    values = _tensor_values(emulation["loaded"], emulation["names"], model_inputs)
    ranges = []
    for layer in decomposed:
        if layer.layer not in nodes:
            continue
        inputs, attributes = nodes[layer.layer]
        row = BY_TYPE[layer.type]
        arrays = [values[name] for name in inputs]
        rank = arrays[0].ndim
        if attributes["axes"] is None:  # a Reduce without axes reduces over every axis (ONNX)
            attributes = attributes | {"axes": tuple(range(rank))}
        else:
            attributes = attributes | {"axes": tuple(a + rank if a < 0 else a for a in attributes["axes"])}
        outputs = row.emulate(arrays, attributes)
        finite_before = all(np.isfinite(a).all() for a in arrays)
        origin = trace(layer.layer, origins) or {}
        for stage, step, output in zip(layer.stages, row.steps, outputs):
            finite = np.isfinite(output)
            made = int(np.count_nonzero(~finite)) if finite_before else 0
            peak = float(np.max(np.abs(output[finite]).astype(np.float32))) if finite.any() else 0.0
            ranges.append(
                StageRange(
                    stage.name,
                    stage.index,
                    stage.type,
                    step,
                    layer.layer,
                    layer.type,
                    frame,
                    peak,
                    made,
                    origin.get("node"),
                    origin.get("op"),
                )
            )
            finite_before = finite_before and made == 0
    return ranges


def check_stages(
    graph: StageGraph | None,
    ir,
    prepared,
    toolchain,
    options,
    *,
    worker=None,
    input_types: dict | None = None,
    layouts: dict | None = None,
    why_none: str | None = None,
) -> StageCheck | None:
    """The stage check of a conversion: None when there is no stage graph and nothing to say."""
    if graph is None:
        return StageCheck({}, error=why_none) if why_none else None
    origins = (prepared.model, prepared.reference)
    layers = layer_stages(graph, ir, origins)
    try:
        blob_inputs, _ = make_inputs(
            ir,
            options.input_type or IMAGE_INPUT_TYPE,  # by input: the others are in input_types
            options.samples,
            ir.preprocessing.get("reverse_input_channels", False),
            input_types,
            layouts,
            first_input=prepared.reference.inputs[0].name if prepared.reference.inputs else None,
        )
        frames = {"photo": blob_inputs}
        for name, frame in _hard_frames(ir, blob_inputs, options.input_type or IMAGE_INPUT_TYPE, input_types).items():
            frames[name] = frame
        stages, hard = [], {}
        emulation = prepare_emulation(layers, prepared.model)
        for name, inputs in frames.items():
            model_inputs = reference_inputs(inputs, ir.preprocessing)
            stages += emulate_layers(emulation, model_inputs, name, origins)
            if name != "photo":
                hard[name] = _ir_ranges(ir, inputs, toolchain, worker, layouts, origins)
    except Exception as error:  # the stage check is an addition: it never fails the conversion itself
        return StageCheck(graph.counts(), layers, error=f"{type(error).__name__}: {str(error).strip()[:300]}")
    emulated = {s.layer for s in stages}
    missing = tuple(layer.layer for layer in layers if layer.kind == "decomposed" and layer.layer not in emulated)
    return StageCheck(graph.counts(), layers, tuple(stages), hard, not_emulated=missing)


def _hard_frames(ir, photo_inputs: dict, input_type: str, input_types: dict | None) -> dict:
    """{frame: blob inputs} with every image input (4-D, 1 or 3 channels) replaced by the frame."""
    result = {name: dict(photo_inputs) for name in HARD_FRAMES}
    baked = ir.preprocessing.get("mean") or {}, ir.preprocessing.get("scale") or {}
    every = input_type in ("U8", "ONNX") or bool(baked[0] or baked[1])  # as numeric.make_inputs decides
    for tensor in ir.inputs:
        shape = tuple(photo_inputs[tensor.name].shape) if tensor.name in photo_inputs else ()
        if not photo_fits(shape):
            continue
        named = (input_types or {}).get(tensor.name)
        integer = every if named is None else named == "U8" or any(tensor.name in table for table in baked)
        for name, frame in camera_frames(shape, integer).items():
            result[name][tensor.name] = frame.astype(photo_inputs[tensor.name].dtype)
    return result


def _ir_ranges(ir, inputs: dict, toolchain, worker, layouts, origins) -> dict:
    """The IR-layer FP16 range check on one frame: its worst layer and the layers that overflow."""
    _, ranges = run_ir_with_ranges(ir, inputs, toolchain, worker, layouts)
    if "error" in ranges:
        return {"error": ranges["error"]}
    check = Fp16Range(layer_ranges(ranges["layers"], origins))
    worst = check.top(1)
    return {
        "worst": worst[0].to_dict() if worst else None,
        "overflow": [layer.layer for layer in check.overflows],
        # The first overflowing layer in the user's terms (its ONNX node, its PyTorch module).
        "first_overflow": check.overflows[0].where() if check.overflows else None,
    }


def check_plugin_stages(context: CheckContext) -> list[Finding]:
    """The verify check: the stage check's section (the report's plugin_stages), and its findings.
    An overflow inside a decomposition on the photo also fails the numeric check (numeric["passed"]);
    one only on a hard frame leaves it: the numeric pass/fail stays on the photo."""
    compiled = context.compiled
    with context.session.worker() as worker:
        stages = check_stages(
            compiled.stage_graph,
            context.ir,
            context.prepared,
            context.toolchain,
            context.options,
            worker=worker,
            input_types=compiled.settings["tensor_types"],
            layouts=compiled.settings["tensor_layouts"],
            why_none=compiled.stage_graph_error,
        )
    if stages is None:
        return []
    context.report.check_sections[SECTION] = stages.to_dict()
    if context.report.numeric is not None and stages.overflows(photo=True):
        context.report.numeric["passed"] = False
    numeric = context.results.get("numeric")
    fp16 = numeric.fp16 if numeric is not None else None
    return stages.findings(frozenset(layer.layer for layer in fp16.overflows) if fp16 is not None else frozenset())


def markdown(stages: dict | None) -> list[str]:
    """The report's Markdown lines for its plugin_stages section: stage counts, IR layer -> stages for layers
    decomposed or moved to SHAVEs, the FP16 verdict per stage where not ok, the hard frames' worst."""
    if not stages:
        return []
    counts = stages.get("counts") or {}
    lines = [
        "**Plugin stages** (what the Myriad X runs): "
        + ", ".join(f"{counts.get(unit, 0)} {unit}" for unit in ("NCE", "SHAVE", "DMA")),
        "",
    ]
    if stages.get("error"):
        lines += [f"> ⚠️ the FP16 check of the plugin's stages could not run: {message(stages['error'])}", ""]
    if stages["layers"]:
        # markdown_table escapes a `|` in a model's layer name, which would end the cell.
        rows = [
            [
                code(layer["layer"]),
                text(layer["type"]),
                text(layer["kind"]),
                text(" → ".join(f"{s['type']} ({s['unit']})" for s in layer["stages"]), 400),
            ]
            for layer in stages["layers"]
        ]
        lines += [markdown_table(["IR layer", "type", "how it runs", "stages"], rows), ""]
    if stages.get("not_emulated"):
        lines += [
            f"Not emulated (their ONNX node was not found): {', '.join(code(name) for name in stages['not_emulated'])}",
            "",
        ]
    flagged = [s for s in stages["stages"] if s["verdict"] != "ok"]
    if flagged:
        rows = [
            [
                f"{code(s['stage'])} ({text(s['type'])})",
                text(s["step"]),
                code(s["layer"]),
                text(s["frame"]),
                "inf" if s["nonfinite"] else f"{s['max_abs']:.4g}",
                "❌ overflow" if s["verdict"] == "overflow" else "⚠️ near overflow",
            ]
            for s in flagged
        ]
        lines += [markdown_table(["stage", "computes", "IR layer", "frame", "largest", "FP16"], rows), ""]
    worst = {
        frame: info["worst"]
        for frame, info in (stages.get("hard_frames") or {}).items()
        if isinstance(info, dict) and info.get("worst")
    }
    if worst:
        frame, layer = max(worst.items(), key=lambda item: item[1]["max_abs"])
        lines += [
            f"Hard frames ({', '.join(HARD_FRAMES)}): the largest IR-layer value is {layer['max_abs']:.4g}, in "
            f"{code(layer['layer'])} on the {frame} frame ({layer['verdict']}).",
            "",
        ]
    return lines


CHECK = Check(CHECK_NAME, check_plugin_stages, key=SECTION, render_markdown=markdown)
