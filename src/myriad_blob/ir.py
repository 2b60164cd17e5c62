"""Stage 3, IR: ONNX -> OpenVINO IR v10 (FP16 weights) that the 2021.4 Myriad compiler reads.

Two front ends, each in a child process:
- ov2022: OpenVINO 2022.3.1's C++ ONNX reader (toolchain/scripts/ov2022_ir.py), legalized for the 2021.4
  compiler by one table of rewrites. Fast (well under a second) and reads current exports
  (opset 13-17, dynamic axes).
- mo2021: Model Optimizer 2021.4, the fallback (--frontend auto tries ov2022 first).
Either IR must then be readable by the 2021.4 IR reader, or this stage fails (or falls back). The preprocessing the camera should not do on the host is baked in here,
in the order the numeric check assumes: reversed input channels, then mean, then scale.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path

from . import toolchain as toolchain_module
from .artifacts import IRLayer, IRModel, OnnxModel, TensorInfo
from .errors import ConversionError, Stage
from .options import FRONTEND_ORDER, FRONTEND_TITLES, ConversionOptions
from .preprocessing import PreprocessingMisfit, fit_preprocessing, input_name
from .rules.advice import READER_OPSETS, REFUSED
from .toolchain import FrontendWorker, LegacyWorker, Toolchain, WorkerDied, describe_exit, helper_error


@dataclasses.dataclass(frozen=True)
class FrontEnd:
    """An IR front end: make_ir(onnx_model, options, toolchain, workdir, workers) -> IRModel, where
    workers = (legacy worker, 2022.3 front-end worker), each None outside a batch; tools(toolchain)
    -> the versions the report's IR stage names."""

    name: str  # --frontend's value
    title: str
    make_ir: Callable
    tools: Callable


def _registry() -> dict:
    return {
        frontend.name: frontend
        for frontend in (
            FrontEnd(
                "ov2022",
                FRONTEND_TITLES["ov2022"],
                lambda model, options, toolchain, workdir, workers: _ov2022_ir(
                    model, options, toolchain, workdir, workers[1]
                ),
                lambda toolchain: {"openvino": toolchain.versions.get("openvino_frontend")},
            ),
            FrontEnd(
                "mo2021",
                FRONTEND_TITLES["mo2021"],
                lambda model, options, toolchain, workdir, workers: _model_optimizer_ir(
                    model, options, toolchain, workdir, workers[0]
                ),
                lambda toolchain: {
                    "model-optimizer": toolchain.versions.get("openvino_dev"),
                    "legacy-python": toolchain.versions.get("legacy_python"),
                },
            ),
        )
    }


IR_TIMEOUT_S = 900  # Model Optimizer 2021.4 took 30 s on a 4.7 MB net; this is only a safety net


def _fail(message: str) -> ConversionError:
    return ConversionError(Stage.IR, message)


def _resolve_name(name: str | None, onnx_model: OnnxModel, flag: str) -> str:
    try:
        return input_name(name, [t.name for t in onnx_model.inputs], flag)
    except PreprocessingMisfit as misfit:
        raise _fail(misfit.message) from None


def _format_values(values) -> str:
    return "[" + ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values) + "]"


def model_optimizer_args(onnx_model: OnnxModel, options: ConversionOptions, output_dir: Path) -> tuple[list[str], dict]:
    args = [
        "--input_model",
        str(onnx_model.path),
        "--output_dir",
        str(output_dir),
        "--model_name",
        "model",
        "--data_type",
        "FP16",
    ]
    if options.input_shapes:
        names = [_resolve_name(s.name, onnx_model, "--input-shape") for s in options.input_shapes]
        args += [
            "--input",
            ",".join(names),
            "--input_shape",
            ",".join(_format_values(s.shape) for s in options.input_shapes),
        ]
    preprocessing = resolve_preprocessing(onnx_model, options)
    for key, mo_flag in (("mean", "--mean_values"), ("scale", "--scale_values")):
        if preprocessing[key]:
            args += [
                mo_flag,
                ",".join(f"{name}{_format_values(values)}" for name, values in preprocessing[key].items()),
            ]
    if options.reverse_input_channels:
        args.append("--reverse_input_channels")
    return args, preprocessing


