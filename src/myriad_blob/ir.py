"""Stage 3, IR: ONNX -> OpenVINO IR (FP16) with Model Optimizer 2021.4, in the legacy toolchain.

The preprocessing the camera should not do on the host is baked in here: mean, then scale,
then (on the original channel order) reversed input channels, exactly as `mo` applies them.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from .errors import ConversionError, Stage
from .export_onnx import OnnxModel
from .options import ConversionOptions
from .tensors import TensorInfo
from .toolchain import LegacyWorker, Toolchain, helper_error


@dataclasses.dataclass(frozen=True)
class IRLayer:
    name: str
    type: str


@dataclasses.dataclass(frozen=True)
class IRModel:
    xml: Path
    bin: Path
    version: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    layers: tuple[IRLayer, ...]
    preprocessing: dict
    myriad_supported: frozenset = frozenset()  # layer names the Myriad plugin's query accepts


def _fail(message: str) -> ConversionError:
    return ConversionError(Stage.IR, message)


def _resolve_name(name: str | None, onnx_model: OnnxModel, flag: str) -> str:
    names = [t.name for t in onnx_model.inputs]
    if name is None:
        if len(names) != 1:
            raise _fail(f"the model has inputs {', '.join(names)}: name the one {flag} is for, e.g. {flag} '{names[0]}=[...]'")
        return names[0]
    if name not in names:
        raise _fail(f"{flag} names input {name!r}, but the model's inputs are {', '.join(names)}")
    return name


def _format_values(values) -> str:
    return "[" + ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values) + "]"


def model_optimizer_args(onnx_model: OnnxModel, options: ConversionOptions, output_dir: Path) -> tuple[list[str], dict]:
    args = ["--input_model", str(onnx_model.path), "--output_dir", str(output_dir), "--model_name", "model",
            "--data_type", "FP16"]
    if options.input_shapes:
        names = [_resolve_name(s.name, onnx_model, "--input-shape") for s in options.input_shapes]
        args += ["--input", ",".join(names), "--input_shape", ",".join(_format_values(s.shape) for s in options.input_shapes)]
    preprocessing: dict = {"reverse_input_channels": options.reverse_input_channels, "mean": {}, "scale": {}}
    for flag, table, mo_flag in (("--mean", options.mean, "--mean_values"), ("--scale", options.scale, "--scale_values")):
        if table:
            resolved = {_resolve_name(name, onnx_model, flag): values for name, values in table.items()}
            preprocessing[flag.strip("-")] = {name: list(values) for name, values in resolved.items()}
            args += [mo_flag, ",".join(f"{name}{_format_values(values)}" for name, values in resolved.items())]
    if options.reverse_input_channels:
        args.append("--reverse_input_channels")
    return args, preprocessing


def convert_to_ir(onnx_model: OnnxModel, options: ConversionOptions, toolchain: Toolchain, workdir: Path,
                  worker: LegacyWorker | None = None) -> IRModel:
    output_dir = workdir / "ir"
    args, preprocessing = model_optimizer_args(onnx_model, options, output_dir)
    if worker is not None:
        returncode, output = worker.call("mo", args=args)
    else:
        result = toolchain.run(toolchain.model_optimizer_command(args))
        returncode, output = result.returncode, result.stdout + result.stderr
    xml, weights = output_dir / "model.xml", output_dir / "model.bin"
    if returncode != 0 or not xml.exists():
        raise _fail(explain_model_optimizer_error(output))
    ir = read_ir(xml, weights, preprocessing)
    return dataclasses.replace(ir, myriad_supported=query_myriad_support(ir, toolchain))


def query_myriad_support(ir: IRModel, toolchain: Toolchain) -> frozenset:
    """Have the Myriad plugin read the IR (Model Optimizer can write one that does not validate,
    e.g. for a wrong --input-shape) and say which layers it supports; no device needed."""
    result = toolchain.run([str(toolchain.compile_helper), "query", str(ir.xml)])
    if result.returncode != 0:
        raise _fail(f"the IR does not validate (is --input-shape right?): {helper_error(result.stderr)}")
    return frozenset(result.stdout.splitlines())


_NO_INFER = re.compile(r'no registered "infer" function for node "([^"]*)" with op = "([^"]*)"')
_UNSUPPORTED_OP = re.compile(r'(?:Unsupported|unsupported) (?:ONNX )?op(?:eration)?[^\n]*?"?([A-Za-z0-9_.:]+)"?')


def explain_model_optimizer_error(output: str) -> str:
    """One line from Model Optimizer's output that says what to change."""
    match = _NO_INFER.search(output)
    if match:
        node, op = match.groups()
        return (f"Model Optimizer 2021.4 does not support op {op} (node {node}): replace it in the model "
                "or export with another --opset")
    errors = [line.split("]", 1)[1].strip() for line in output.splitlines() if line.startswith("[ ERROR ]")]
    errors = [e for e in errors if e and not e.startswith(("---", "Traceback", "Detailed error"))]
    if errors:
        # The first error names the node; MO's follow-up lines are generic advice.
        return "Model Optimizer failed: " + errors[0]
    tail = [line for line in output.strip().splitlines() if line.strip()]
    return "Model Optimizer failed: " + (tail[-1] if tail else "no output")


def read_ir(xml: Path, weights: Path, preprocessing: dict) -> IRModel:
    root = ElementTree.parse(xml).getroot()
    by_id = {layer.get("id"): layer for layer in root.iter("layer")}
    producer = {(e.get("to-layer"), e.get("to-port")): (e.get("from-layer"), e.get("from-port")) for e in root.iter("edge")}
    layers, inputs, outputs = [], [], []
    for layer in by_id.values():
        name, kind = layer.get("name", ""), layer.get("type", "")
        layers.append(IRLayer(name, kind))
        if kind == "Parameter":
            data = layer.find("data")
            shape = tuple(int(d) for d in data.get("shape", "").split(",") if d)
            inputs.append(TensorInfo(name, shape, data.get("element_type", "")))
        elif kind == "Result":
            port = layer.find("input/port")
            shape = tuple(int(d.text) for d in port.findall("dim"))
            # The network output is named after the layer feeding the Result (and its port when it has several).
            source_id, source_port = producer[(layer.get("id"), port.get("id"))]
            source = by_id[source_id]
            output_name = source.get("name", "")
            if len(source.findall("output/port")) > 1:
                output_name += f".{source_port}"
            outputs.append(TensorInfo(output_name, shape, port.get("precision", "")))
    return IRModel(xml, weights, int(root.get("version", "0")), tuple(inputs), tuple(outputs), tuple(layers), preprocessing)
