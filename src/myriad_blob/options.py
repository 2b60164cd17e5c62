"""What the user asked for, parsed once from the command line into plain data."""

from __future__ import annotations

import ast
import dataclasses
import math
from pathlib import Path

# Blob precisions the Myriad X takes (compile-tool names, as toolchain/compile_blob.cpp maps them);
# "ONNX" keeps the model's own. Others (U32, U64, BOOL, BF16, an I32 or U8 output) fail only in the compiler.
INPUT_PRECISIONS = ("U8", "FP16", "FP32", "ONNX")
OUTPUT_PRECISIONS = ("FP16", "FP32", "ONNX")
PRECISIONS = {"input_type": INPUT_PRECISIONS, "output_type": OUTPUT_PRECISIONS}
# Ranges checked wherever options come from (flags, manifest, action inputs): (low, high), inclusive.
RANGES = {"nshaves": (1, 16), "nslices": (1, 16), "nstreams": (1, 3), "opset": (7, 18),
          "max_relative_error": (0.0, float("inf")), "min_cosine": (-1.0, 1.0)}
DEFAULT_INPUT_NAME = "input"
# IR front ends: OpenVINO 2022.3.1's ONNX reader (IR v10, legalized), Model Optimizer 2021.4, or the
# first, falling back to the second when it fails on a model.
FRONTENDS = ("auto", "ov2022", "mo2021")
# The Myriad compiler has run for more than 15 minutes on some IRs without finishing; the slowest
# corpus model compiles in a few seconds (see README, "What converts").
DEFAULT_COMPILE_TIMEOUT_S = 600.0


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One model input: its name (None: the model's only/first input) and shape."""

    name: str | None
    shape: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class ConversionOptions:
    input: Path
    output: Path
    input_shapes: tuple[InputSpec, ...] = ()
    reverse_input_channels: bool = False
    input_type: str = "U8"
    output_type: str = "FP16"
    mean: dict[str | None, tuple[float, ...]] = dataclasses.field(default_factory=dict)
    scale: dict[str | None, tuple[float, ...]] = dataclasses.field(default_factory=dict)
    model_key: str | None = None  # None: load.CHECKPOINT_KEYS
    model_dtype: str = "float32"
    model_class: str | None = None
    trust_pickle: bool = False
    nshaves: int = 6
    nslices: int = 6
    nstreams: int = 1
    opset: int | None = None  # None: the policy in export_onnx.OPSET_PREFERENCE
    new_export: bool = False
    frontend: str = "auto"
    output_names: tuple[str, ...] = ()
    compile_timeout: float = DEFAULT_COMPILE_TIMEOUT_S
    report: Path | None = None
    sample: Path | None = None
    strict: bool = False
    max_relative_error: float = 0.02
    min_cosine: float = 0.999
    nn_archive: bool = False
    superblob: bool = False

    @property
    def report_json(self) -> Path:
        return self.report if self.report else self.output.with_name(self.output.name + ".report.json")

    @property
    def nn_archive_path(self) -> Path:
        return self.output.with_name(self.output.stem + ".tar.xz")

    @property
    def superblob_path(self) -> Path:
        return self.output.with_name(self.output.stem + ".superblob")

    @property
    def report_markdown(self) -> Path | None:
        """Beside the JSON report; None when the JSON goes to a stream, a device or a FIFO."""
        from .report import is_stream

        return None if is_stream(self.report_json) else self.report_json.with_suffix(".md")

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["input"], data["output"] = str(self.input), str(self.output)
        data["report"] = str(self.report_json)
        data["sample"] = str(self.sample) if self.sample else None
        data["input_shapes"] = [{"name": s.name, "shape": list(s.shape)} for s in self.input_shapes]
        data["output_names"] = list(self.output_names)
        data["mean"] = {k or "": list(v) for k, v in self.mean.items()}
        data["scale"] = {k or "": list(v) for k, v in self.scale.items()}
        return data


def _split_named(text: str) -> tuple[str | None, str]:
    """'name=[1, 2]' -> ('name', '[1, 2]'); '[1, 2]' -> (None, '[1, 2]')."""
    text = text.strip()
    if not text.startswith("[") and "=" in text:
        name, _, rest = text.partition("=")
        return name.strip() or None, rest.strip()
    return None, text


def _literal_list(text: str, what: str) -> list:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError(f"{what} must be a list like [1, 3, 240, 320], got {text!r}") from None
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{what} must be a non-empty list like [1, 3, 240, 320], got {text!r}")
    return list(value)


def parse_input_shape(text: str) -> InputSpec:
    """Parse '[1, 3, 240, 320]' or 'name=[1, 3, 240, 320]'."""
    name, rest = _split_named(text)
    dims = _literal_list(rest, "--input-shape")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        raise ValueError(f"--input-shape dimensions must be positive integers, got {rest!r}")
    return InputSpec(name, tuple(dims))


FP16_MAX = 65504.0  # the blob computes in FP16: a mean or scale beyond this cannot be represented


def parse_per_channel(text: str, flag: str) -> tuple[str | None, tuple[float, ...]]:
    """Parse '[123.675, 116.28, 103.53]' or 'input=[...]' for --mean and --scale."""
    name, rest = _split_named(text)
    values = _literal_list(rest, flag)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{flag} values must be numbers, got {rest!r}")
    if not all(math.isfinite(v) and abs(v) <= FP16_MAX for v in values):
        raise ValueError(f"{flag} values must lie within FP16's range (±{FP16_MAX:g}), as the blob computes in FP16; "
                         f"got {rest!r}")
    if flag == "--scale" and any(abs(v) < 1 / FP16_MAX for v in values):
        raise ValueError(f"--scale values divide the input and must not be 0 (or below 1/{FP16_MAX:g}); got {rest!r}")
    return name, tuple(float(v) for v in values)


def per_channel_mismatch(flag: str, name: str, values: tuple, shape: tuple) -> str | None:
    """Why --mean/--scale values do not fit an input of this shape (None when they do): one value
    per channel of an NCHW input, or one value for all."""
    if len(shape) != 4 or len(values) == 1 or not isinstance(shape[1], int):
        return None
    if len(values) != shape[1]:
        return (f"{flag} gives {len(values)} value(s) for input {name!r}, which has {shape[1]} channel(s) "
                f"(shape {list(shape)}): give one value per channel")
    return None


def default_output(input: Path) -> Path:
    """The input's name with .blob, in the current directory."""
    return Path(Path(input).stem + ".blob")


def parse_output_names(value) -> tuple[str, ...]:
    """'a,b' or ['a', 'b'] (or both mixed) -> ('a', 'b')."""
    items = [value] if isinstance(value, str) else list(value or ())
    names = tuple(name.strip() for item in items for name in str(item).split(",") if name.strip())
    if len(set(names)) != len(names):
        raise ValueError(f"--output-names lists a name twice: {', '.join(names)}")
    return names


def parse_options(*, input: Path, output: Path | None = None, input_shapes=(), means=(), scales=(),
                  nshaves: int = 6, nslices: int | None = None, output_names=(), **rest) -> ConversionOptions:
    """ConversionOptions from the user's strings (CLI flags or action inputs); ValueError says what is wrong."""
    for key in ("frontend", "compile_timeout"):  # None: the default (an empty action input, a missing field)
        if key in rest and rest[key] is None:
            del rest[key]
    if rest.get("frontend") is not None:
        rest["frontend"] = str(rest["frontend"]).lower()
        if rest["frontend"] not in FRONTENDS:
            raise ValueError(f"--frontend must be one of {', '.join(FRONTENDS)}, got {rest['frontend']!r}")
    if rest.get("compile_timeout") is not None and not rest["compile_timeout"] > 0:
        raise ValueError(f"--compile-timeout must be a number of seconds above 0, got {rest['compile_timeout']}")
    for flag, accepted in PRECISIONS.items():
        if flag in rest:
            if str(rest[flag]).upper() not in accepted:
                raise ValueError(f"--{flag.replace('_', '-')} must be one of {', '.join(accepted)} (what the Myriad X "
                                 f"takes), got {rest[flag]!r}")
            rest[flag] = rest[flag].upper()
    values = {"nshaves": nshaves, "nslices": nslices, **rest}
    for name, (low, high) in RANGES.items():
        value = values.get(name)
        if value is not None and not low <= value <= high:
            bounds = f"at least {low:g}" if high == float("inf") else f"between {low:g} and {high:g}"
            raise ValueError(f"--{name.replace('_', '-')} must be {bounds}, got {value}")
    if nslices is not None and nshaves > nslices:
        raise ValueError(f"--nshaves {nshaves} is more than --nslices {nslices}: "
                         "the compiler needs at least as many CMX slices as SHAVEs")
    specs = tuple(parse_input_shape(text) for text in input_shapes)
    if len(specs) > 1 and any(spec.name is None for spec in specs):
        raise ValueError("with several --input-shape values, name each one: --input-shape 'name=[...]'")
    mean, scale = _per_channel(means, "--mean"), _per_channel(scales, "--scale")
    shapes = {spec.name: spec.shape for spec in specs}
    for flag, table in (("--mean", mean), ("--scale", scale)):
        for name, values in table.items():
            # Unnamed values go with the only input; named ones with the shape of that name.
            shape = shapes.get(name) or (specs[0].shape if len(specs) == 1 and name is None else None)
            problem = shape and per_channel_mismatch(flag, name or (specs[0].name or "input"), values, shape)
            if problem:
                raise ValueError(problem)
    return ConversionOptions(
        input=Path(input), output=Path(output) if output else default_output(input), input_shapes=specs,
        mean=mean, scale=scale, output_names=parse_output_names(output_names), nshaves=nshaves, nslices=nslices or nshaves, **rest)


def _per_channel(values, flag: str) -> dict:
    table = {}
    for text in values:
        name, numbers = parse_per_channel(text, flag)
        if name in table:
            raise ValueError(f"{flag} given twice for {'input ' + name if name else 'the input'}")
        table[name] = numbers
    return table