def resolve_preprocessing(onnx_model: OnnxModel, options: ConversionOptions) -> dict:
    """Mean and scale by input name (an unnamed value is the only input's), and channel reversal."""
    try:
        return fit_preprocessing(
            options.mean,
            options.scale,
            options.reverse_input_channels,
            {t.name: tuple(t.shape) for t in onnx_model.inputs},
        )
    except PreprocessingMisfit as misfit:
        raise ConversionError(Stage.IR if misfit.naming else Stage.OPTIONS, misfit.message) from None


def convert_to_ir(
    prepared_for,
    options: ConversionOptions,
    toolchain: Toolchain,
    workdir: Path,
    worker: LegacyWorker | None = None,
    frontend_worker: FrontendWorker | None = None,
) -> IRModel:
    """The IR from the first front end (in --frontend's order) whose IR the 2021.4 plugin reads.
    prepared_for(frontend) gives the ONNX model prepared for that front end (onnx_prep)."""
    failures = []
    for frontend in FRONTEND_ORDER[options.frontend]:
        onnx_model = prepared_for(frontend).model
        # A wrong input name is the user's to fix, not a reason to try another front end.
        resolve_preprocessing(onnx_model, options)
        try:
            ir = FRONTENDS[frontend].make_ir(
                onnx_model, options, toolchain, workdir / frontend, (worker, frontend_worker)
            )
            validate_ir(ir, toolchain)
            ir = dataclasses.replace(ir, frontend=frontend)
        except ConversionError as error:
            failures.append((frontend, error.message))
            continue
        if failures:
            ir = dataclasses.replace(
                ir, frontend_fallback="; ".join(f"{FRONTENDS[f].title} failed: {m}" for f, m in failures)
            )
        return ir
    if len(failures) == 1:
        raise _fail(failures[0][1])
    raise _fail(" and ".join(f"{FRONTENDS[f].title} failed: {m}" for f, m in failures))


