"""What the user asked for, parsed once from the command line into plain data."""

from __future__ import annotations

import ast
import dataclasses
import math
import tomllib
from pathlib import Path
from typing import Any

from .artifacts import FP16_MAX
from .compile_config import parse_compile_config
from .errors import SHARED_STEPS
from .files import is_stream
from .limits import input_too_large
from .preprocessing import fit_preprocessing

DEFAULT_INPUT_NAME = "input"
# The Myriad compiler has run for more than 15 minutes on some IRs without finishing; the slowest
# corpus model compiles in a few seconds (see README, "What converts").
DEFAULT_COMPILE_TIMEOUT_S = 600.0

# Where an option appears: the flag of `myriad-blob convert`, the manifest's field, the action's input.
CLI, MANIFEST, ACTION = "cli", "manifest", "action"


@dataclasses.dataclass(frozen=True)
class Option:
    """One option, as every surface sees it: the CLI flag (`--name`), the manifest field (`name`)
    and the action input (`name`). The click options, the manifest's schema, the action's input
    reader, the range and choice checks, action.yml's inputs and the README's tables all come from
    OPTIONS (scripts/sync_options.py writes the last two; tests/test_options_table.py checks them)."""

    name: str  # the flag without dashes = the manifest key = the action input
    kind: str  # text, path, int, float, flag (--x), switch (--x/--no-x), choice (click.Choice)
    default: object = None  # the parsed value; None: none, or worked out (see the help)
    help: str = ""  # `convert --help`
    surfaces: frozenset = frozenset({CLI, MANIFEST, ACTION})
    param: str | None = None  # parse_options' keyword (None: the name with underscores); "" not a conversion option
    multiple: bool = False  # repeatable flag; a list in the manifest; one per line in the action
    range: tuple | None = None  # (low, high), inclusive, checked by parse_options
    choices: tuple | None = None  # checked by parse_options (case-insensitive)
    choices_note: str = ""  # after the choices in parse_options' error
    metavar: str | None = None
    required: bool = False
    manifest_expected: str | None = None  # what a wrong manifest value should be (None: from kind)
    action_lines: bool | None = None  # read the action input one value per line (None: when multiple)
    stage: str | None = None  # the shared pipeline stage (errors.SHARED_STEPS) that reads it: see stage_options
    attribute: str | None = None  # its ConversionOptions field, when not `key`
    # The README's "### Options" row (doc_flag: what follows --name; doc: None, the help).
    doc_flag: str = ""
    doc_default: str = ""
    doc: str | None = None
    # action.yml's input (action_default None: no default line) and the README's "### Inputs" row.
    action_help: str = ""
    action_default: str | None = ""
    action_doc_default: str | None = None  # None: `action_default`, or doc_default when that is empty
    action_doc: str | None = None  # None: "as `--name`"
    # Names the option had before a rename: still accepted on every surface it is on, with a
    # deprecation warning (the CLI's hidden --old flag, the manifest's old field, the action's old
    # input with action.yml's deprecationMessage). A rename keeps the old name here for a while.
    renamed_from: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """parse_options' keyword."""
        return self.name.replace("-", "_") if self.param is None else self.param

    @property
    def field(self) -> str:
        """ConversionOptions' field."""
        return self.attribute or self.key

    def on(self, surface: str) -> bool:
        return surface in self.surfaces

    def deprecation(self, old: str, surface: str = CLI) -> str:
        """What a user of the old name is told."""
        prefix = "--" if surface == CLI else ""
        return (
            f"{prefix}{old} is deprecated: it was renamed {prefix}{self.name} (same meaning); use {prefix}{self.name}"
        )


# The IR front ends, in the order --frontend auto tries them: OpenVINO 2022.3.1's ONNX reader (IR
# v10, legalized), then Model Optimizer 2021.4 when it fails on a model. --frontend's value -> the
# name the report and the errors give it (ir.FRONTENDS adds how each makes an IR).
FRONTEND_TITLES = {"ov2022": "OpenVINO 2022.3.1 ONNX front end", "mo2021": "Model Optimizer 2021.4"}
# --frontend's choices: the front ends to try, in order.
FRONTEND_ORDER = {"auto": tuple(FRONTEND_TITLES), **{name: (name,) for name in FRONTEND_TITLES}}

_CLI_ACTION = frozenset({CLI, ACTION})
_CLI_MANIFEST = frozenset({CLI, MANIFEST})

