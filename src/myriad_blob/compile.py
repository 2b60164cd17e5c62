"""Stage 4, compile: IR -> Myriad X blob with the plugin of OpenVINO 2021.4, no device attached.

The compiler decides what the Myriad X can run. The plugin's per-layer query is reported, but it
is not the compiler's verdict (it lists ShuffleChannels as unsupported, which compiles): only
when the compiler fails are the query's suspect layers named beside its message.
"""

from __future__ import annotations

import collections
import dataclasses
import subprocess
from pathlib import Path

from .errors import ConversionError, Stage
from .export_onnx import OnnxModel
from .ir import IRModel
from .options import ConversionOptions
from .rules.advice import explain_refused
from .toolchain import Toolchain, helper_error

QUERY_TIMEOUT_S = 60  # the query is for the report (~1 s for the corpus): it never holds a conversion up for long
# Layers the query does not list because they are not executed (weights, graph I/O plumbing).
_NOT_EXECUTED = {"Const", "Parameter", "Result"}


@dataclasses.dataclass(frozen=True)
class LayerSupport:
    total: int
    by_type: dict  # type -> {"count": n, "unsupported": m}
    unsupported: tuple  # ({"name", "type"}, ...)
    queried: bool = True  # False: the query itself failed, so nothing is known per layer

    def to_dict(self) -> dict:
        return {"total": self.total, "supported": self.total - len(self.unsupported) if self.queried else None,
                "queried": self.queried, "by_type": self.by_type, "unsupported": list(self.unsupported)}


@dataclasses.dataclass(frozen=True)
class CompiledBlob:
    path: Path
    settings: dict


def _fail(message: str) -> ConversionError:
    return ConversionError(Stage.COMPILE, message)


def _describe(layer: dict) -> str:
    text = f"{layer['name']} ({layer['type']})"
    if layer.get("onnx_node"):
        text += f" from ONNX node {layer['onnx_node']} ({layer['onnx_op']})"
    return text


# IR precisions of integer tensors (an ArgMax class map, TopK indices). The Myriad compiler
# gives such an output only S32 ("output #0 has type FP16, but one of [S32] is expected").
INTEGER_PRECISIONS = {"I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL"}


def integer_outputs(ir: IRModel | None) -> dict:
    """{output name: "I32"} for the IR's integer outputs: their blob precision whatever --output-type."""
    return {t.name: "I32" for t in (ir.outputs if ir else ()) if t.dtype.upper() in INTEGER_PRECISIONS}


def compile_settings(options: ConversionOptions, ir: IRModel | None = None) -> dict:
    return {
        "platform": "VPU_MYRIAD_2480",
        "input_type": options.input_type,
        "output_type": options.output_type,
        "tensor_types": integer_outputs(ir) if options.output_type != "ONNX" else {},
        "nshaves": options.nshaves,
        "nslices": options.nslices,
        "nstreams": options.nstreams,
    }


def start_query(ir: IRModel, toolchain: Toolchain) -> subprocess.Popen:
    """The plugin's per-layer query, started beside the compile (it takes as long as a small
    compile: ~0.7 s for ResNet-18, and the machine has a core to spare)."""
    return toolchain.start([str(toolchain.compile_helper), "query", str(ir.xml)])


def finish_query(query: subprocess.Popen, ir: IRModel, onnx_model: OnnxModel | None = None) -> LayerSupport:
    """What the query says (a query that fails marks every layer unknown, not a failed conversion)."""
    try:
        stdout, _ = query.communicate(timeout=QUERY_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        query.kill()
        query.communicate()
        return layer_support(ir, None, onnx_model)
    supported = frozenset(stdout.splitlines()) if query.returncode == 0 else None
    return layer_support(ir, supported, onnx_model)


def layer_support(ir: IRModel, supported: frozenset | None, onnx_model: OnnxModel | None = None) -> LayerSupport:
    counts: dict = collections.defaultdict(lambda: {"count": 0, "unsupported": 0})
    unsupported = []
    executed = [layer for layer in ir.layers if layer.type not in _NOT_EXECUTED]
    for layer in executed:
        counts[layer.type]["count"] += 1
        if supported is not None and layer.name not in supported:
            counts[layer.type]["unsupported"] += 1
            origin = onnx_model.origin(layer.name) if onnx_model else None
            unsupported.append({"name": layer.name, "type": layer.type, "onnx_node": origin and origin["node"],
                                "onnx_op": origin and origin["op"]})
    return LayerSupport(len(executed), dict(sorted(counts.items())), tuple(unsupported), supported is not None)


def compile_blob(ir: IRModel, support, options: ConversionOptions, toolchain: Toolchain,
                 blob_path: Path, origins: tuple = ()) -> CompiledBlob:
    """Compile (within --compile-timeout). On failure: every layer of a type the compiler refuses
    (rules/advice.py), named in the user's terms with what to change, then the compiler's own
    message; else the compiler's message and the query's suspects. support() gives the query's
    LayerSupport, asked for only when the compile fails. origins: the ONNX models whose node
    names the IR layers trace back to."""
    settings = compile_settings(options, ir)
    args = [str(toolchain.compile_helper), "compile", str(ir.xml), str(blob_path)]
    if options.input_type != "ONNX":
        args += ["-ip", options.input_type]
    if options.output_type != "ONNX":
        args += ["-op", options.output_type]
    if settings["tensor_types"]:
        args += ["-iop", ",".join(f"{name}:{precision}" for name, precision in settings["tensor_types"].items())]
    args += [f"MYRIAD_NUMBER_OF_SHAVES={options.nshaves}", f"MYRIAD_NUMBER_OF_CMX_SLICES={options.nslices}",
             f"MYRIAD_THROUGHPUT_STREAMS={options.nstreams}"]
    try:
        result = toolchain.run(args, fast_clock=True, timeout=options.compile_timeout)
    except subprocess.TimeoutExpired:
        blob_path.unlink(missing_ok=True)
        raise _fail(f"the Myriad compiler did not finish within {options.compile_timeout:g} s (--compile-timeout) "
                    f"and was stopped; the model may be too large for the Myriad X, or raise --compile-timeout") from None
    if result.returncode != 0 or not blob_path.exists():
        message = helper_error(result.stderr)
        refused = explain_refused([(layer.name, layer.type) for layer in ir.layers], lambda name: trace(name, origins),
                                  message)
        if refused:
            raise _fail(f"{refused} (the compiler: {message})")
        raise _fail("the Myriad compiler failed: " + message + _suspects(support()))
    settings["fast_clock"] = toolchain.faketime is not None
    return CompiledBlob(blob_path, settings)


def trace(layer_name: str, origins: tuple) -> dict | None:
    """The ONNX node an IR layer came from, in the first of origins that knows it."""
    return next((o for o in (model.origin(layer_name) for model in origins) if o), None)


def _suspects(support: LayerSupport) -> str:
    if not support.unsupported:
        return ""
    listed = ", ".join(_describe(layer) for layer in support.unsupported[:5])
    more = f" and {len(support.unsupported) - 5} more" if len(support.unsupported) > 5 else ""
    return f"; the plugin's query lists as unsupported: {listed}{more}"