def _ov2022_ir(
    onnx_model: OnnxModel,
    options: ConversionOptions,
    toolchain: Toolchain,
    workdir: Path,
    worker: FrontendWorker | None,
) -> IRModel:
    workdir.mkdir(parents=True, exist_ok=True)
    preprocessing = resolve_preprocessing(onnx_model, options)
    xml = workdir / "model.xml"
    job = {
        "onnx": str(onnx_model.path),
        "xml": str(xml),
        "inputs": [t.name for t in onnx_model.inputs],
        "outputs": [t.name for t in onnx_model.outputs],
        "mean": preprocessing["mean"],
        "scale": preprocessing["scale"],
        "reverse_input_channels": options.reverse_input_channels,
    }
    if worker is not None:
        try:
            answer = worker.ask(job, IR_TIMEOUT_S)
        except WorkerDied as error:
            raise _fail(f"OpenVINO 2022.3 {error} while reading the model") from None
    else:
        try:
            result = toolchain.run(
                [str(toolchain.frontend_python), str(toolchain_module.FRONTEND_SCRIPT), json.dumps(job)],
                timeout=IR_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise _fail(f"OpenVINO 2022.3 did not finish reading the model within {IR_TIMEOUT_S} s") from None
        lines = result.stdout.strip().splitlines()
        if result.returncode != 0 or not lines:
            last = (result.stderr.strip().splitlines() or [""])[-1]
            raise _fail(f"OpenVINO 2022.3 {describe_exit(result.returncode, last)} while reading the model")
        answer = json.loads(lines[-1])
    if not answer["ok"]:
        raise _fail(explain_openvino_error(answer["error"]))
    ir = read_ir(xml, workdir / "model.bin", preprocessing)
    return dataclasses.replace(ir, rewrites=answer["rewrites"])


_OV_SOURCE = re.compile(r"(?:Check '[^']*' failed at )?\S+\.(?:cpp|hpp)(?::\d+)*:?\s*")


def explain_openvino_error(message: str) -> str:
    """OpenVINO's exception text without source paths and failed-check boilerplate, one line."""
    text = _OV_SOURCE.sub("", " ".join(message.split())).strip()
    return "OpenVINO 2022.3 could not read the model: " + (text[:400] or "no message")


def _model_optimizer_ir(
    onnx_model: OnnxModel, options: ConversionOptions, toolchain: Toolchain, workdir: Path, worker: LegacyWorker | None
) -> IRModel:
    output_dir = workdir / "ir"
    args, preprocessing = model_optimizer_args(onnx_model, options, output_dir)
    if worker is not None:
        returncode, output = worker.call("mo", timeout=IR_TIMEOUT_S, args=args)
    else:
        try:
            result = toolchain.run(toolchain.model_optimizer_command(args), timeout=IR_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise _fail(f"Model Optimizer 2021.4 did not finish within {IR_TIMEOUT_S} s") from None
        returncode, output = result.returncode, result.stdout + result.stderr
    xml, weights = output_dir / "model.xml", output_dir / "model.bin"
    if returncode != 0 or not xml.exists():
        raise _fail(explain_model_optimizer_error(output))
    return read_ir(xml, weights, preprocessing)


def validate_ir(ir: IRModel, toolchain: Toolchain) -> None:
    """Have the 2021.4 plugin's IR reader read the IR: one it rejects (an op version the
    legalization table does not cover yet, or Model Optimizer's IR for a wrong --input-shape)
    fails here, where --frontend auto can still try the other front end."""
    result = toolchain.run([str(toolchain.compile_helper), "read", str(ir.xml)])
    if result.returncode != 0:
        message = helper_error(result.stderr, result.returncode)
        hint = " (is --input-shape right?)" if _SHAPE_TROUBLE.search(message) else ""
        # The reader stops at the first layer of an op version it lacks: name them all.
        newer = [layer for layer in ir.layers if layer.version and layer.version not in READER_OPSETS]
        if len(newer) > 1 or (newer and "unsupported opset" in message):
            listed = ", ".join(f"`{layer.name}` ({layer.type}, {layer.version})" for layer in newer[:8])
            advice = "; ".join(
                dict.fromkeys(
                    f"{layer.type}: {REFUSED[layer.type].what}; {REFUSED[layer.type].fix}"
                    for layer in newer
                    if layer.type in REFUSED
                )
            )
            message = (
                f"{len(newer)} layer(s) use op versions it does not know: {listed}"
                + (f" ({advice})" if advice else " (no rewrite to an older version is known)")
                + f"; the reader: {message}"
            )
        raise _fail(f"the OpenVINO 2021.4 IR reader rejects the IR{hint}: {message}")


# Reader errors that can come from a wrong --input-shape (Model Optimizer writes an IR for any
# shape; the reader then finds the layers do not fit). An unsupported op version is not one.
_SHAPE_TROUBLE = re.compile(r"shape|dimension|channels|rank|mismatch|incompatible", re.IGNORECASE)


_NO_INFER = re.compile(r'no registered "infer" function for node "([^"]*)" with op = "([^"]*)"')
_UNSUPPORTED_OP = re.compile(r'(?:Unsupported|unsupported) (?:ONNX )?op(?:eration)?[^\n]*?"?([A-Za-z0-9_.:]+)"?')


def explain_model_optimizer_error(output: str) -> str:
    """One line from Model Optimizer's output that says what to change."""
    match = _NO_INFER.search(output)
    if match:
        node, op = match.groups()
        return (
            f"Model Optimizer 2021.4 does not support op {op} (node {node}): replace it in the model "
            "or export with another --opset"
        )
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
    producer = {
        (e.get("to-layer"), e.get("to-port")): (e.get("from-layer"), e.get("from-port")) for e in root.iter("edge")
    }
    layers, inputs, outputs = [], [], []
    for layer in by_id.values():
        name, kind = layer.get("name", ""), layer.get("type", "")
        layers.append(IRLayer(name, kind, layer.get("version", "")))
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
            source_ports = [p.get("id") for p in source.findall("output/port")]
            if len(source_ports) > 1:  # the 2021.4 reader appends the output's index, not its port id
                output_name += f".{source_ports.index(source_port)}"
            outputs.append(TensorInfo(output_name, shape, port.get("precision", "")))
    return IRModel(
        xml, weights, int(root.get("version", "0")), tuple(inputs), tuple(outputs), tuple(layers), preprocessing
    )


FRONTENDS: dict[str, FrontEnd] = _registry()  # the one registry of IR front ends, by --frontend's name