OPTIONS: tuple[Option, ...] = (
    Option(
        "input",
        "path",
        required=True,
        surfaces=frozenset({CLI}),
        help="Model file: ONNX, TorchScript, torch.export (.pt2), a state dict or checkpoint (with --model-class), "
        "or a full-model pickle (with --trust-pickle). Told apart by content.",
        doc_flag="PATH",
        doc_default="required",
        doc="the model file",
    ),
    Option(
        "model",
        "text",
        surfaces=frozenset({ACTION}),
        param="",
        action_help="Path of the model file in your repository (ONNX, TorchScript, torch.export .pt2, a state dict "
        "or checkpoint with model-class, or a full-model pickle with trust-pickle). Give this or manifest.",
        action_doc_default="—",
        action_doc="path of the model file in the repository (any format the CLI reads); give this or `manifest`",
    ),
    Option(
        "manifest",
        "text",
        surfaces=frozenset({ACTION}),
        param="",
        action_help="Path of a myriad-blob.toml instead of model, to convert every variant of every model in it "
        "(one comment and one release upload for all).",
        action_doc_default="—",
        action_doc="path of a `myriad-blob.toml`: convert every variant in it, one comment and one upload for all "
        "(blobs go to `output`, default `blobs/`)",
    ),
    Option(
        "input-shape",
        "text",
        stage="export",
        param="input_shapes",
        multiple=True,
        metavar="SHAPE",
        help="Input shape, e.g. '[1, 3, 240, 320]'; for several inputs 'name=[...]', repeated. "
        "Required for PyTorch models and ONNX models with dynamic shapes.",
        manifest_expected="a shape string like \"[1, 3, 240, 320]\" or a list of 'name=[...]' strings",
        doc_flag="SHAPE",
        doc_default="from the ONNX model",
        doc="`'[1, 3, 240, 320]'`; for several inputs `'name=[...]'`, repeated. Required for PyTorch models and "
        "ONNX models with dynamic shapes.",
        action_help="Input shape such as '[1, 3, 240, 320]'. For several inputs, one 'name=[...]' per line. "
        "Required for PyTorch models and ONNX models with dynamic shapes.",
        action_doc="as `--input-shape`; one `name=[...]` per line for several inputs",
    ),
    Option(
        "output",
        "path",
        surfaces=_CLI_ACTION,
        help="Where to write the blob. Default: the input's name with .blob, in the current directory.",
        doc_flag="PATH",
        doc_default="`<input name>.blob`",
        doc="where the blob goes (written only on success, atomically)",
        action_help="Where to write the blob, relative to the workspace. Default is the model's name with .blob, "
        "in the workspace root. With manifest, the directory for the blobs (default blobs).",
        action_doc_default="`<model name>.blob` in the workspace",
        action_doc="where to write the blob (with `manifest`: the directory, default `blobs`)",
    ),
    Option(
        "reverse-input-channels",
        "switch",
        stage="ir",
        default=False,
        help="Swap RGB<->BGR in the blob (cameras give BGR; PyTorch models usually expect RGB).",
        doc_default="no",
        doc="swap RGB and BGR inside the blob (OAK cameras give BGR; PyTorch models usually expect RGB)",
        action_help="Swap RGB and BGR inside the blob (true when the camera sends BGR to a model trained on RGB).",
        action_default="false",
    ),
    Option(
        "input-type",
        "text",
        choices=("U8", "FP16", "FP32", "ONNX"),
        multiple=True,
        metavar="[NAME=]TYPE",
        choices_note=" (what the Myriad X takes)",
        help="Blob input precision: U8, FP16 or FP32 (what the Myriad X takes); ONNX keeps the model's own. "
        "A bare value is for every input; 'name=FP16' for one (repeated), e.g. U8 images and an FP16 state.  "
        "[default: U8 for an image input (NCHW or NHWC, 1 or 3 channels), FP16 for any other]",
        manifest_expected='a precision name such as "U8", or a list like ["U8", "state=FP16"]',
        doc_flag="[NAME=]TYPE",
        doc_default="`U8` for an image, `FP16` for any other input",
        doc="blob input precision: `U8`, `FP16` or `FP32` (what the Myriad X takes); `ONNX` keeps the model's own. "
        "A bare value is for every input, `name=TYPE` for one (repeated; it wins), e.g. `--input-type U8 "
        "--input-type state=FP16`. Without it, an image input (NCHW or NHWC, 1 or 3 channels) is `U8`, the camera's "
        "frames, and any other input `FP16` (U8 would truncate its values); the report says which and why",
        action_help="Blob input precision (U8, FP16 or FP32; ONNX keeps the model's own). One per line; name=TYPE "
        "for one input, e.g. U8 and state=FP16. Default: U8 for an image input, FP16 for any other.",
        action_default="",
        action_doc="as `--input-type`; one per line (`name=TYPE` for one input)",
    ),
    Option(
        "output-type",
        "text",
        choices=("FP16", "FP32", "ONNX"),
        multiple=True,
        metavar="[NAME=]TYPE",
        choices_note=" (what the Myriad X takes)",
        help="Blob output precision; ONNX keeps the model's own; 'name=FP32' for one output (repeated). Integer "
        "outputs (an argmax, TopK indices) are I32 unless named here.  [default: FP16]",
        manifest_expected='a precision name such as "FP16", or a list like ["FP16", "boxes=FP32"]',
        doc_flag="[NAME=]TYPE",
        doc_default="`FP16`",
        doc="blob output precision; `ONNX` keeps the model's own; `name=TYPE` for one output (repeated). Integer "
        "outputs (an argmax class map, TopK indices) are `I32`, the one integer type the Myriad X gives, "
        "unless named here",
        action_help="Blob output precision (FP16 or FP32; ONNX keeps the model's own). One per line; name=TYPE for "
        "one output.",
        action_default="FP16",
        action_doc="as `--output-type`; one per line (`name=TYPE` for one output)",
    ),
    Option(
        "input-layout",
        "text",
        choices=("NCHW", "NHWC"),
        multiple=True,
        metavar="[NAME=]LAYOUT",
        choices_note=" (planar or interleaved frames)",
        help="Memory layout of the blob's 4-D inputs: NCHW (planar frames, e.g. BGR888p) or NHWC (interleaved, "
        "BGR888i), set in the compiler; 'name=NHWC' for one input (repeated).  [default: NCHW]",
        manifest_expected='"NCHW" or "NHWC", or a list like ["image=NHWC"]',
        doc_flag="[NAME=]LAYOUT",
        doc_default="`NCHW`",
        doc="memory layout of the blob's 4-D inputs: `NCHW` (planar frames, `BGR888p`) or `NHWC` (interleaved, "
        "`BGR888i`: no reorder on the host or in an ImageManip node), set by the compiler; `name=LAYOUT` "
        "for one input",
        action_help="Memory layout of the blob's 4-D inputs - NCHW (planar frames) or NHWC (interleaved). "
        "One per line; name=LAYOUT for one input.",
        action_default="NCHW",
        action_doc="as `--input-layout`; one per line (`name=LAYOUT` for one input)",
    ),
    Option(
        "output-layout",
        "text",
        choices=("NCHW", "NHWC"),
        multiple=True,
        metavar="[NAME=]LAYOUT",
        choices_note=" (channels before or after the spatial dimensions)",
        help="Memory layout of the blob's 4-D outputs: NCHW or NHWC; 'name=NHWC' for one (repeated).  [default: NCHW]",
        manifest_expected='"NCHW" or "NHWC", or a list like ["mask=NHWC"]',
        doc_flag="[NAME=]LAYOUT",
        doc_default="`NCHW`",
        doc="memory layout of the blob's 4-D outputs (`NCHW` or `NHWC`); `name=LAYOUT` for one output",
        action_help="Memory layout of the blob's 4-D outputs - NCHW or NHWC. One per line; name=LAYOUT for one output.",
        action_default="NCHW",
        action_doc="as `--output-layout`; one per line (`name=LAYOUT` for one output)",
    ),
    Option(
        "mean",
        "text",
        stage="ir",
        param="means",
        attribute="mean",
        multiple=True,
        metavar="VALUES",
        help="Per-channel mean subtracted in the blob, e.g. 'input=[123.675, 116.28, 103.53]' (before --scale).",
        manifest_expected='a string like "[123.675, 116.28, 103.53]" or a list of them',
        doc_flag="'input=[123.675, 116.28, 103.53]'",
        doc_default="none",
        doc="per-channel mean subtracted inside the blob (the name may be left out for a one-input model)",
        action_help="Per-channel mean subtracted inside the blob, e.g. 'input=[123.675, 116.28, 103.53]'; "
        "one line per input.",
        action_doc="as `--mean`; one line per input",
    ),
    Option(
        "scale",
        "text",
        stage="ir",
        param="scales",
        attribute="scale",
        multiple=True,
        metavar="VALUES",
        help="Per-channel divisor applied in the blob after --mean, e.g. 'input=[58.4, 57.12, 57.38]'.",
        manifest_expected='a string like "[58.4, 57.12, 57.38]" or a list of them',
        doc_flag="'input=[58.4, 57.12, 57.38]'",
        doc_default="none",
        doc="per-channel divisor, applied after the mean",
        action_help="Per-channel divisor applied inside the blob after the mean, e.g. 'input=[58.4, 57.12, 57.38]'; "
        "one line per input.",
        action_doc="as `--scale`; one line per input",
    ),
    Option(
        "model-key",
        "text",
        stage="load",
        help="Key of the model in a checkpoint dict.  [default: the first of model, state_dict, "
        "model_state_dict, ema, net that holds a model or state dict]",
        manifest_expected="a string",
        doc_default="the first of `model`, `state_dict`, `model_state_dict`, `ema`, `net`",
        doc="key of the model (or its state dict) in a checkpoint dict",
        action_help="Key of the model in a checkpoint dict. Default, the first of model, state_dict, "
        "model_state_dict, ema and net that holds a model or state dict.",
        action_default=None,
    ),
    Option(
        "model-dtype",
        "text",
        stage="load",
        default="float32",
        help="torch dtype to cast the model to before export (the blob is FP16 either way).",
        manifest_expected="a torch dtype name",
        doc_default="`float32`",
        doc="torch dtype the model is cast to before export (the blob is FP16 either way)",
        action_help="torch dtype the model is cast to before export (the blob is FP16 either way).",
        action_default="float32",
    ),
    Option(
        "model-class",
        "text",
        stage="load",
        metavar="MODULE:CLASS",
        help="Class to load a state dict into, e.g. mypackage.models:Detector (imported from the current directory).",
        manifest_expected='"package.module:ClassName"',
        doc_flag="MODULE:CLASS",
        doc_default="—",
        doc="class a state dict is loaded into",
        action_help="For a state dict or checkpoint, the class to load it into, as package.module:ClassName "
        "(imported from the workspace).",
        action_doc="as `--model-class`, imported from the workspace; refused for forks' pull requests under "
        "`pull_request_target`",
    ),
    Option(
        "trust-pickle",
        "flag",
        stage="load",
        default=False,
        help="Allow loading a full-model pickle. Loading one runs code from the file: only for files you trust.",
        doc_default="off",
        doc="allow a full-model pickle (runs code from the file)",
        action_help="Allow loading a full-model pickle, which runs code from the file. Never for models from "
        "pull requests of forks.",
        action_default="false",
        action_doc="as `--trust-pickle`; refused for forks' pull requests under `pull_request_target`",
    ),
    Option(
        "nshaves",
        "int",
        default=6,
        range=(1, 16),
        help="SHAVE cores the blob uses (1-16).",
        doc_default="`6`",
        doc="SHAVE cores the blob uses (1–16)",
        action_help="SHAVE cores the blob uses (1-16).",
        action_default="6",
    ),
    Option(
        "nslices",
        "int",
        range=(1, 16),
        help="CMX slices the blob uses (1-16, at least --nshaves).  [default: same as --nshaves]",
        doc_default="same as `--nshaves`",
        doc="CMX slices (must be at least `--nshaves`)",
        action_help="CMX slices the blob uses (1-16, at least nshaves). Default is nshaves.",
        action_doc_default="`nshaves`",
    ),
    Option(
        "nstreams",
        "int",
        default=1,
        range=(1, 3),
        help="Throughput streams (1-3).",
        doc_default="`1`",
        doc="throughput streams (1–3)",
        action_help="Throughput streams (1-3).",
        action_default="1",
    ),
    Option(
        "compile-config",
        "text",
        multiple=True,
        metavar="KEY=VALUE",
        help="A setting of the 2021.4 Myriad plugin for the compile (repeated), e.g. MYRIAD_TILING_CMX_LIMIT_KB=512 "
        "or MYRIAD_ENABLE_HW_ACCELERATION=NO; the README lists the keys.",
        manifest_expected='a string "KEY=VALUE" or a list of them',
        doc_flag="KEY=VALUE",
        doc_default="none",
        doc="a setting of the 2021.4 Myriad plugin for the compile, repeated (the keys that change a blob: "
        "[Compiler settings](#compiler-settings)); checked before anything runs, recorded in the report and "
        "the cache key",
        action_help="Settings of the 2021.4 Myriad plugin for the compile, one KEY=VALUE per line (for example "
        "MYRIAD_TILING_CMX_LIMIT_KB=512).",
        action_doc="as `--compile-config`; one `KEY=VALUE` per line",
    ),
    Option(
        "opset",
        "int",
        stage="export",
        range=(7, 18),
        help="ONNX opset for the PyTorch export (7-18).  [default: 14, falling back to 16, 13, 12, 11, 17, 18 "
        "when the exporter fails]",
        doc_default="`14`, then 16, 13, 12, 11, 17, 18",
        doc="ONNX opset for the PyTorch export (7–18); without it the exporter tries these in turn and the report "
        "says why one failed",
        action_help="ONNX opset to export PyTorch models at (a whole number); empty chooses automatically.",
        action_doc_default="automatic",
        action_doc="as `--opset`: the ONNX opset PyTorch models are exported at",
    ),
    Option(
        "new-export",
        "flag",
        stage="export",
        default=False,
        surfaces=_CLI_MANIFEST,
        help="Use the torch.export-based ONNX exporter instead of the TorchScript one.",
        doc_default="off",
        doc="use the `torch.export`-based ONNX exporter instead of the TorchScript one",
    ),
    Option(
        "frontend",
        "choice",
        stage="ir",
        default="auto",
        choices=("auto", *FRONTEND_TITLES),
        help="IR front end: ov2022 (OpenVINO 2022.3.1's ONNX reader), mo2021 (Model Optimizer 2021.4), "
        "or auto: ov2022, falling back to mo2021 when it fails.",
        manifest_expected='"auto", "ov2022" or "mo2021"',
        doc_default="`auto`",
        doc="IR front end: `ov2022` (OpenVINO 2022.3.1's ONNX reader), `mo2021` (Model Optimizer 2021.4), or "
        "`auto`: `ov2022`, falling back to `mo2021` when it fails (the report says which made the IR, and why)",
        action_help="How the IR is made - auto, ov2022 (OpenVINO 2022.3 ONNX reader) or mo2021 (Model Optimizer "
        "2021.4); auto tries the first, then the second.",
        action_default="auto",
        action_doc="as `--frontend`: `auto`, `ov2022` or `mo2021`",
    ),
    Option(
        "output-names",
        "text",
        stage="ir.prepare",
        multiple=True,
        metavar="NAME,...",
        action_lines=False,
        help="Convert only up to these ONNX tensors (comma-separated or repeated), e.g. to cut a detector "
        "before its decode/NMS.",
        manifest_expected='a string "name1,name2" or a list of tensor names',
        doc_flag="NAME,...",
        doc_default="the model's outputs",
        doc="convert only up to these ONNX tensors (comma-separated or repeated), e.g. a detector's per-scale head "
        "outputs before decode and NMS; tensor names are in the report's `onnx` section and in Netron",
        action_help="Comma-separated names of the tensors to use as the model's outputs (empty keeps the model's own).",
        action_doc_default="—",
        action_doc="as `--output-names`: comma-separated tensor names to use as the outputs",
    ),
    Option(
        "name-outputs",
        "text",
        stage="export",
        multiple=True,
        metavar="NAME,...",
        action_lines=False,
        help="Names for a PyTorch model's outputs, in order (comma-separated or repeated), e.g. 'semi,desc'; "
        "a model that returns a dict is named by its keys.  [default: output, or output0, output1, ...]",
        manifest_expected='a string "name1,name2" or a list of output names',
        doc_flag="NAME,...",
        doc_default="the dict's keys, else `output`/`output0`, ...",
        doc="names for a PyTorch model's outputs, in order (the blob's output names, which depthai reads); a model "
        "that returns a dict gets its keys; ONNX models keep their own names",
        action_help="Comma-separated names for a PyTorch model's outputs, in order (empty keeps the dict's keys, "
        "or output, output0, output1, ...).",
        action_doc_default="—",
        action_doc="as `--name-outputs`: comma-separated names for a PyTorch model's outputs",
    ),
    Option(
        "compile-timeout",
        "float",
        default=DEFAULT_COMPILE_TIMEOUT_S,
        help="Seconds the Myriad compiler may run before it is stopped (exit 13).",
        manifest_expected="a number of seconds",
        doc_default="`600`",
        doc="seconds the Myriad compiler may run before it is stopped (exit 13); the slowest corpus model compiles "
        "in about 4 s",
        action_help="Seconds the Myriad compiler may run before the conversion fails.",
        action_default="600",
        action_doc="as `--compile-timeout`: seconds the compiler may run",
    ),
    Option(
        "report",
        "path",
        surfaces=frozenset({CLI}),
        help="Where to write the JSON report (Markdown beside it, .md). Default: <blob>.report.json.",
        doc_flag="PATH",
        doc_default="`<blob>.report.json`",
        doc="the JSON report; the Markdown report goes beside it with `.md`",
    ),
    Option(
        "sample",
        "path",
        surfaces=_CLI_MANIFEST,
        multiple=True,
        metavar="[NAME=]PATH",
        help="An image (resized to the input) or .npy array (exact shape) for the numeric check's first input; "
        "'name=PATH' for another input (repeated). "
        "Default: a real photograph with printed text (public domain; shipped with myriad-blob).",
        manifest_expected="a path, or a list of paths and 'name=path' strings",
        doc_flag="[NAME=]PATH",
        doc_default="the check photo",
        doc="an image (resized to the input) or `.npy` array (exact input shape) for the numeric check's first input; "
        "`name=PATH` for another input (repeated)",
    ),
    Option(
        "strict",
        "flag",
        default=False,
        help="Fail (exit 14) unless the report's verdict would be passed (a numeric miss, an FP16 warning), "
        "instead of warning.",
        doc_default="off",
        doc="fail (exit 14) unless the report's verdict would be `passed` (an output that misses, "
        "an FP16 overflow, near overflow or underflow), instead of warning",
        action_help="Fail unless the report's verdict is passed (the blob's numbers differ from the original "
        "model's, or FP16 overflows on the device), instead of warning.",
        action_default="false",
        action_doc="as `--strict`: fail when the numeric check misses",
    ),
    Option(
        "max-relative-error",
        "float",
        default=0.02,
        range=(0.0, float("inf")),
        help="Numeric check: largest allowed |IR - original| relative to the output's largest magnitude.",
        doc_default="`0.02`",
        doc="numeric check: largest allowed error, relative to the output's largest magnitude",
        action_help="Numeric check tolerance, the largest relative error of any output (as --max-relative-error).",
        action_default="0.02",
        action_doc="as `--max-relative-error`: numeric check tolerance",
    ),
    Option(
        "min-cosine",
        "float",
        default=0.999,
        range=(-1.0, 1.0),
        help="Numeric check: smallest allowed cosine similarity of IR and original outputs.",
        doc_default="`0.999`",
        doc="numeric check: smallest allowed cosine similarity per output",
        action_help="Numeric check tolerance, the smallest cosine similarity of any output (as --min-cosine).",
        action_default="0.999",
        action_doc="as `--min-cosine`: numeric check tolerance",
    ),
    Option(
        "target-fps",
        "float",
        range=(0.01, 10000.0),
        metavar="FPS",
        help="Frame rate the blob should reach on the camera: warn (exit 14 with --strict) when the speed "
        "estimate falls short, naming the SHAVE count or input size that would reach it.",
        doc_flag="FPS",
        doc_default="none",
        doc="frame rate the blob should reach on an RVC2 camera (8 SHAVEs' published figures calibrate the "
        "estimate): a warning, exit 14 with `--strict`, when the estimate falls short, naming the `--nshaves` "
        "or input size that would reach it",
        action_help="Frame rate the blob should reach on the camera (as --target-fps); empty: no target.",
        action_doc_default="none",
        action_doc="as `--target-fps`: warn when the speed estimate falls short",
    ),
    Option(
        "nn-archive",
        "flag",
        default=False,
        help="Also write a depthai NN Archive (<blob name>.tar.xz: config.json and the blob) beside the blob.",
        doc_default="off",
        doc="also write a depthai NN Archive, `<blob name>.tar.xz`, beside the blob",
        action_help="Also write a depthai NN Archive (<blob name>.tar.xz) beside the blob and upload it to the release.",
        action_default="false",
        action_doc="as `--nn-archive`: also write (and upload) `<blob name>.tar.xz` for depthai",
    ),
    Option(
        "superblob",
        "flag",
        default=False,
        surfaces=frozenset({CLI}),
        help="Also write <blob name>.superblob: one file depthai unpacks for any of 1-16 SHAVEs.",
        doc_default="off",
        doc="also write `<blob name>.superblob`, depthai's one file for 1–16 SHAVEs",
    ),
    Option(
        "cache-dir",
        "path",
        surfaces=_CLI_ACTION,
        param="",
        help="Content-addressed cache of converted blobs.  [default: $MYRIAD_BLOB_CACHE_DIR or "
        "~/.cache/myriad-blob/blobs]",
        doc_default="`~/.cache/myriad-blob/blobs`",
        doc="the content-addressed blob cache (also `$MYRIAD_BLOB_CACHE_DIR`)",
        action_help="Directory of the blob cache (relative to the workspace, so actions/cache can keep it). "
        "Empty - no cache with model, the default cache with manifest.",
        action_doc_default="none (`manifest`: the default cache)",
        action_doc="the blob cache's directory; inside the workspace to keep it with `actions/cache` "
        "(see the cache above)",
    ),
    Option(
        "no-cache",
        "flag",
        default=False,
        surfaces=frozenset({CLI}),
        param="",
        help="Convert even when the cache holds this exact conversion.",
        doc_default="off",
        doc="convert even when the cache holds this exact conversion",
    ),
    Option(
        "debug",
        "flag",
        default=False,
        surfaces=frozenset({CLI}),
        param="",
        help="Show Python tracebacks.",
        doc_default="off",
        doc="show Python tracebacks for internal errors",
    ),
    Option(
        "comment-from",
        "text",
        surfaces=frozenset({ACTION}),
        param="",
        action_help="In a workflow_run workflow: the JSON report a pull_request workflow's run of this action "
        "uploaded as an artifact. The action comments it on that run's pull request and converts nothing "
        "(the safe pattern for forks' pull requests; see the README).",
        action_doc_default="none (convert)",
        action_doc="in a `workflow_run` workflow, the report JSON a `pull_request` run uploaded: comment it on "
        "that run's pull request, load no model (see [Pull requests from forks](#pull-requests-from-forks))",
    ),
    Option(
        "github-token",
        "text",
        surfaces=frozenset({ACTION}),
        param="",
        action_help="Token for commenting and uploading; needs pull-requests write to comment and contents write "
        "to upload.",
        action_default="${{ github.token }}",
        action_doc="token for commenting and uploading",
    ),
    Option(
        "comment-on-pr",
        "flag",
        default=True,
        surfaces=frozenset({ACTION}),
        param="",
        action_help="On pull requests, post the report as one comment per model, edited in place on every run.",
        action_default="true",
        action_doc="comment the report on pull requests",
    ),
    Option(
        "upload-to-release",
        "flag",
        default=True,
        surfaces=frozenset({ACTION}),
        param="",
        action_help="On a published release or a pushed tag, upload the blob and reports as release assets.",
        action_default="true",
        action_doc="upload the blob and reports to the release",
    ),
    Option(
        "release-tag",
        "text",
        surfaces=frozenset({ACTION}),
        param="",
        action_help="Upload to the release of this tag instead of the one the event names (on any event but a "
        "pull request's).",
        action_doc_default="from the event",
        action_doc="upload to this tag's release instead (on any event but a pull request's, e.g. a push to "
        "`main` into a `nightly` release)",
    ),
)


