"""Stage 4, compile: IR -> Myriad X blob with the plugin of OpenVINO 2021.4, no device attached.

The compiler decides what the Myriad X can run. The plugin's per-layer query is reported, but it
is not the compiler's verdict (it lists ShuffleChannels as unsupported, which compiles): only
when the compiler fails are the query's suspect layers named beside its message.
"""

from __future__ import annotations

import collections
import re
import subprocess
import tempfile
from pathlib import Path

from .artifacts import INTEGER_PRECISIONS, CompiledBlob, IRModel, LayerSupport, OnnxModel, is_image_shape
from .errors import ConversionError, Stage
from .options import ConversionOptions
from .rules.advice import explain_refused, module_path
from .rules.onnx_rules import row_split_matmuls
from .stage_graph import DUMP_CONFIG, DUMP_KEY, read_stage_graph
from .toolchain import Toolchain, helper_error

QUERY_TIMEOUT_S = 60  # the query is for the report (~1 s for the corpus): it never holds a conversion up for long
# Layers the query does not list because they are not executed (weights, graph I/O plumbing).
_NOT_EXECUTED = {"Const", "Parameter", "Result"}


def _fail(message: str) -> ConversionError:
    return ConversionError(Stage.COMPILE, message)


def _describe(layer: dict) -> str:
    text = f"{layer['name']} ({layer['type']})"
    if layer.get("onnx_node"):
        text += f" from ONNX node {layer['onnx_node']} ({layer['onnx_op']})"
    return text


def integer_outputs(ir: IRModel | None) -> dict:
    """{output name: "I32"} for the IR's integer outputs: their blob precision whatever --output-type."""
    return {t.name: "I32" for t in (ir.outputs if ir else ()) if t.dtype.upper() in INTEGER_PRECISIONS}


# The IR's own element types as blob precisions (what --input-type/--output-type name=ONNX keep);
# integers become I32, the one integer type the Myriad X gives (an ONNX argmax is I64).
_IR_PRECISIONS = {
    "F32": "FP32",
    "F16": "FP16",
    "FP32": "FP32",
    "FP16": "FP16",
    "U8": "U8",
    "I32": "I32",
    "I64": "I32",
    "U64": "I32",
    "I16": "I32",
    "U16": "I32",
    "I8": "I32",
    "BOOL": "I32",
}


# Where a blob input's precision comes from, and the input type it gives: one row a reason (the report's
# compile_settings.input_precisions names the row for every input). Without --input-type an image
# input (artifacts.is_image_shape) takes the camera's U8 frames; any other input (point coordinates,
# a state, a sequence) FP16: U8 would truncate its values to integers in 0..255 on the camera.
INPUT_TYPE_REASONS = {
    "named": (None, "from --input-type NAME=TYPE"),
    "every": (None, "from --input-type"),
    "image": ("U8", "default for an image input, NCHW or NHWC with 1 or 3 channels: the camera's frames"),
    "other": ("FP16", "default for a non-image input: U8 would truncate its values"),
}
IMAGE_INPUT_TYPE = INPUT_TYPE_REASONS["image"][0]  # compile_tool's -ip without --input-type


def input_precisions(options: ConversionOptions, ir: IRModel) -> dict:
    """{input name: {"precision", "reason" (a key of INPUT_TYPE_REASONS), "why"}} for each IR input, in
    its order. ONNX (the model's own) is named as given; the IR's type resolves it in tensor_types."""
    result = {}
    for tensor in ir.inputs:
        if tensor.name in options.input_type_by_name:
            reason, precision = "named", options.input_type_by_name[tensor.name]
        elif options.input_type is not None:
            reason, precision = "every", options.input_type
        else:
            reason = "image" if is_image_shape(tensor.shape) or _channels_last_image(tensor.shape) else "other"
            precision = INPUT_TYPE_REASONS[reason][0]
        result[tensor.name] = {"precision": precision, "reason": reason, "why": INPUT_TYPE_REASONS[reason][1]}
    return result


