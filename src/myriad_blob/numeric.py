"""The numeric check: does the FP16 IR compute what the original model computes?

The same deterministic input goes through the original model (PyTorch, or ONNX Runtime for
ONNX input) and through the FP16 IR on OpenVINO's CPU plugin in the legacy toolchain. The IR
has the preprocessing baked in (U8 input, channel reversal, mean, scale), so the original model
gets exactly that preprocessing applied in NumPy first. The blob is compiled from this same IR;
what differs on the camera is the VPU's FP16 arithmetic, which the tolerances allow for.

The same CPU run also records every IR layer's output range (the FP16 range check, Fp16Range):
the CPU computes in FP32, so an activation beyond FP16's largest value (65504) would pass the
output comparison although the Myriad, computing in FP16, turns it into inf.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from pathlib import Path

import numpy as np

from .artifacts import FP16_MAX, INTEGER_PRECISIONS, IRModel, OnnxModel, is_image_shape
from .compile import trace
from .diagnosis import Diagnosis, LayerValues, diagnose, logits, round_weights_to_fp16
from .errors import ConversionError, Stage, first_line
from .export_onnx import flatten_outputs
from .metrics import cosine, max_abs_error, peak_relative_error
from .ort import ort_session
from .rules.advice import module_path, where
from .toolchain import RUN_IR_ON_CPU_SCRIPT, LegacyWorker, Toolchain, last_line, run_job

RUN_IR_ON_CPU = RUN_IR_ON_CPU_SCRIPT
CPU_RUN_TIMEOUT_S = 900  # the corpus runs in about a second; a hung CPU run must still end
SEED = 20190101
# An output whose reference values all stay below this magnitude cannot be judged: FP16 keeps
# about three significant digits and flushes values under 6.1e-5, so relative error and cosine
# say nothing there. Such an output is reported "too small to compare" and counts as a miss.
TOO_SMALL = 1e-3
# The FP16 range check (README, "The numeric check"). FP16's largest finite value; a layer whose
# largest magnitude exceeds it overflows (inf on the Myriad).
# A layer within this factor of FP16_MAX is flagged "near overflow": the check sees one input,
# and a brighter frame or another scene can easily scale activations by 2-4x.
NEAR_OVERFLOW_HEADROOM = 4.0
# FP16's smallest normal value; below it only subnormals (10 bits fewer as the value shrinks), and
# hardware that flushes subnormals gives 0. A layer is flagged "underflow" when at least
# UNDERFLOW_FRACTION of its nonzero values lie below FP16_MIN_NORMAL while its own largest magnitude
# is below UNDERFLOW_PEAK (1024 x FP16_MIN_NORMAL, 0.0625): then the lost values are ones FP16
# could still tell apart from the layer's peak. In a layer with a larger peak they are below
# FP16's resolution next to it anyway, and are not flagged. A quarter, not less: squeeze-excite and
# pooling layers of the corpus's MobileNetV3/EfficientNet/LR-ASPP hold 1-3% of such values with no
# effect on the outputs (relative error below 1e-3), and a warning on every such net teaches users
# to ignore warnings.
FP16_MIN_NORMAL = 2.0**-14
UNDERFLOW_FRACTION = 0.25
UNDERFLOW_PEAK = 1024 * FP16_MIN_NORMAL
FP16_TOP_LAYERS = 5  # layers listed in the report's "FP16 range" section when all is well
# A final Sigmoid is saturated where its logits pass this magnitude: sigmoid(8) = 0.99966, and FP16
# (resolution 4.9e-4 near 1) cannot tell larger ones from 1. Such an output that misses is judged on
# its logits (numeric_check).
SATURATED_LOGIT = 8.0
# Integer outputs (an ArgMax class map, TopK indices) are judged by agreement: the share of values
# equal to the original's. Relative error says nothing there: a pixel whose two best classes are
# a near tie flips with FP16 rounding (case14: 19 of 4,096 pixels, 0.5%), a changed computation
# flips most of them.
MIN_AGREEMENT = 0.99


@dataclasses.dataclass(frozen=True)
class Tolerances:
    """A miss is a warning, or an error with --strict. Relative error is measured against the
    output's largest magnitude, so values near zero do not inflate it."""

    max_relative_error: float = 0.02
    min_cosine: float = 0.999


@dataclasses.dataclass(frozen=True)
class OutputComparison:
    name: str
    shape: tuple
    max_abs_error: float
    max_relative_error: float
    cosine: float
    top1_reference: int | None
    top1_ir: int | None
    nonfinite: int
    passed: bool
    note: str = ""  # why it missed or what was not compared (too small, near tie, shape)
    agreement: float | None = None  # integer outputs: the share of values equal to the original's
    yardstick: str = "the output"  # what was compared: the output, or the logits before its final activation

    @property
    def top1_agrees(self) -> bool | None:
        return None if self.top1_reference is None else self.top1_reference == self.top1_ir

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"shape": list(self.shape), "top1_agrees": self.top1_agrees}