def _family_options(declarations: list[dict]) -> tuple[Option, ...]:
    """The option rows the model families declare (families/*/family.toml: data, so this module
    reads them without importing the families above it)."""
    listed = {"surfaces": frozenset, "choices": tuple, "range": tuple, "renamed_from": tuple}
    return tuple(
        Option(**{key: listed[key](value) if key in listed else value for key, value in row.items()})
        for declaration in declarations
        for row in declaration.get("option", ())
    )


# Each model family's declaration (families/<family>/family.toml): its report key and its options.
FAMILY_DECLARATIONS = [
    tomllib.loads(path.read_text()) for path in sorted((Path(__file__).parent / "families").glob("*/family.toml"))
]
FAMILY_KEYS = tuple(declaration["key"] for declaration in FAMILY_DECLARATIONS)
FAMILY_OPTIONS = _family_options(FAMILY_DECLARATIONS)
# The families' rows follow the load stage's own (the stage that reads them: the family's loader).
_AFTER = max(i for i, option in enumerate(OPTIONS) if option.stage == "load") + 1
OPTIONS = OPTIONS[:_AFTER] + FAMILY_OPTIONS + OPTIONS[_AFTER:]
BY_NAME = {option.name: option for option in OPTIONS}
# Old name -> the option it now is (Option.renamed_from).
RENAMED = {old: option for option in OPTIONS for old in option.renamed_from}