def _channels_last_image(shape) -> bool:
    """[1, H, W, 1 or 3] with H and W of 8 or more: a camera frame as TensorFlow's exporters write it
    (tf2onnx), U8 by default as every input was before non-image inputs became FP16. A batch of such
    frames ([20, 64, 64, 3], case18's video) is no frame the camera gives: FP16."""
    shape = tuple(shape)
    return (
        len(shape) == 4
        and shape[0] == 1
        and shape[3] in (1, 3)
        and all(isinstance(d, int) and d >= 8 for d in shape[1:3])
    )


# The plugin's own batch rule (detectNetworkBatch in the 2021.4 Myriad plugin): the first dimension
# of a 4-D or 5-D input is the batch. With MYRIAD_DETECT_NETWORK_BATCH=YES (its default) a batched
# IR is compiled as batch 1 and the plugin's runtime was to run it once per item: depthai does not,
# and the blob takes one item. So a batched IR is compiled with NO: the blob holds the whole batch.
DETECT_BATCH = "MYRIAD_DETECT_NETWORK_BATCH"


def ir_batch(ir: IRModel) -> dict:
    """{input name: its batch} for the IR's 4-D and 5-D inputs whose batch is above 1."""
    return {
        t.name: t.shape[0]
        for t in ir.inputs
        if len(t.shape) in (4, 5) and isinstance(t.shape[0], int) and t.shape[0] > 1
    }


def _batch_config(options: ConversionOptions, ir: IRModel, config: dict) -> dict:
    """The compile config for a batched IR: DETECT_BATCH=NO unless given; YES given is refused (options)."""
    batched = ir_batch(ir)
    if not batched:
        return config
    if config.get(DETECT_BATCH, "NO") == "YES":
        name, batch, one = _first_batched(ir)
        raise _options_error(
            f"--compile-config {DETECT_BATCH}=YES compiles input {name} (batch {batch}) as batch 1, which the "
            f"plugin's runtime would run {batch} times but depthai runs once: drop it (the blob then takes the "
            f"batch of {batch}), or convert at batch 1 with --input-shape '{name}={one}'"
        )
    return {**config, DETECT_BATCH: "NO"}


def compile_settings(options: ConversionOptions, ir: IRModel | None = None) -> dict:
    """What the compile is asked for. tensor_types/tensor_layouts: the tensors whose precision or
    layout is not the every-tensor value (--input-type/--output-type, NCHW), as compile_tool's
    -iop/-iol take them: named ones, integer outputs (I32), 4-D tensors under an NHWC value.
    ConversionError (options) for a name the blob has no tensor of, a layout on a tensor that is not
    4-D."""
    settings = {
        "platform": "VPU_MYRIAD_2480",
        "input_type": options.input_type or IMAGE_INPUT_TYPE,  # -ip; the non-image inputs by name (below)
        "output_type": options.output_type,
        "input_layout": options.input_layout,
        "output_layout": options.output_layout,
        "tensor_types": integer_outputs(ir) if options.output_type != "ONNX" else {},
        "tensor_layouts": {},
        "config": dict(options.compile_config),
        "nshaves": options.nshaves,
        "nslices": options.nslices,
        "nstreams": options.nstreams,
    }
    if ir is not None:
        settings["tensor_types"], settings["tensor_layouts"] = _per_tensor(options, ir, settings["tensor_types"])
        precisions = input_precisions(options, ir)
        for name, chosen in precisions.items():  # a default other than -ip's: the input by name (-iop)
            if chosen["reason"] == "other" and chosen["precision"] != settings["input_type"]:
                settings["tensor_types"][name] = chosen["precision"]
            chosen["precision"] = settings["tensor_types"].get(name, settings["input_type"])
        settings["input_precisions"] = precisions
        settings["config"] = _batch_config(options, ir, settings["config"])
    return settings