@dataclasses.dataclass(frozen=True)
class LayerRange:
    """One IR layer output's values on the check's input, from the CPU plugin (FP32 arithmetic)."""

    layer: str
    type: str
    port: int
    shape: tuple
    min: float
    max: float
    max_abs: float
    nonfinite: int  # already inf/NaN in FP32 (weights out of FP16's range, or a real inf)
    nonzero: int
    subnormal: int  # nonzero values below FP16_MIN_NORMAL
    onnx_node: str | None = None
    onnx_op: str | None = None

    @property
    def headroom(self) -> float:
        """How many times larger the layer's values could get before FP16 overflows (< 1: overflow)."""
        if self.nonfinite:
            return 0.0
        return FP16_MAX / self.max_abs if self.max_abs > 0 else math.inf

    @property
    def verdict(self) -> str:
        if self.nonfinite or self.max_abs > FP16_MAX:
            return "overflow"
        if self.headroom < NEAR_OVERFLOW_HEADROOM:
            return "near overflow"
        if self.nonzero and self.max_abs < UNDERFLOW_PEAK and self.subnormal >= UNDERFLOW_FRACTION * self.nonzero:
            return "underflow"
        return "ok"

    @property
    def module(self) -> str | None:
        return module_path(self.onnx_node)

    def where(self) -> str:
        """`layer` (Type; ONNX node `n`, Conv; PyTorch module `m`), for messages."""
        return where(self.layer, self.type, {"node": self.onnx_node, "op": self.onnx_op} if self.onnx_node else None)

    def describe(self) -> str:
        values = f"values {self.min:.3g} .. {self.max:.3g}"
        return values + (f", {self.nonfinite} non-finite" if self.nonfinite else "")

    def to_dict(self) -> dict:
        headroom = self.headroom
        return dataclasses.asdict(self) | {
            "shape": list(self.shape),
            "verdict": self.verdict,
            "module": self.module,
            "headroom": None if math.isinf(headroom) else round(headroom, 4),
        }


@dataclasses.dataclass(frozen=True)
class Fp16Range:
    """The FP16 range check: every computing layer of the IR, in network order."""

    layers: tuple[LayerRange, ...] = ()
    error: str | None = None  # the range check could not run (the output comparison still did)
    emulation: dict | None = None  # emulate_fp16_activations: the outputs with FP16 activations, on the host

    def flagged(self, verdict: str) -> list[LayerRange]:
        return [layer for layer in self.layers if layer.verdict == verdict]

    @property
    def overflows(self) -> list[LayerRange]:
        return self.flagged("overflow")

    def top(self, count: int = FP16_TOP_LAYERS) -> list[LayerRange]:
        return sorted(self.layers, key=lambda layer: (-(layer.nonfinite > 0), -layer.max_abs))[:count]

    def overflow_summary(self) -> str:
        """One line for --strict's error: where FP16 overflows first."""
        first = self.overflows[0]
        return (
            f"FP16 overflow: layer {first.where()} reaches {first.max_abs:.3g} on the numeric check's input, "
            f"beyond FP16's largest value {FP16_MAX:g} ({len(self.overflows)} layer(s) overflow; the report's "
            "FP16 range section lists them): rescale that layer, or run that part on the host"
        )

    def warnings(self) -> list[str]:
        """What the user should hear, one message per kind of trouble."""
        if self.error:
            return [
                f"the FP16 range check could not run ({self.error}); activations were not checked against FP16's range"
            ]
        messages = []
        overflows = self.overflows
        if overflows:
            first, rest = overflows[0], overflows[1:]
            also = (
                f"; {len(rest)} more layer(s) overflow after it: "
                + ", ".join(f"`{layer.layer}` ({layer.max_abs:.3g})" for layer in rest[:4])
                + (", ..." if len(rest) > 4 else "")
                if rest
                else ""
            )
            messages.append(
                f"FP16 overflow: layer {first.where()} reaches {first.max_abs:.3g} ({first.describe()}) on the numeric "
                f"check's input, beyond FP16's largest value {FP16_MAX:g}: on the Myriad it becomes inf and what "
                f"follows is lost{also}. The CPU check computes in FP32 and cannot see this. Rescale that layer "
                "(smaller weights or input scale, with the factor moved to a later layer), or run that part on the host"
            )
        near = self.flagged("near overflow")
        if near:
            closest = max(near, key=lambda layer: layer.max_abs)
            messages.append(
                f"FP16 near overflow: {len(near)} layer(s) come within {NEAR_OVERFLOW_HEADROOM:g}x of FP16's largest "
                f"value {FP16_MAX:g} on the check's input; closest {closest.where()} at {closest.max_abs:.3g} "
                f"(headroom {closest.headroom:.2g}x). Brighter or different inputs may overflow on the Myriad: "
                "check with --sample on a real frame, or rescale that layer"
            )
        under = self.flagged("underflow")
        if under:
            worst = max(under, key=lambda layer: layer.subnormal / layer.nonzero)
            messages.append(
                f"FP16 underflow: {len(under)} layer(s) have values FP16 flushes to zero (below {FP16_MIN_NORMAL:.2g}) "
                f"though the layer holds nothing larger than {UNDERFLOW_PEAK:g}; worst {worst.where()}, "
                f"{worst.subnormal} of {worst.nonzero} nonzero values, largest {worst.max_abs:.3g}. "
                "Scale that layer's values up (and back down after it)"
            )
        return messages

    def to_dict(self) -> dict:
        return {
            "checked": not self.error,
            "error": self.error,
            "fp16_max": FP16_MAX,
            "near_overflow_headroom": NEAR_OVERFLOW_HEADROOM,
            "fp16_min_normal": FP16_MIN_NORMAL,
            "underflow_fraction": UNDERFLOW_FRACTION,
            "underflow_peak": UNDERFLOW_PEAK,
            "overflow": [layer.layer for layer in self.overflows],
            "near_overflow": [layer.layer for layer in self.flagged("near overflow")],
            "underflow": [layer.layer for layer in self.flagged("underflow")],
            "emulation": self.emulation,
            "layers": [layer.to_dict() for layer in self.layers],
        }