def stage_options(stage: str) -> tuple[str, ...]:
    """The ConversionOptions fields the stage reads (its own, not its predecessors'). stage: one of
    errors.SHARED_STEPS, the steps whose results a batch shares between variants: a step's result
    depends on the options it reads and on everything before it (pipeline.Conversion keys them so)."""
    assert stage in SHARED_STEPS, stage
    return tuple(option.field for option in OPTIONS if option.stage == stage)


def stage_key(options: ConversionOptions, stage: str) -> tuple:
    """The values of the options the stage reads: with its predecessors' keys, what says two
    variants can share the stage's result."""
    return (stage, *(getattr(options, key) for key in stage_options(stage)))


def option_default(name: str):
    return BY_NAME[name].default


# The options set per tensor ("VALUE" for every tensor, "name=VALUE" for one): their value for
# every tensor when none is given. Layouts are of 4-D tensors (compile_tool's -il/-ol alike). The
# input type's None: by input, U8 for an image and FP16 for any other (compile.INPUT_TYPE_DEFAULTS).
PER_TENSOR_DEFAULTS = {"input_type": None, "output_type": "FP16", "input_layout": "NCHW", "output_layout": "NCHW"}


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
    reverse_input_channels: bool = option_default("reverse-input-channels")
    # every input's, but those named in input_type_by_name; None: by input (compile.input_precisions)
    input_type: str | None = PER_TENSOR_DEFAULTS["input_type"]
    output_type: str = PER_TENSOR_DEFAULTS["output_type"]
    input_layout: str = PER_TENSOR_DEFAULTS["input_layout"]
    output_layout: str = PER_TENSOR_DEFAULTS["output_layout"]
    input_type_by_name: dict[str, str] = dataclasses.field(default_factory=dict)  # --input-type name=TYPE
    output_type_by_name: dict[str, str] = dataclasses.field(default_factory=dict)
    input_layout_by_name: dict[str, str] = dataclasses.field(default_factory=dict)
    output_layout_by_name: dict[str, str] = dataclasses.field(default_factory=dict)
    mean: dict[str | None, tuple[float, ...]] = dataclasses.field(default_factory=dict)
    scale: dict[str | None, tuple[float, ...]] = dataclasses.field(default_factory=dict)
    model_key: str | None = None  # None: load.CHECKPOINT_KEYS
    model_dtype: str = option_default("model-dtype")
    model_class: str | None = None
    trust_pickle: bool = option_default("trust-pickle")
    nshaves: int = option_default("nshaves")
    nslices: int = option_default("nshaves")  # parse_options: same as nshaves
    nstreams: int = option_default("nstreams")
    compile_config: dict[str, str] = dataclasses.field(default_factory=dict)  # --compile-config, by key
    opset: int | None = None  # None: the policy in export_onnx.OPSET_PREFERENCE
    new_export: bool = option_default("new-export")
    frontend: str = option_default("frontend")
    output_names: tuple[str, ...] = ()
    name_outputs: tuple[str, ...] = ()  # a PyTorch model's output names, in order
    compile_timeout: float = option_default("compile-timeout")
    report: Path | None = None
    sample: Path | None = None  # --sample PATH: the model's first input
    sample_by_name: dict[str, Path] = dataclasses.field(default_factory=dict)  # --sample name=PATH
    strict: bool = option_default("strict")
    max_relative_error: float = option_default("max-relative-error")
    min_cosine: float = option_default("min-cosine")
    target_fps: float | None = None  # --target-fps: the speed estimate's goal (speed.py)
    nn_archive: bool = option_default("nn-archive")
    superblob: bool = option_default("superblob")

    @property
    def samples(self) -> dict[str | None, Path]:
        """Every --sample by input name (None: the model's first input)."""
        return ({None: self.sample} if self.sample else {}) | self.sample_by_name

    @property
    def report_json(self) -> Path:
        return self.report if self.report else self.output.with_name(self.output.name + ".report.json")

    @property
    def nn_archive_path(self) -> Path:
        return self.output.with_name(self.output.stem + ".tar.xz")

    @property
    def depthai_json_path(self) -> Path:
        """depthai v2's JSON (nn_config and labels) beside the blob, for a model family that gives one."""
        return self.output.with_suffix(".json")

    @property
    def superblob_path(self) -> Path:
        return self.output.with_name(self.output.stem + ".superblob")

    @property
    def report_markdown(self) -> Path | None:
        """Beside the JSON report; None when the JSON goes to a stream, a device or a FIFO."""
        return None if is_stream(self.report_json) else self.report_json.with_suffix(".md")

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["input"], data["output"] = str(self.input), str(self.output)
        data["report"] = str(self.report_json)
        data["sample"] = str(self.sample) if self.sample else None
        data["sample_by_name"] = {name: str(path) for name, path in self.sample_by_name.items()}
        data["input_shapes"] = [{"name": s.name, "shape": list(s.shape)} for s in self.input_shapes]
        data["output_names"] = list(self.output_names)
        data["name_outputs"] = list(self.name_outputs)
        data["mean"] = {k or "": list(v) for k, v in self.mean.items()}
        data["scale"] = {k or "": list(v) for k, v in self.scale.items()}
        return data


