"""Stage 3a, ONNX preparation: make the ONNX file what the IR front ends read best.

Two graph edits come first and always apply: the input shapes are fixed (a dynamic-axes export
becomes static, or a static one takes the asked --input-shape), and with --output-names the graph
is cut at the named tensors. The result is the *reference*: ONNX Runtime runs it for the numeric
check, so a changed shape or a cut is checked like everything else.

Then the rewrites of the ONNX rule table (rules/onnx_rules.py), each applied only where it is
needed, run on ONNX Runtime and kept only if the outputs still agree with the reference's. The
report lists every step.
"""

from __future__ import annotations

import difflib
import time
from pathlib import Path

import numpy as np

from .artifacts import OnnxModel, PreparedOnnx, PrepStep
from .errors import ConversionError, Stage, first_line
from .export_onnx import describe_onnx
from .metrics import peak_relative_error
from .options import InputSpec
from .ort import ort_session
from .rules.advice import refuse_data_dependent
from .rules.onnx_rules import ONNX_RULES


def _fail(message: str) -> ConversionError:
    return ConversionError(Stage.IR, message)


def prepare(
    onnx_model: OnnxModel,
    shapes: tuple[InputSpec, ...],
    output_names: tuple[str, ...],
    workdir: Path,
    frontend: str = "ov2022",
) -> PreparedOnnx:
    """The ONNX model for one IR front end (the ONNX_RULES rows for it that are needed and agree)."""
    import onnx

    workdir.mkdir(parents=True, exist_ok=True)
    model = onnx.load_model(str(onnx_model.path))  # external data too: the edits rewrite the file
    steps = []
    started = time.perf_counter()
    edits = _upgrade_for_onnxruntime(model) + _fix_shapes(model, onnx_model, shapes) + _cut(model, output_names)
    refused = refuse_data_dependent(model.graph)
    if refused:
        raise _fail("the Myriad X cannot run " + refused)
    # The reference's outputs: at once when the shapes changed (a shape the model cannot take is
    # then named by ONNX Runtime, in one line), else when a first step needs checking.
    expected = None
    if edits:
        steps.append(PrepStep("graph edits", True, "; ".join(edits), round(time.perf_counter() - started, 3)))
        reference_path = workdir / "reference.onnx"
        _save(model, reference_path)
        reference = describe_onnx(reference_path, exported=onnx_model.exported)
        feeds = seeded_feeds(reference)
        try:
            expected = run_onnxruntime(reference_path, feeds)
        except ConversionError as error:
            raise _fail(error.message + _batch_hint(onnx_model, shapes)) from error
    else:  # the file as given is the reference (no copy of what may be hundreds of MB)
        reference_path, reference = onnx_model.path, onnx_model
        feeds = seeded_feeds(reference)
    current, current_path = model, reference_path
    for rule in ONNX_RULES:
        reason = rule.needed(current) if frontend in rule.frontends else ""
        if not reason:
            continue
        if expected is None:
            expected = run_onnxruntime(reference_path, feeds)
        started = time.perf_counter()
        path = workdir / f"step-{len(steps)}.onnx"
        try:
            candidate = rule.rewrite(current)
            _save(candidate, path)
            outputs = run_onnxruntime(path, _typed_feeds(candidate, feeds))
            disagreement = _disagreement(expected, outputs)
        except Exception as error:  # a step that cannot run is dropped, the model goes on without it
            steps.append(
                PrepStep(
                    rule.name,
                    False,
                    f"{reason}; not applied: {first_line(error)}",
                    round(time.perf_counter() - started, 3),
                )
            )
            continue
        kept = disagreement <= rule.tolerance
        detail = f"{reason}; {len(current.graph.node)} -> {len(candidate.graph.node)} nodes"
        detail += (
            f", outputs agree (max relative difference {disagreement:.1e})"
            if kept
            else f"; dropped: outputs differ by {disagreement:.1e} relative"
        )
        steps.append(PrepStep(rule.name, kept, detail, round(time.perf_counter() - started, 3)))
        if kept:
            current, current_path = candidate, path
            expected = outputs if rule.new_reference else expected
    prepared = (
        reference
        if current_path == reference_path
        else describe_onnx(current_path, exported=onnx_model.exported, user_nodes=set(reference.nodes))
    )
    return PreparedOnnx(prepared, reference, tuple(steps))