def emulate_fp16_activations(onnx_model: OnnxModel, inputs: dict, references: dict, tolerances: Tolerances) -> dict:
    """The original ONNX model on ONNX Runtime with FP16 weights and every floating-point activation
    rounded to FP16 (a Cast to float16 and back after each node), compared with the reference. Each
    op still computes in FP32 inside, as the Myriad's own kernels may accumulate differently; what
    this shows is FP16 storage between layers: rounding, and overflow to inf that then spreads to
    the outputs. Informational: {"outputs": [...], "passed": bool} or {"error": why it could not run}."""
    try:
        import onnx

        model = onnx.shape_inference.infer_shapes(onnx.load_model(str(onnx_model.path)))
        graph = model.graph
        floats = {
            v.name
            for v in list(graph.value_info) + list(graph.output)
            if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        }
        round_weights_to_fp16(model)
        nodes = []
        for original in graph.node:
            node, casts = onnx.NodeProto(), []
            node.CopyFrom(original)
            for index, name in enumerate(node.output):
                if name in floats:
                    node.output[index] = f"{name}.fp32"
                    casts += [
                        onnx.helper.make_node("Cast", [f"{name}.fp32"], [f"{name}.fp16"], to=onnx.TensorProto.FLOAT16),
                        onnx.helper.make_node("Cast", [f"{name}.fp16"], [name], to=onnx.TensorProto.FLOAT),
                    ]
            nodes += [node, *casts]
        del graph.node[:]
        graph.node.extend(nodes)
        session = ort_session(model.SerializeToString())  # unoptimized: ORT could fold the Cast pairs away
        feeds = {arg.name: inputs[arg.name].astype(_ort_dtype(arg.type)) for arg in session.get_inputs()}
        names = [arg.name for arg in session.get_outputs()]
        with np.errstate(all="ignore"):
            emulated = dict(zip(names, (np.asarray(o, dtype=np.float32) for o in session.run(None, feeds))))
    except Exception as error:  # informational: never fails the conversion
        return {"error": f"{type(error).__name__}: {str(error).strip()[:300]}"}
    outputs = [compare(name, references[name], emulated[name], tolerances) for name in references if name in emulated]
    return {"outputs": [o.to_dict() for o in outputs], "passed": bool(outputs) and all(o.passed for o in outputs)}


def layer_ranges(records: list, origins: tuple[OnnxModel, ...] = ()) -> tuple[LayerRange, ...]:
    """LayerRange for run_ir_on_cpu's records, traced to the ONNX node each layer came from."""
    result = []
    for record in records:
        origin = trace(record["layer"], origins) or {}
        result.append(
            LayerRange(
                record["layer"],
                record["type"],
                record["port"],
                tuple(record["shape"]),
                record["min"],
                record["max"],
                record["max_abs"],
                record["nonfinite"],
                record["nonzero"],
                record["subnormal"],
                origin.get("node"),
                origin.get("op"),
            )
        )
    return tuple(result)


@dataclasses.dataclass(frozen=True)
class NumericCheck:
    input_source: str  # "seeded" or the --sample path
    tolerances: Tolerances
    outputs: tuple[OutputComparison, ...]
    fp16: Fp16Range | None = None  # None: not measured (passed stays about the outputs only)
    diagnosis: Diagnosis | None = None  # when an output misses: where the runtimes part, and whose fault it is
    # U8 inputs fed values that are not integers in 0..255: the IR got them as the blob holds them
    truncated: tuple[str, ...] = ()

    @property
    def outputs_passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    @property
    def passed(self) -> bool:
        """The outputs match and no layer overflows FP16 (the device would give inf where the CPU
        check, in FP32, could not see it)."""
        return self.outputs_passed and not (self.fp16 is not None and self.fp16.overflows)

    def summary(self) -> str:
        worst_cos = min(o.cosine for o in self.outputs)
        worst_rel = max(o.max_relative_error for o in self.outputs)
        notes = "; ".join(f"{o.name}: {o.note}" for o in self.outputs if o.note and not o.passed)
        return f"cosine {worst_cos:.6f}, max relative error {worst_rel:.2e}" + (f"; {notes}" if notes else "")

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "outputs_passed": self.outputs_passed,
            "input": self.input_source,
            "seed": SEED,
            "tolerances": dataclasses.asdict(self.tolerances),
            "outputs": [o.to_dict() for o in self.outputs],
            "fp16": self.fp16.to_dict() if self.fp16 is not None else None,
            "diagnosis": self.diagnosis.to_dict() if self.diagnosis is not None else None,
            "truncated_inputs": list(self.truncated),
        }