# The model families' options are fields of the same class (families/*/family.toml): a dataclass
# extended with them, under the same name, so replace(), asdict(), pickling and the table's checks
# see one ConversionOptions.
ConversionOptions = dataclasses.make_dataclass(
    "ConversionOptions",
    [(option.field, Any, dataclasses.field(default=option.default)) for option in FAMILY_OPTIONS],
    bases=(ConversionOptions,),
    frozen=True,
)
ConversionOptions.__module__ = __name__
ConversionOptions.__doc__ = "The options of one conversion: the table's fields, the model families' included."


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
    too_large = input_too_large(dims)  # refused before anything of that size is allocated
    if too_large:
        raise ValueError(f"--input-shape {too_large}: give a smaller shape")
    return InputSpec(name, tuple(dims))


def parse_per_channel(text: str, flag: str) -> tuple[str | None, tuple[float, ...]]:
    """Parse '[123.675, 116.28, 103.53]' or 'input=[...]' for --mean and --scale."""
    name, rest = _split_named(text)
    values = _literal_list(rest, flag)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{flag} values must be numbers, got {rest!r}")
    if not all(math.isfinite(v) and abs(v) <= FP16_MAX for v in values):
        raise ValueError(
            f"{flag} values must lie within FP16's range (±{FP16_MAX:g}), as the blob computes in FP16; got {rest!r}"
        )
    if flag == "--scale" and any(abs(v) < 1 / FP16_MAX for v in values):
        raise ValueError(f"--scale values divide the input and must not be 0 (or below 1/{FP16_MAX:g}); got {rest!r}")
    return name, tuple(float(v) for v in values)


