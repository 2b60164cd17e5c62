"""Stage 2, export: PyTorch model -> ONNX (opset --opset), or inspect a given ONNX file."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import re
import tempfile
import warnings
from pathlib import Path

from .artifacts import LoadedModel, OnnxModel, TensorInfo
from .errors import ConversionError, Stage, cause_line
from .options import DEFAULT_INPUT_NAME, ConversionOptions, InputSpec
from .rules.advice import compile_time_input_misuse, explain_export_failure
from .rules.onnx_graph import rewrite_origin

# The opsets tried, in order, when --opset is not given. 14 is the lowest opset that exports
# attention (scaled_dot_product_attention) and native HardSwish; the OpenVINO 2022.3 front end
# reads 13-17 alike (measured on the corpus), but opset 17 turns LayerNorm into
# LayerNormalization, which it crashes on. Later entries are fallbacks for the exporter; 18 is the
# first with Col2Im (F.fold, MobileViTV2), which the ONNX preparation rewrites and downgrades to 17.
OPSET_PREFERENCE = (14, 16, 13, 12, 11, 17, 18)


def _fail(message: str) -> ConversionError:
    return ConversionError(Stage.EXPORT, message)


def describe_onnx(path: Path, exported: bool, user_nodes: set | None = None) -> OnnxModel:
    """path's inputs, outputs, nodes and producers. user_nodes (the user's own node names; given for
    a model our rules rewrote): the nodes not among them that carry a rule's mark trace back to the
    node they replaced (OnnxModel.rewritten). A mark on the user's own node is never believed: a
    file could name any node that way."""
    import onnx

    model = onnx.load_model(str(path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)

    def info(value) -> TensorInfo:
        if value.type.WhichOneof("value") != "tensor_type":  # an optional, a sequence, a map
            kind = (value.type.WhichOneof("value") or "untyped").removesuffix("_type")
            raise ConversionError(
                Stage.IR,
                f"the model's {value.name!r} is {'an' if kind[0] in 'aeiou' else 'a'} {kind}, not a tensor: a blob "
                "takes and gives tensors only; make it a tensor in the ONNX file",
            )
        tensor = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim)
        return TensorInfo(value.name, dims, onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name)

    inputs = tuple(info(v) for v in model.graph.input if v.name not in initializers)
    nodes = {node.name: node.op_type for node in model.graph.node if node.name}
    producers = {out: node.name for node in model.graph.node if node.name for out in node.output}
    return OnnxModel(
        path,
        opset,
        inputs,
        tuple(info(v) for v in model.graph.output),
        exported,
        nodes,
        producers,
        compile_time_input=compile_time_input_misuse(model.graph),
        rewritten={}
        if user_nodes is None
        else {
            node.name: origin
            for node in model.graph.node
            if node.name and node.name not in user_nodes and (origin := rewrite_origin(node))
        },
    )


def prepare_onnx(loaded: LoadedModel, options: ConversionOptions, workdir: Path) -> OnnxModel:
    """The ONNX model Model Optimizer will read: the user's file, or one exported from PyTorch."""
    if loaded.onnx_path is not None:
        onnx_model = describe_onnx(loaded.onnx_path, exported=False)
        if onnx_model.compile_time_input:  # at the IR stage: what neither front end makes a blob of
            raise ConversionError(Stage.IR, onnx_model.compile_time_input)
        if options.name_outputs:
            raise _fail(
                f"--name-outputs names a PyTorch model's outputs; this ONNX model has its own "
                f"({', '.join(t.name for t in onnx_model.outputs)}), which the blob keeps: drop --name-outputs"
            )
        _check_shapes_fit(onnx_model, options.input_shapes)
        return onnx_model
    family_model = loaded.family_model
    names = (family_model.input_names, family_model.output_names) if family_model is not None else None
    return export_torch(loaded.module, options, workdir / "model.onnx", names)