def _fail(message: str) -> ConversionError:
    return ConversionError(Stage.VERIFY, message)


# The check's default image: a real photograph (Grace Hopper, a U.S. Navy portrait in the public
# domain; matplotlib's sample data, shipped in this package: data/README.md) with a band of printed
# text drawn over it, so that detectors, OCR and segmentation nets respond where smooth noise leaves
# a sigmoid map at ~0.
CHECK_PHOTO = Path(__file__).parent / "data" / "grace_hopper.jpg"
CHECK_TEXT = ("MYRIAD X 2480 OAK-D", "Grace Hopper 1906")
PHOTO_INPUT = "photo (matplotlib's grace_hopper.jpg, public domain, with printed text)"
# ImageNet's mean and standard deviation: a float input without --mean/--scale gets the photo
# normalized as most vision models expect it.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def make_inputs(
    ir: IRModel,
    input_type: str,
    sample: Path | dict | None,
    reverse_channels: bool,
    input_types: dict | None = None,
    layouts: dict | None = None,
    first_input: str | None = None,
) -> tuple[dict, str]:
    """The blob-side inputs (what a camera would send), in planar (N, C, H, W) order whatever the
    blob's layout: the check photo for every image input (1 or 3 channels), seeded image-like noise
    for the others, or --sample: a path for the first input, or {input name (None: the first):
    path}. Pixel values (0..255) for a U8 input or one with --mean/--scale baked in; normalized
    values for a float input. input_types: the precision of the inputs named with --input-type
    name=TYPE (the others: input_type); layouts: the blob's NHWC inputs, whose --sample .npy may be
    given interleaved, as the camera sends it. first_input: the input a bare --sample is for (the
    model's first; default the IR's first)."""
    rng = np.random.default_rng(SEED)
    baked = ir.preprocessing.get("mean") or {}, ir.preprocessing.get("scale") or {}
    every = input_type in ("U8", "ONNX") or bool(baked[0] or baked[1])
    inputs, photos = {}, 0
    for tensor in ir.inputs:
        named = (input_types or {}).get(tensor.name)
        integer_input = every if named is None else named == "U8" or any(tensor.name in table for table in baked)
        if photo_fits(tensor.shape):
            inputs[tensor.name] = photo_input(tensor.shape, integer_input, reverse_channels)
            photos += 1
        else:
            inputs[tensor.name] = seeded_input(rng, tensor.shape, integer_input)
    samples = {None: sample} if isinstance(sample, Path) else dict(sample or {})
    if not samples:
        return inputs, PHOTO_INPUT if photos else "seeded"
    by_name = {tensor.name: tensor for tensor in ir.inputs}
    for name, path in samples.items():
        tensor = by_name.get((first_input or ir.inputs[0].name) if name is None else name)
        if tensor is None:
            raise _fail(f"--sample {name}={path}: the model has no input {name!r} (its inputs: {', '.join(by_name)})")
        inputs[tensor.name] = load_sample(
            path, tensor.shape, reverse_channels, (layouts or {}).get(tensor.name, "NCHW")
        )
    return inputs, describe_samples(samples)


def describe_samples(samples: dict) -> str:
    """The report's numeric.input for --sample: the path, or name=PATH for a named one."""
    return ", ".join(str(path) if name is None else f"{name}={path}" for name, path in samples.items())


def photo_fits(shape: tuple) -> bool:
    """An input the check photo can fill: an image (artifacts.is_image_shape)."""
    return is_image_shape(shape)