def default_output(input: Path) -> Path:
    """The input's name with .blob, in the current directory."""
    return Path(Path(input).stem + ".blob")


def parse_output_names(value, flag: str = "--output-names") -> tuple[str, ...]:
    """'a,b' or ['a', 'b'] (or both mixed) -> ('a', 'b')."""
    items = [value] if isinstance(value, str) else list(value or ())
    names = tuple(name.strip() for item in items for name in str(item).split(",") if name.strip())
    if len(set(names)) != len(names):
        raise ValueError(f"{flag} lists a name twice: {', '.join(names)}")
    return names


def parse_options(
    *,
    input: Path,
    output: Path | None = None,
    input_shapes=(),
    means=(),
    scales=(),
    nshaves: int = 6,
    nslices: int | None = None,
    output_names=(),
    name_outputs=(),
    **rest,
) -> ConversionOptions:
    """ConversionOptions from the user's strings (CLI flags or action inputs); ValueError says what is wrong."""
    for key in (
        "frontend",
        "compile_timeout",
        *(option.key for option in FAMILY_OPTIONS),
    ):  # None: the default (an empty action input, a missing field)
        if key in rest and rest[key] is None:
            del rest[key]
    for key in PER_TENSOR_DEFAULTS:  # "U8", or ["U8", "state=FP16"]: every tensor's value and the named ones'
        if key in rest:
            rest[key], rest[key + "_by_name"] = parse_per_tensor(rest[key], BY_NAME[key.replace("_", "-")])
    if "sample" in rest:
        rest["sample"], rest["sample_by_name"] = parse_samples(rest["sample"])
    if "compile_config" in rest:
        rest["compile_config"] = parse_compile_config(rest["compile_config"])
    for option in OPTIONS:  # choices (precisions, front ends), case-insensitive, kept in the table's case
        if option.choices and option.key in rest and not option.multiple:
            rest[option.key] = _choice(option, rest[option.key])
    timeout = rest.get("compile_timeout")
    # inf passed `> 0` and then overflowed the subprocess timeout (OverflowError); nan fails `> 0` anyway.
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"--compile-timeout must be a finite number of seconds above 0, got {timeout}")
    values = {"nshaves": nshaves, "nslices": nslices, **rest}
    for option in OPTIONS:
        value, (low, high) = values.get(option.key), option.range or (None, None)
        if option.range and value is not None and not low <= value <= high:
            bounds = f"at least {low:g}" if high == float("inf") else f"between {low:g} and {high:g}"
            raise ValueError(f"--{option.name} must be {bounds}, got {value}")
    if nslices is not None and nshaves > nslices:
        raise ValueError(
            f"--nshaves {nshaves} is more than --nslices {nslices}: "
            "the compiler needs at least as many CMX slices as SHAVEs"
        )
    if parse_output_names(output_names) and parse_output_names(name_outputs, "--name-outputs"):
        raise ValueError(
            "--name-outputs names a PyTorch model's own outputs, but --output-names replaces them with the "
            "tensors it cuts at, whose names the blob keeps: give one of the two"
        )
    specs = tuple(parse_input_shape(text) for text in input_shapes)
    if len(specs) > 1 and any(spec.name is None for spec in specs):
        raise ValueError("with several --input-shape values, name each one: --input-shape 'name=[...]'")
    mean, scale = _per_channel(means, "--mean"), _per_channel(scales, "--scale")
    # Unnamed values go with the only input; named ones with the shape of that name (a ValueError).
    fit_preprocessing(mean, scale, False, {spec.name: spec.shape for spec in specs}, model=False)
    return ConversionOptions(
        input=Path(input),
        output=Path(output) if output else default_output(input),
        input_shapes=specs,
        mean=mean,
        scale=scale,
        output_names=parse_output_names(output_names),
        name_outputs=parse_output_names(name_outputs, "--name-outputs"),
        nshaves=nshaves,
        nslices=nslices or nshaves,
        **rest,
    )