def _check_shapes_fit(onnx_model: OnnxModel, specs: tuple[InputSpec, ...]) -> None:
    names = [t.name for t in onnx_model.inputs]
    if len(names) > 1 and any(spec.name is None for spec in specs):
        raise _fail(
            f"the model has inputs {', '.join(names)}: name the one --input-shape is for, "
            f"e.g. --input-shape '{names[0]}=[...]'"
        )
    for spec in specs:
        if spec.name is not None and spec.name not in names:
            raise _fail(f"--input-shape names input {spec.name!r}, but the model's inputs are {', '.join(names)}")
    if not specs:
        dynamic = [t for t in onnx_model.inputs if not all(isinstance(d, int) and d > 0 for d in t.shape)]
        if dynamic:  # a usage error (no export is involved): an example of the input's own rank
            t = dynamic[0]
            raise ConversionError(
                Stage.OPTIONS,
                f"input {t.name!r} has a dynamic shape {list(t.shape)}: pass --input-shape "
                f"'{t.name}={_example_shape(t.shape)}' with your sizes",
            )


def _example_shape(shape) -> list:
    """The input's shape with its unknown dims filled: batch 1, an image's 3 x 240 x 320, else 64."""
    image = [1, 3, 240, 320] if len(shape) == 4 else None
    return [
        d if isinstance(d, int) and d > 0 else 1 if i == 0 else image[i] if image else 64 for i, d in enumerate(shape)
    ]