def _per_tensor(options: ConversionOptions, ir: IRModel, integer: dict) -> tuple[dict, dict]:
    types, layouts = dict(integer), {}
    for role, tensors, every_layout, named_types, named_layouts in (
        ("input", ir.inputs, options.input_layout, options.input_type_by_name, options.input_layout_by_name),
        ("output", ir.outputs, options.output_layout, options.output_type_by_name, options.output_layout_by_name),
    ):
        by_name = {t.name: t for t in tensors}
        other_role = "output" if role == "input" else "input"
        others = {t.name for t in (ir.outputs if role == "input" else ir.inputs)}
        for setting, named in (("type", named_types), ("layout", named_layouts)):
            for name in (name for name in named if name not in by_name):
                hint = (
                    f" ({name!r} is one of its {other_role}s: use --{other_role}-{setting})" if name in others else ""
                )
                raise _options_error(
                    f"--{role}-{setting} names {name!r}, but the blob's {role}s are {', '.join(by_name)}{hint}"
                )
        for name, precision in sorted(named_types.items()):  # a named type wins, on integer outputs too
            tensor = by_name[name]
            types[name] = (
                _IR_PRECISIONS.get(tensor.dtype.upper(), tensor.dtype.upper()) if precision == "ONNX" else precision
            )
        for tensor in tensors:
            layout = named_layouts.get(tensor.name)
            if layout is not None and len(tensor.shape) != 4:
                raise _options_error(
                    f"--{role}-layout {tensor.name}={layout}: {role} {tensor.name} is "
                    f"{list(tensor.shape)}, not 4-D; NCHW and NHWC are the layouts of 4-D tensors"
                )
            layout = layout or (every_layout if len(tensor.shape) == 4 else None)
            if layout and layout != "NCHW":
                layouts[tensor.name] = layout
    return types, layouts


def _options_error(message: str) -> ConversionError:
    return ConversionError(Stage.OPTIONS, message)


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
            unsupported.append(
                {
                    "name": layer.name,
                    "type": layer.type,
                    "onnx_node": origin and origin["node"],
                    "onnx_op": origin and origin["op"],
                }
            )
    return LayerSupport(len(executed), dict(sorted(counts.items())), tuple(unsupported), supported is not None)


def compile_blob(
    ir: IRModel,
    support,
    options: ConversionOptions,
    toolchain: Toolchain,
    blob_path: Path,
    origins: tuple = (),
    stage_graph: bool = True,
) -> CompiledBlob:
    """Compile (within --compile-timeout). On failure: every layer of a type the compiler refuses
    (rules/advice.py), named in the user's terms with what to change, then the compiler's own
    message; else the compiler's message and the query's suspects. support() gives the query's
    LayerSupport, asked for only when the compile fails. origins: the ONNX models whose node
    names the IR layers trace back to."""
    settings = compile_settings(options, ir)
    args = [str(toolchain.compile_helper), "compile", str(ir.xml), str(blob_path)]
    if settings["input_type"] != "ONNX":
        args += ["-ip", settings["input_type"]]
    if options.output_type != "ONNX":
        args += ["-op", options.output_type]
    for flag, table in (("-iop1", settings["tensor_types"]), ("-iol1", settings["tensor_layouts"])):
        for name, value in table.items():  # one tensor a flag: a name may hold commas
            args += [flag, f"{name}:{value}"]
    args += [
        f"MYRIAD_NUMBER_OF_SHAVES={options.nshaves}",
        f"MYRIAD_NUMBER_OF_CMX_SLICES={options.nslices}",
        f"MYRIAD_THROUGHPUT_STREAMS={options.nstreams}",
    ]
    args += [f"{key}={value}" for key, value in settings["config"].items()]
    with tempfile.TemporaryDirectory(prefix="myriad-blob-stages-") as tmp:
        # The plugin's stage graph (a private key: --compile-config refuses it), unless stage_graph is
        # False (the SuperBlob's other shave counts). It does not change the blob (tests/test_stage_graph.py
        # compares the bytes; ~7% more compile time on SuperPoint at VGA); the directory takes a half-written dump.
        dump = Path(tmp) / "stages.dot"
        dumping = [*DUMP_CONFIG, f"{DUMP_KEY}={dump}"] if stage_graph else []
        result = _run_compile(args + dumping, options, toolchain, blob_path, origins)
        graph, why = read_stage_graph(dump) if result.returncode == 0 and stage_graph else (None, None)
    _check_compiled(result, ir, options, settings, blob_path, support, origins)
    settings["fast_clock"] = toolchain.faketime is not None
    return CompiledBlob(blob_path, settings, graph, why)