def _save(model, path: Path) -> None:
    import onnx

    # Large models (over protobuf's 2 GB) keep their weights beside the graph.
    large = model.ByteSize() > 1_800_000_000
    onnx.save_model(model, str(path), save_as_external_data=large, location=path.name + ".data" if large else None)


# ONNX Runtime has no kernels for the default domain's opsets before this one ("Could not find an
# implementation for Add(6)"): an older file (the PyTorch exports of 2017-2018, ONNX's own
# conformance models) is upgraded with onnx's version converter, which the reference then is.
ONNXRUNTIME_MIN_OPSET = 7
ONNXRUNTIME_MAX_IR_VERSION = 13  # onnxruntime 1.31 (requirements/constraints.txt)


def _upgrade_for_onnxruntime(model) -> list[str]:
    import onnx
    from onnx import version_converter

    done = []
    # A file of a newer IR version than ONNX Runtime reads ("Unsupported model IR version: 14, max
    # supported IR version: 13": onnx's own helpers write the newest) takes the oldest its opsets need.
    needed = onnx.helper.find_min_ir_version_for(model.opset_import, ignore_unknown=True)
    if model.ir_version > max(needed, ONNXRUNTIME_MAX_IR_VERSION):
        done.append(
            f"IR version {model.ir_version} -> {needed} (the oldest its opsets need; ONNX Runtime reads up to 13)"
        )
        model.ir_version = needed
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or opset >= ONNXRUNTIME_MIN_OPSET:
        return done
    try:
        upgraded = version_converter.convert_version(model, ONNXRUNTIME_MIN_OPSET)
        onnx.checker.check_model(upgraded)
    except Exception as error:
        raise _fail(
            f"the model is ONNX opset {opset}, older than ONNX Runtime (the numeric check's reference) runs, and "
            f"onnx's version converter cannot upgrade it to opset {ONNXRUNTIME_MIN_OPSET}: {first_line(error)}; "
            "re-export the model at opset 11 or later"
        ) from error
    model.CopyFrom(upgraded)
    _channelwise_prelu_slopes(model)
    return done + [
        f"opset {opset} -> {ONNXRUNTIME_MIN_OPSET} (onnx's version converter: ONNX Runtime runs opset 7 and later)"
    ]


def _channelwise_prelu_slopes(model) -> None:
    """PRelu before opset 7 applied a [C] slope per channel (axis 1); from 7 on it broadcasts from
    the last axis, which the version converter leaves as it was: the slope becomes [C, 1, ...]."""
    import onnx
    from onnx import numpy_helper

    ranks = {
        value.name: len(value.type.tensor_type.shape.dim)
        for value in (*onnx.shape_inference.infer_shapes(model).graph.value_info, *model.graph.input)
        if value.type.tensor_type.HasField("shape")
    }
    initializers = {init.name: init for init in model.graph.initializer}
    for node in (node for node in model.graph.node if node.op_type == "PRelu"):
        slope, rank = initializers.get(node.input[1]), ranks.get(node.input[0], 0)
        if slope is None or len(slope.dims) != 1 or rank < 3:
            continue
        values = numpy_helper.to_array(slope).reshape([-1] + [1] * (rank - 2))
        name = f"{slope.name}/channelwise"
        if name not in initializers:
            initializers[name] = numpy_helper.from_array(values, name)
            model.graph.initializer.append(initializers[name])
        node.input[1] = name


def _fix_shapes(model, onnx_model: OnnxModel, shapes: tuple[InputSpec, ...]) -> list[str]:
    """Write the asked shapes into the graph's inputs; intermediate shapes the exporter recorded
    for other sizes are dropped (shape inference and the front ends recompute them)."""
    if not shapes:
        return []
    names = [t.name for t in onnx_model.inputs]
    wanted = {spec.name or names[0]: spec.shape for spec in shapes}
    done = []
    for value in model.graph.input:
        if value.name not in wanted:
            continue
        dims = value.type.tensor_type.shape.dim
        shape = wanted[value.name]
        if len(dims) != len(shape):
            raise _fail(
                f"input {value.name!r} has {len(dims)} dimensions {_dims(dims)}, but --input-shape gives "
                f"{len(shape)}: {list(shape)}"
            )
        before = _dims(dims)
        for dim, size in zip(dims, shape):
            dim.Clear()
            dim.dim_value = size
        if before != list(shape):
            done.append(f"input {value.name} {before} -> {list(shape)}")
    if done:
        import onnx

        del model.graph.value_info[:]
        for output in model.graph.output:
            output.type.tensor_type.ClearField("shape")
        try:
            model.CopyFrom(onnx.shape_inference.infer_shapes(model))
        except Exception:  # the outputs' shapes stay unknown here; the front end infers them
            pass
    return done