def check_photo(height: int, width: int):
    """The check photo as a PIL RGB image of height x width: cropped to the aspect ratio, resized,
    with CHECK_TEXT printed in dark letters on a light band across its lower part."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.open(CHECK_PHOTO).convert("RGB")
    scale = max(width / image.width, height / image.height)  # cover, then crop the centre
    resized = image.resize(
        (max(width, round(image.width * scale)), max(height, round(image.height * scale))), Image.BILINEAR
    )
    left, top = (resized.width - width) // 2, (resized.height - height) // 2
    photo = resized.crop((left, top, left + width, top + height))
    draw = ImageDraw.Draw(photo)
    size = max(6, height // 10)
    font = ImageFont.load_default(size=size)
    band_top = height - len(CHECK_TEXT) * (size + size // 3) - size // 2
    draw.rectangle((0, band_top, width, height), fill=(236, 232, 220))
    for line, text in enumerate(CHECK_TEXT):
        draw.text((size // 2, band_top + size // 4 + line * (size + size // 3)), text, fill=(20, 20, 30), font=font)
    return photo


def photo_input(shape: tuple, integer: bool, reverse_channels: bool) -> np.ndarray:
    """The check photo as a blob input of shape (N, C, H, W), C 1 or 3: 0..255 pixel values for an
    integer (U8) input, else normalized with ImageNet's statistics. 3 channels are RGB, or BGR with
    --reverse-input-channels (the blob then takes the camera's BGR and flips it itself)."""
    batch, channels, height, width = shape
    photo = check_photo(height, width)
    pixels = np.asarray(photo.convert("L") if channels == 1 else photo, dtype=np.float32)
    planar = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
    if not integer:
        mean = np.asarray(IMAGENET_MEAN[:channels] if channels == 3 else (0.449,), np.float32).reshape(-1, 1, 1)
        std = np.asarray(IMAGENET_STD[:channels] if channels == 3 else (0.226,), np.float32).reshape(-1, 1, 1)
        planar = (planar / 255.0 - mean) / std
    if reverse_channels and channels == 3:
        planar = planar[::-1]
    return np.ascontiguousarray(np.repeat(planar[None], batch, axis=0).astype(np.float32))


def seeded_input(rng: np.random.Generator, shape: tuple, integer: bool) -> np.ndarray:
    """Image-like data: a smooth gradient plus noise, each channel at its own level. Uniform noise
    would look the same in every channel and hide a channel-order mistake."""
    if len(shape) < 3:
        noise = rng.integers(0, 256, size=shape) if integer else rng.standard_normal(size=shape)
        return noise.astype(np.float32)
    channels, height, width = shape[1], shape[-2], shape[-1]
    # Shaped to broadcast over exactly len(shape) dims (a 3-D state [1, 4, 16] as a 4-D image).
    gradient = (
        np.add.outer(np.linspace(0, 1, height), np.linspace(0, 1, width)).reshape(
            (1,) * (len(shape) - 2) + (height, width)
        )
        / 2
    )
    levels = np.linspace(0.85, 0.15, channels).reshape((1, channels) + (1,) * (len(shape) - 2))
    if integer:
        values = 255 * (0.5 * levels + 0.4 * gradient) + rng.normal(0, 12, size=shape)
        return np.clip(np.round(values), 0, 255).astype(np.float32)
    return (4 * (levels - 0.5) + gradient + 0.3 * rng.standard_normal(size=shape)).astype(np.float32)


def load_sample(path: Path, shape: tuple, reverse_channels: bool, layout: str = "NCHW") -> np.ndarray:
    """--sample as the input's planar (N, C, H, W) array. A .npy for an NHWC input may be interleaved
    (N, H, W, C), as the camera sends it."""
    if not path.exists():
        raise _fail(f"--sample {path} does not exist")
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as error:
            raise _fail(f"--sample {path} is not a plain .npy array: {error}") from error
        interleaved_shape = (shape[0], shape[2], shape[3], shape[1]) if layout == "NHWC" else None
        if interleaved_shape and tuple(array.shape) == interleaved_shape and interleaved_shape != tuple(shape):
            array = array.transpose(0, 3, 1, 2)
        elif tuple(array.shape) != tuple(shape):
            also = f" (or {list(interleaved_shape)}, interleaved)" if interleaved_shape else ""
            raise _fail(f"--sample {path} has shape {list(array.shape)}, the input needs {list(shape)}{also}")
        return np.ascontiguousarray(array.astype(np.float32))
    if len(shape) != 4 or shape[1] != 3:
        raise _fail(
            f"--sample image needs a 3-channel NCHW input, the model's first input is {list(shape)}: use a .npy"
        )
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path).convert("RGB").resize((shape[3], shape[2]), Image.BILINEAR)
    except (UnidentifiedImageError, OSError) as error:
        raise _fail(f"--sample {path} is not an image Pillow reads: {error}") from error
    planar = np.asarray(image, dtype=np.float32).transpose(2, 0, 1)  # HWC RGB -> CHW
    # With --reverse-input-channels the blob expects the camera's BGR and flips it to RGB itself.
    if reverse_channels:
        planar = planar[::-1]
    return np.ascontiguousarray(planar[None].repeat(shape[0], axis=0))


def as_u8(blob_inputs: dict, u8_inputs) -> tuple[dict, tuple[str, ...]]:
    """The inputs as a U8 blob input holds them (clipped to 0..255, the fraction dropped), and the
    names of the U8 inputs whose values that changed (a --sample of floats for a U8 input)."""
    held, truncated = dict(blob_inputs), []
    for name in u8_inputs:
        value = blob_inputs.get(name)
        if value is None:
            continue
        u8 = np.trunc(np.clip(value, 0, 255)).astype(np.float32)
        if not np.array_equal(u8, value):
            held[name], truncated = u8, [*truncated, name]
    return held, tuple(truncated)


def reference_inputs(blob_inputs: dict, preprocessing: dict) -> dict:
    """Apply what the IR bakes in (Model Optimizer order: reverse channels, then mean, then scale)."""
    result = {}
    for name, value in blob_inputs.items():
        value = value.astype(np.float32)
        if preprocessing.get("reverse_input_channels") and value.ndim == 4 and value.shape[1] == 3:
            value = value[:, ::-1]
        mean = preprocessing.get("mean", {}).get(name)
        scale = preprocessing.get("scale", {}).get(name)
        channels = (1, -1) + (1,) * (value.ndim - 2)
        if mean:
            value = value - np.asarray(mean, dtype=np.float32).reshape(channels)
        if scale:
            value = value / np.asarray(scale, dtype=np.float32).reshape(channels)
        result[name] = np.ascontiguousarray(value)
    return result