def _run_compile(args: list, options: ConversionOptions, toolchain: Toolchain, blob_path: Path, origins: tuple = ()):
    try:
        return toolchain.run(args, fast_clock=True, timeout=options.compile_timeout)
    except subprocess.TimeoutExpired:
        blob_path.unlink(missing_ok=True)
        stopped = f"the Myriad compiler did not finish within {options.compile_timeout:g} s (--compile-timeout) and was stopped"
        raise _fail(
            stopped
            + (_row_split_cause(origins) or "; the model may be too large for the Myriad X, or raise --compile-timeout")
        ) from None


def _row_split_cause(origins: tuple) -> str:
    """The MatMuls of the compiled ONNX model that the plugin copies into one stage per row (those
    the rule "token-wise MatMul by a constant -> 1x1 Conv" left: ONNX Runtime disagreed, or it could
    not run), the likely cause of a compile that does not end; "" when there are none."""
    if not origins:
        return ""
    try:
        import onnx

        found = row_split_matmuls(onnx.load_model(str(origins[0].path)))
    except Exception:  # the message stands without the cause
        return ""
    if not found:
        return ""
    named = ", ".join(
        f"`{node}`" + (f" (PyTorch module `{module_path(node)}`)" if module_path(node) else "") + f", {rows:,} rows"
        for node, rows in found[:3]
    )
    more = f" and {len(found) - 3} more" if len(found) > 3 else ""
    return (
        f": ONNX MatMul node(s) {named}{more} multiply by a constant over a number of rows that is not a multiple of "
        "10, which the compiler copies into one stage per row (its time grows about as the cube of the stages); "
        "the rule rewriting them as 1x1 convolutions did not apply (the report's ir.preparation says why): write "
        "that layer as a 1x1 nn.Conv2d, or pick an input size whose token count is a multiple of 10"
    )


def _check_compiled(result, ir, options, settings, blob_path, support, origins) -> None:
    """A failed compile as the user's error: refused layer types, integer outputs, the query's suspects."""
    if result.returncode != 0 or not blob_path.exists():
        message = helper_error(result.stderr, result.returncode)
        refused = explain_refused(
            [(layer.name, layer.type) for layer in ir.layers], lambda name: trace(name, origins), message
        )
        if refused:
            raise _fail(f"{refused} (the compiler: {message}){_batch_hint(ir)}")
        integer_only = _INTEGER_ONLY.search(message)
        if integer_only and integer_only[1] in integer_outputs(ir):
            name = integer_only[1]
            raise _fail(
                f"output {name} is an integer tensor that the Myriad X gives only as I32 here, but "
                f"{settings['tensor_types'].get(name, options.output_type)} was asked: drop --output-type "
                f"{name}=..., and convert it on the host (the compiler: {message})"
            )
        raise _fail("the Myriad compiler failed: " + message + _suspects(support()) + _batch_hint(ir))


def _batch_hint(ir: IRModel) -> str:
    """A failed compile of a batched IR: the batch-1 shape to try (the plugin compiles a batch per stage copy)."""
    if not ir_batch(ir):
        return ""
    name, batch, one = _first_batched(ir)
    return (
        f"; input {name} has a batch of {batch}: if the model compiles at batch 1, convert with "
        f"--input-shape '{name}={one}' and send the items one by one"
    )


def _first_batched(ir: IRModel) -> tuple[str, int, list]:
    """The first batched input: its name, batch and shape at batch 1."""
    name, batch = next(iter(ir_batch(ir).items()))
    shape = next(t.shape for t in ir.inputs if t.name == name)
    return name, batch, [1, *shape[1:]]


# The compiler refusing a float precision for an integer output (an argmax ending in a Reshape).
_INTEGER_ONLY = re.compile(
    r"Stage node (\S+) \(\w+\) types check error: output #0 has type \w+, but one of \[S32\] is "
    r"expected"
)


def trace(layer_name: str, origins: tuple) -> dict | None:
    """The ONNX node an IR layer came from, in the first of origins that knows it."""
    return next((o for o in (model.origin(layer_name) for model in origins) if o), None)


def _suspects(support: LayerSupport) -> str:
    if not support.unsupported:
        return ""
    listed = ", ".join(_describe(layer) for layer in support.unsupported[:5])
    more = f" and {len(support.unsupported) - 5} more" if len(support.unsupported) > 5 else ""
    return f"; the plugin's query lists as unsupported: {listed}{more}"