def _batch_hint(onnx_model: OnnxModel, shapes: tuple[InputSpec, ...]) -> str:
    """Why a new batch size fails: the exporter fixed the batch into the graph (Reshape targets)."""
    names = [t.name for t in onnx_model.inputs]
    for spec in shapes:
        tensor = onnx_model.inputs[names.index(spec.name)] if spec.name in names else onnx_model.inputs[0]
        fixed = tensor.shape[0] if tensor.shape and isinstance(tensor.shape[0], int) else None
        if fixed is not None and spec.shape[0] != fixed:
            return (
                f"; the model was exported with batch {fixed}, fixed inside the graph: convert it at batch {fixed} "
                f"(the camera runs one frame per inference), or re-export it with a dynamic batch axis"
            )
    return ""


def _dims(dims) -> list:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]


def _cut(model, output_names: tuple[str, ...]) -> list[str]:
    """Make the named tensors the graph's outputs and drop what only fed the old ones."""
    if not output_names:
        return []
    import onnx

    produced = [out for node in model.graph.node for out in node.output if out]
    known = set(produced) | {v.name for v in model.graph.input}
    for name in output_names:
        if name not in known:
            close = difflib.get_close_matches(name, produced, n=3, cutoff=0.5)
            hint = (
                f" (close: {', '.join(close)})" if close else " (tensor names are listed in the report's onnx section)"
            )
            raise _fail(f"--output-names: the model has no tensor {name!r}{hint}")
    inputs = [v.name for v in model.graph.input if v.name not in {i.name for i in model.graph.initializer}]
    try:
        # The extractor types the new outputs from value_info, which torch.onnx.export and
        # TorchScript exports leave empty: shape inference fills it first.
        inferred = onnx.shape_inference.infer_shapes(model)
        extracted = onnx.utils.Extractor(inferred).extract_model(inputs, list(output_names))
    except Exception as error:  # e.g. a tensor whose type shape inference cannot tell (a custom op before it)
        raise _fail(
            f"--output-names: cannot cut the graph at {', '.join(output_names)}: {first_line(error)}"
        ) from error
    model.CopyFrom(extracted)
    return [f"outputs cut at {', '.join(output_names)}"]


def seeded_feeds(onnx_model: OnnxModel) -> dict:
    """Deterministic inputs for ONNX Runtime: image-like floats, small integers for integer inputs."""
    rng = np.random.default_rng(7)
    feeds = {}
    for tensor in onnx_model.inputs:
        dtype = np.dtype(tensor.dtype)
        shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in tensor.shape)
        if dtype.kind == "f":
            feeds[tensor.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[tensor.name] = rng.integers(0, 2, shape).astype(dtype)
        else:
            feeds[tensor.name] = rng.integers(0, 4, shape).astype(dtype)
    return feeds


def _typed_feeds(model, feeds: dict) -> dict:
    """The reference's inputs in the types a rewritten model takes (an FP16 model cast to FP32)."""
    from onnx import helper

    types = {v.name: v.type.tensor_type.elem_type for v in model.graph.input}
    return {
        name: value.astype(helper.tensor_dtype_to_np_dtype(types[name])) if types.get(name) else value
        for name, value in feeds.items()
    }


def run_onnxruntime(path: Path, feeds: dict) -> list:
    import onnxruntime

    try:
        session = ort_session(path)  # the model as written, not ORT's rewrite of it
        quiet = onnxruntime.RunOptions()
        quiet.log_severity_level = 4
        return session.run(None, feeds, quiet)
    except Exception as error:
        message = first_line(error)
        message = message.split("Status Message: ", 1)[-1] if "Status Message: " in message else message
        raise _fail(
            f"ONNX Runtime cannot run the model at the asked shapes: {message}; "
            "check --input-shape (and --output-names)"
        ) from error


def _disagreement(expected: list, actual: list) -> float:
    if len(expected) != len(actual):
        return float("inf")
    worst = 0.0
    for a, b in zip(expected, actual):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            return float("inf")
        if not a.size:
            continue
        worst = max(worst, peak_relative_error(a, b))
    return worst