def export_torch(module, options: ConversionOptions, path: Path, names: tuple | None = None) -> OnnxModel:
    """names: (input names, output names) the model's consumer expects (a family's parser's); default generic."""
    import torch

    if options.new_export and isinstance(module, torch.jit.ScriptModule):
        raise _fail(
            "--new-export cannot export a TorchScript model (torch.export needs the Python code): drop --new-export"
        )
    if not options.input_shapes:
        raise _fail("--input-shape is required for PyTorch models, e.g. --input-shape '[1, 3, 240, 320]'")
    dtype = getattr(torch, options.model_dtype, None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise _fail(
            f"--model-dtype {options.model_dtype!r} is not a torch floating-point dtype (float32, float16, half, ...)"
        )
    specs = bind_inputs(module, options.input_shapes)
    input_names = [
        s.name or (names[0][i] if names else DEFAULT_INPUT_NAME if len(specs) == 1 else f"input{i}")
        for i, s in enumerate(specs)
    ]
    module = module.to(dtype).eval()
    args = tuple(torch.zeros(s.shape, dtype=dtype) for s in specs)
    shapes = ", ".join(str(list(s.shape)) for s in specs)
    try:
        with torch.no_grad():
            sample = module(*args)
    except Exception as error:
        cause = cause_line(error).rstrip(".")
        rule = _size_rule(module, specs, dtype) if _SIZE_MISMATCH.search(cause) else ""
        raise _fail(f"the model rejects input shape {shapes}: {cause}; " + (rule or "check --input-shape")) from error
    outputs = flatten_outputs(sample)
    output_names = name_outputs(sample, len(outputs), options.name_outputs)
    if names and not options.name_outputs and len(names[1]) == len(outputs):
        output_names = list(names[1])  # the names the model's consumer looks for (a family's parser's)
    fallbacks = []
    for opset in (options.opset,) if options.opset else OPSET_PREFERENCE:
        try:
            with _quiet():
                torch.onnx.export(
                    module,
                    args,
                    str(path),
                    opset_version=opset,
                    dynamo=options.new_export,
                    input_names=input_names,
                    output_names=output_names,
                    do_constant_folding=True,
                    **({} if options.new_export else {"dynamic_axes": None}),
                )
        except Exception as error:
            fallbacks.append((opset, cause_line(error)))
            if explain_export_failure(fallbacks[-1][1]):
                break  # no opset mends it
            continue
        return dataclasses.replace(
            describe_onnx(path, exported=True), opset_fallbacks=tuple(fallbacks), requested_opset=opset
        )
    known = explain_export_failure(fallbacks[-1][1])
    if known is not None:
        raise _fail(f"torch.onnx.export cannot export {known.what}: {known.fix} (the exporter: {fallbacks[-1][1]})")
    tried = ", ".join(str(o) for o, _ in fallbacks)
    if options.new_export:
        hint = "try without --new-export"
    elif options.opset:
        hint = "try another --opset"
    else:  # every opset was tried: another one is no advice (case21)
        hint = "no opset exports it: replace that operation in the model, or try --new-export"
    raise _fail(f"torch.onnx.export failed (opset {tried}): {fallbacks[0][1]}; {hint}")


# What PyTorch says when a strided net meets a size its strides do not divide (a skip connection
# joins 24 rows with 25).
_SIZE_MISMATCH = re.compile(r"[Ss]izes? of tensors must match|must match the size of tensor|size mismatch")


def _size_rule(module, specs: tuple[InputSpec, ...], dtype) -> str:
    """For a size mismatch inside a strided net: the smallest power-of-two multiple its image
    sizes need, found by running the model at the asked sizes rounded down to it, and the two
    nearest sizes that work. "" when no such multiple (up to 64) makes the model run."""
    import torch

    for stride in (2, 4, 8, 16, 32, 64):
        rounded = [tuple(s.shape[:2]) + tuple(max(stride, d // stride * stride) for d in s.shape[2:]) for s in specs]
        if all(r == tuple(s.shape) for r, s in zip(rounded, specs)) or not all(len(s.shape) == 4 for s in specs):
            continue
        try:
            with torch.no_grad():
                module(*(torch.zeros(shape, dtype=dtype) for shape in rounded))
        except Exception:
            continue
        sizes = []
        for spec in specs:
            for axis, size in zip(("height", "width"), spec.shape[2:]):
                if size % stride:
                    low = size // stride * stride
                    sizes.append(f"{axis} {size} -> {low} or {low + stride}")
        return (
            f"its strides need image sizes that are multiples of {stride}: use {', '.join(sizes)} "
            "in --input-shape (or pad the frame)"
        )
    return ""


def name_outputs(sample, count: int, asked: tuple[str, ...]) -> list[str]:
    """The ONNX (and so the blob's) output names: --name-outputs, else a returned dict's keys, else
    output / output0, output1, ..."""
    if asked:
        if len(asked) != count:
            raise _fail(
                f"--name-outputs gives {len(asked)} name(s) ({', '.join(asked)}), but the model returns "
                f"{count} output(s): give one name per output, in order"
            )
        return list(asked)
    if (
        isinstance(sample, dict)
        and len(sample) == count
        and all(not isinstance(v, (dict, list, tuple)) for v in sample.values())
    ):
        return [str(key) for key in sample]
    return ["output"] if count == 1 else [f"output{i}" for i in range(count)]


def forward_parameters(module) -> list[str] | None:
    """The names of forward's positional parameters, where they can be known."""
    import inspect

    schema = getattr(getattr(module, "forward", None), "schema", None)
    if schema is not None:  # TorchScript
        return [a.name for a in schema.arguments][1:]
    try:
        parameters = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return None
    names = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return None if any(p.kind == p.VAR_POSITIONAL for p in parameters) else names


def bind_inputs(module, specs: tuple[InputSpec, ...]) -> tuple[InputSpec, ...]:
    """Named --input-shape values in the order of forward's parameters: the name binds, not the flag order."""
    if len(specs) < 2 or any(s.name is None for s in specs):
        return specs
    parameters = forward_parameters(module)
    if parameters is None:
        return specs
    unknown = [s.name for s in specs if s.name not in parameters]
    if unknown:
        raise _fail(
            f"--input-shape names {', '.join(map(repr, unknown))}, but the model's forward takes "
            f"({', '.join(parameters)}): name each shape after a forward parameter"
        )
    # The inputs are passed by position: they must be forward's first parameters, with none skipped
    # (a skipped optional parameter would shift every input after it onto the wrong argument).
    first = parameters[: len(specs)]
    if {s.name for s in specs} != set(first):
        raise _fail(
            f"--input-shape names {', '.join(s.name for s in specs)}, but the model's forward takes "
            f"({', '.join(parameters)}) and inputs are passed in that order: give shapes for its first "
            f"{len(specs)} parameters ({', '.join(first)}), or wrap the model so its inputs come first"
        )
    return tuple(sorted(specs, key=lambda s: parameters.index(s.name)))


@contextlib.contextmanager
def _quiet():
    """The exporters print progress, warnings and logged tracebacks of steps they recover from;
    the user gets our one line instead (and --opset fallbacks as a report warning)."""
    sink = io.StringIO()
    logging.disable(logging.WARNING)
    # torch's C++ side prints too ("Torch IR graph at exception: ..." for an op an opset lacks),
    # straight to file descriptor 2: point it at a scratch file meanwhile.
    saved = os.dup(2)
    try:
        with (
            tempfile.TemporaryFile() as scratch,
            warnings.catch_warnings(),
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
        ):
            os.dup2(scratch.fileno(), 2)
            warnings.simplefilter("ignore")
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        logging.disable(logging.NOTSET)


def flatten_outputs(value) -> list:
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in flatten_outputs(item)]
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in flatten_outputs(item)]
    return [value]