def run_reference(module, onnx_model: OnnxModel, inputs: dict) -> dict:
    """The original model's outputs, by ONNX output name."""
    names = [t.name for t in onnx_model.outputs]
    return dict(zip(names, _reference_outputs(module, onnx_model, inputs)))


def _reference_outputs(module, onnx_model: OnnxModel, inputs: dict) -> list:
    ordered = [inputs[t.name] for t in onnx_model.inputs]
    if module is None:
        import onnxruntime

        try:
            session = ort_session(onnx_model.path, optimize=True)
        except onnxruntime.capi.onnxruntime_pybind11_state.NotImplemented as error:
            # No kernel for an op at these types (Pow with a uint32 exponent): ONNX's own evaluator.
            return _onnx_reference_outputs(onnx_model, inputs, error)
        feeds = {arg.name: inputs[arg.name].astype(_ort_dtype(arg.type)) for arg in session.get_inputs()}
        return [np.asarray(o, dtype=np.float32) for o in session.run(None, feeds)]
    import torch

    dtype = next((p.dtype for p in module.parameters()), torch.float32)
    with torch.no_grad():
        outputs = module(*(torch.from_numpy(v).to(dtype) for v in ordered))
    return [o.detach().float().numpy() for o in flatten_outputs(outputs)]


# ONNX Runtime's type names that are not NumPy's ("tensor(int16)" and the like are).
def _onnx_reference_outputs(onnx_model: OnnxModel, inputs: dict, why: Exception) -> list:
    """The outputs by onnx.reference.ReferenceEvaluator, where ONNX Runtime has no kernel."""
    import onnx
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    model = onnx.load_model(str(onnx_model.path))
    types = {v.name: v.type.tensor_type.elem_type for v in model.graph.input}
    try:
        feeds = {
            name: inputs[name].astype(helper.tensor_dtype_to_np_dtype(types[name]))
            for name in (t.name for t in onnx_model.inputs)
        }
        return [np.asarray(o, dtype=np.float32) for o in ReferenceEvaluator(model).run(None, feeds)]
    except Exception as error:
        raise _fail(
            f"neither ONNX Runtime ({first_line(why)}) nor ONNX's reference evaluator ({first_line(error)}) runs "
            "the model, so the numeric check has no reference"
        ) from error


_ORT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(bool)": np.bool_}


def _ort_dtype(onnx_type: str):
    """The NumPy type of an ONNX Runtime input type ("tensor(uint16)" -> uint16); float32 otherwise."""
    if onnx_type in _ORT_TYPES:
        return _ORT_TYPES[onnx_type]
    try:
        return np.dtype(onnx_type.removeprefix("tensor(").removesuffix(")")).type
    except TypeError:
        return np.float32


def run_ir(ir: IRModel, inputs: dict, toolchain: Toolchain, worker: LegacyWorker | None = None) -> dict:
    return _run_ir(ir, inputs, toolchain, worker, ranges=False)[0]


def run_ir_with_ranges(
    ir: IRModel, inputs: dict, toolchain: Toolchain, worker: LegacyWorker | None = None, layouts: dict | None = None
) -> tuple[dict, dict]:
    """The IR's outputs, and run_ir_on_cpu's per-layer ranges ({"layers": [...]} or {"error": ...}).
    layouts: {tensor: "NHWC"} as the blob lays them out (--input-layout/--output-layout): the run
    takes those inputs interleaved, as the camera sends them, and gives those outputs interleaved;
    inputs and outputs here stay planar (N, C, H, W), as the original's."""
    return _run_ir(ir, inputs, toolchain, worker, ranges=True, layouts=layouts or {})