def parse_samples(values) -> tuple[Path | None, dict[str, Path]]:
    """--sample: "PATH" (the model's first input) and "name=PATH" (that input, repeated) ->
    (PATH, {"name": PATH}). Input names may hold "/" ("gpu_0/data_0"): a value with "=" is
    name=PATH unless it is an existing file's path. ValueError for an input given two samples."""
    items = [values] if isinstance(values, (str, Path)) else list(values or ())
    first, named = None, {}
    for text in items:
        name, equals, path = str(text).partition("=")
        if not equals or not name.strip() or not path or Path(text).exists():
            if first is not None:
                raise ValueError("--sample is given twice for the first input: name the input one is for, 'name=PATH'")
            first = Path(text)
        elif named.setdefault(name.strip(), Path(path)) != Path(path):
            raise ValueError(f"--sample is given twice for {name.strip()!r}")
    return first, named


def _choice(option: Option, given: str) -> str:
    """given, case-insensitively one of option.choices, in the table's case; ValueError if not."""
    match = next((choice for choice in option.choices if choice.lower() == str(given).strip().lower()), None)
    if match is None:
        raise ValueError(
            f"--{option.name} must be one of {', '.join(option.choices)}{option.choices_note}, got {given!r}"
        )
    return match


def parse_per_tensor(values, option: Option) -> tuple[str | None, dict[str, str]]:
    """An option set per tensor: "U8" (a bare value: every tensor's) and "name=FP16" (one tensor's,
    repeated; it wins over the bare value) -> ("U8", {"name": "FP16"}). No bare value: the
    default. ValueError for a value outside the choices, or one given twice."""
    items = [values] if isinstance(values, str) else list(values or ())
    every, named = None, {}
    for text in items:
        name, equals, value = str(text).rpartition("=")  # tensor names may hold anything but a trailing =
        name = name.strip()
        if equals and not name:
            raise ValueError(f"--{option.name} {text!r} names no tensor: give 'name=VALUE', or a bare value for all")
        value = _choice(option, value)
        if not equals:
            if every is not None and every != value:
                raise ValueError(
                    f"--{option.name} is given twice for every tensor ({every}, {value}): "
                    f"name the tensor one is for, 'name={value}'"
                )
            every = value
        elif named.setdefault(name, value) != value:
            raise ValueError(f"--{option.name} is given twice for {name!r} ({named[name]}, {value})")
    return every or PER_TENSOR_DEFAULTS[option.key], dict(sorted(named.items()))


def _per_channel(values, flag: str) -> dict:
    table = {}
    for text in values:
        name, numbers = parse_per_channel(text, flag)
        if name in table:
            raise ValueError(f"{flag} given twice for {'input ' + name if name else 'the input'}")
        table[name] = numbers
    return table