def interleaved(value: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> the same frame as (N, H, W, C): what an NHWC blob takes (BGR888i)."""
    return np.ascontiguousarray(value.transpose(0, 2, 3, 1))


def _run_ir(
    ir: IRModel,
    inputs: dict,
    toolchain: Toolchain,
    worker: LegacyWorker | None,
    ranges: bool,
    layouts: dict | None = None,
):
    layouts = layouts or {}
    with tempfile.TemporaryDirectory(prefix="myriad-blob-cpu-") as tmp:
        inputs_path, outputs_path = Path(tmp) / "inputs.npz", Path(tmp) / "outputs.npz"
        ranges_path = Path(tmp) / "ranges.json"
        np.savez(
            inputs_path,
            **{name: interleaved(value) if layouts.get(name) == "NHWC" else value for name, value in inputs.items()},
        )
        extra = [str(ranges_path)] if ranges else []
        laid_out = ["--layouts", json.dumps(layouts)] if layouts else []
        # A job that outlives CPU_RUN_TIMEOUT_S is stopped (a warm worker is killed): (1, why).
        returncode, output = run_job(
            toolchain,
            worker,
            "infer",
            {
                "xml": str(ir.xml),
                "inputs": str(inputs_path),
                "outputs": str(outputs_path),
                **({"ranges": str(ranges_path)} if ranges else {}),
                **({"layouts": layouts} if layouts else {}),
            },
            [
                str(toolchain.python),
                str(RUN_IR_ON_CPU),
                *laid_out,
                str(ir.xml),
                str(inputs_path),
                str(outputs_path),
                *extra,
            ],
            CPU_RUN_TIMEOUT_S,
        )
        if returncode != 0:
            raise _fail(f"the IR did not run on OpenVINO's CPU plugin: {last_line(output)}")
        with np.load(outputs_path, allow_pickle=False) as outputs:
            actual = {
                name: outputs[name].transpose(0, 3, 1, 2) if layouts.get(name) == "NHWC" else outputs[name]
                for name in outputs.files
            }
        if not ranges:
            return actual, None
        try:
            return actual, json.loads(ranges_path.read_text())
        except (OSError, ValueError) as error:
            return actual, {"error": f"no layer ranges from the CPU run ({error})"}


def compare(
    name: str,
    reference: np.ndarray,
    actual: np.ndarray,
    tolerances: Tolerances,
    integer: bool = False,
    indices: bool = False,
) -> OutputComparison:
    """One output against the original's; integer outputs by agreement (MIN_AGREEMENT), TopK's
    indices (indices=True) as sets along the last axis: near-equal scores may swap places."""
    shape = tuple(reference.shape)
    if reference.size != actual.size:
        return OutputComparison(
            name,
            shape,
            float("inf"),
            float("inf"),
            0.0,
            None,
            None,
            0,
            False,
            f"shape {list(actual.shape)} where the original gives {list(shape)}",
        )
    if integer:
        return _compare_integers(name, reference, actual, indices)
    reference, actual = reference.astype(np.float64).ravel(), actual.astype(np.float64).ravel()
    nonfinite = int(np.count_nonzero(~np.isfinite(actual)))
    abs_error, rel_error = max_abs_error(reference, actual), peak_relative_error(reference, actual)
    similarity = cosine(reference, actual)
    peak = float(np.max(np.abs(reference))) if reference.size else 0.0
    note = ""
    top1_ref = top1_ir = None
    if _looks_like_scores(shape):
        order = np.argsort(reference)
        margin = reference[order[-1]] - reference[order[-2]]
        # A near tie on random input says nothing about the conversion: compare top-1 only when
        # the original's winner leads by more than the error the tolerances allow.
        if margin > tolerances.max_relative_error * peak:
            top1_ref, top1_ir = int(order[-1]), int(np.nanargmax(np.nan_to_num(actual, nan=-np.inf)))
        else:
            note = f"top-1 not compared: a near tie in the original ({margin:.2g} between the top two)"
    passed = (
        nonfinite == 0
        and np.isfinite(similarity)
        and similarity >= tolerances.min_cosine
        and rel_error <= tolerances.max_relative_error
        and top1_ref == top1_ir
    )
    if nonfinite:
        note = f"{nonfinite} non-finite value(s) in the converted model's output"
    if peak < TOO_SMALL:
        passed, note = (
            False,
            (
                f"too small to compare: the original's values stay below {TOO_SMALL:g} "
                f"(largest {peak:.2g}), which FP16 cannot resolve"
            ),
        )
    return OutputComparison(
        name, shape, abs_error, rel_error, similarity, top1_ref, top1_ir, nonfinite, bool(passed), note
    )


def _compare_integers(name: str, reference: np.ndarray, actual: np.ndarray, indices: bool) -> OutputComparison:
    shape = tuple(reference.shape)
    if indices and reference.ndim:  # per row, how many of the original's indices the converted model also picked
        rows = reference.reshape(-1, shape[-1]), actual.reshape(-1, shape[-1])
        equal = sum(len(np.intersect1d(r, a)) for r, a in zip(*rows))
    reference, actual = reference.astype(np.float64).ravel(), actual.astype(np.float64).ravel()
    nonfinite = int(np.count_nonzero(~np.isfinite(actual)))
    if not indices or not len(shape):
        equal = int(np.count_nonzero(reference == actual))
    agreement = equal / reference.size if reference.size else 1.0
    passed = nonfinite == 0 and agreement >= MIN_AGREEMENT
    counted = (
        f"TopK indices, judged as sets: {equal} of the original's {reference.size} indices picked too"
        if indices
        else f"integer output, judged by agreement: {equal} of {reference.size} values equal"
    )
    note = f"{counted} ({agreement:.2%}; at least {MIN_AGREEMENT:.0%} needed)"
    return OutputComparison(
        name,
        shape,
        max_abs_error(reference, actual),
        peak_relative_error(reference, actual),
        cosine(reference, actual),
        None,
        None,
        nonfinite,
        bool(passed),
        note,
        round(agreement, 6),
    )


def _looks_like_scores(shape: tuple) -> bool:
    """A classifier's output: (N,) or (1, N) scores, where the top-1 index is what users read."""
    return len(shape) in (1, 2) and shape[-1] > 1 and (len(shape) == 1 or shape[0] == 1)


def numeric_check(
    module,
    onnx_model: OnnxModel,
    ir: IRModel,
    toolchain: Toolchain,
    *,
    input_type: str,
    sample: Path | dict | None = None,
    tolerances: Tolerances = Tolerances(),
    reference_preprocessing: dict | None = None,
    worker: LegacyWorker | None = None,
    origins: tuple[OnnxModel, ...] | None = None,
    input_types: dict | None = None,
    layouts: dict | None = None,
) -> NumericCheck:
    """Compare the original model with the FP16 IR, and check every IR layer's range against FP16's.
    reference_preprocessing defaults to the IR's own (it differs only in tests that prove a wrong
    conversion is caught). origins: the ONNX models whose node names IR layers are traced to (the
    one the IR was made from first); default the reference. input_types: the inputs' precisions
    named apart from input_type; layouts: the blob's NHWC tensors (the IR runs them interleaved,
    the original gets the same frame planar)."""
    preprocessing = ir.preprocessing if reference_preprocessing is None else reference_preprocessing
    blob_inputs, source = make_inputs(
        ir,
        input_type,
        sample,
        ir.preprocessing.get("reverse_input_channels", False),
        input_types,
        layouts,
        # A bare --sample is for the model's first input: the IR may list its inputs in another order.
        first_input=onnx_model.inputs[0].name if onnx_model.inputs else None,
    )
    model_inputs = reference_inputs(blob_inputs, preprocessing)
    references = run_reference(module, onnx_model, model_inputs)
    # The original gets the values as given, the IR as a U8 input of the blob holds them.
    u8 = [t.name for t in ir.inputs if (input_types or {}).get(t.name, input_type) == "U8"]
    blob_inputs, truncated = as_u8(blob_inputs, u8)
    actual, ranges = run_ir_with_ranges(ir, blob_inputs, toolchain, worker, layouts)
    emulation = emulate_fp16_activations(onnx_model, model_inputs, references, tolerances)
    fp16 = (
        Fp16Range(error=ranges["error"], emulation=emulation)
        if "error" in ranges
        else Fp16Range(layer_ranges(ranges["layers"], tuple(origins or ()) + (onnx_model,)), emulation=emulation)
    )
    comparisons = []
    for tensor in ir.outputs:
        # Outputs are paired by name only: the IR keeps the ONNX output names (a test holds us to it).
        if tensor.name not in references or tensor.name not in actual:
            raise _fail(
                f"the converted model's output {tensor.name!r} is not among the original's outputs "
                f"({', '.join(references)}): its name was lost in conversion"
            )
        producer = onnx_model.nodes.get(onnx_model.producers.get(tensor.name))
        comparisons.append(
            compare(
                tensor.name,
                references[tensor.name],
                actual[tensor.name],
                tolerances,
                integer=tensor.dtype.upper() in INTEGER_PRECISIONS,
                indices=producer == "TopK",
            )
        )
    missing = [name for name in references if name not in {t.name for t in ir.outputs}]
    if missing:  # an output dropped or merged in conversion is as wrong as a wrong value
        raise _fail(f"the original's output(s) {', '.join(missing)} are missing from the converted model")
    diagnosis = None
    if not all(c.passed for c in comparisons):
        values = LayerValues(ir, blob_inputs, model_inputs, (origins or (onnx_model,))[0], toolchain, worker)
        comparisons = [
            c if c.passed or c.agreement is not None else _on_the_logits(c, values, tolerances) for c in comparisons
        ]
        if not all(c.passed for c in comparisons):
            diagnosis = diagnose(values)
    return NumericCheck(source, tolerances, tuple(comparisons), fp16, diagnosis, truncated)


def _on_the_logits(comparison: OutputComparison, values: LayerValues, tolerances: Tolerances) -> OutputComparison:
    """A missed output made by a final Sigmoid/Softmax, judged on the logits feeding it when the
    output itself cannot tell: too small to compare (a sigmoid map with nothing to detect), or
    saturated (logits beyond SATURATED_LOGIT, where FP16 cannot tell the sigmoid from 0 and 1 and a
    logit near 0 moves the output most: PP-OCRv4's text map)."""
    found = logits(values, comparison.name)
    if found is None:
        return comparison
    what, reference, actual = found
    peak = float(np.max(np.abs(reference))) if reference.size else 0.0
    if comparison.note.startswith("too small"):
        why = comparison.note
    elif peak >= SATURATED_LOGIT:
        why = (
            f"saturated: its logits reach {peak:.3g}, beyond {SATURATED_LOGIT:g}, where FP16 cannot tell the "
            f"activation from 0 and 1 (cosine {comparison.cosine:.6f}, max relative error "
            f"{comparison.max_relative_error:.2e} on the output itself)"
        )
    else:
        return comparison
    judged = compare(comparison.name, reference, actual, tolerances)
    note = (
        f"{why}; judged on {what} instead: cosine {judged.cosine:.6f}, max relative error "
        f"{judged.max_relative_error:.2e}" + (f" ({judged.note})" if judged.note else "")
    )
    return dataclasses.replace(judged, shape=comparison.shape, note=note, yardstick=what)
