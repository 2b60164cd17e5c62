"""Known causes -> advice: IR layers the 2021.4 Myriad compiler (or its IR reader) refuses, in the
user's terms, with what to change.

REFUSED is one table, keyed by IR layer type; each row was measured by the op sweep (sweep.py)
or a case in ../shared/cases. A failed compile names every IR layer of a listed type at once
(the compiler itself stops at the first), each with the ONNX node and the PyTorch module it came
from; the compiler's own message follows ours. COMPILER_SAID translates what the compiler says
when it names no such layer, EXPORT_REFUSED what torch.onnx.export says.
"""

from __future__ import annotations

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class KnownCause:
    what: str  # what the user's code does, in PyTorch terms
    fix: str  # what to change


_RECURRENT = KnownCause(
    "a recurrent layer (nn.LSTM/nn.GRU/nn.RNN) in a form the unrolling does not cover "
    "(sequence lengths, peepholes, clipping, a plain RNN)",
    "export it with a fixed sequence length and PyTorch's default LSTM/GRU, or run it on the host",
)
_TRIG = KnownCause(
    "a trigonometric function on values whose range the graph does not bound",
    "bound its argument (a sigmoid or clamp before it makes it a polynomial here), or cut the graph "
    "before it with --output-names and compute it on the host",
)

# Sin/Cos of any value become a polynomial since #28 (range reduction); these have no rewrite.
_INVERSE_TRIG = KnownCause(
    "a tangent or inverse trigonometric function (torch.tan, asin, acos, atan), which the Myriad X has no layer for",
    "cut the graph before it with --output-names and compute it on the host, or approximate it in the model "
    "(a polynomial on a bounded range)",
)

REFUSED: dict[str, KnownCause] = {
    "ScatterNDUpdate": KnownCause(
        "an in-place assignment (y[..., i] = v) that does not write one contiguous box",
        "build the tensor with torch.cat of slices, or torch.where with a mask",
    ),
    "ScatterUpdate": KnownCause("an index assignment (y[idx] = v)", "build the tensor with torch.cat or torch.where"),
    "ScatterElementsUpdate": KnownCause("torch.scatter / scatter_", "use torch.where with a one-hot mask"),
    "CumSum": KnownCause(
        "torch.cumsum along an axis whose size is not fixed",
        "give fixed input shapes (--input-shape): it then becomes a MatMul",
    ),
    "Sin": _TRIG,
    "Cos": _TRIG,
    "Tan": _INVERSE_TRIG,
    "Asin": _INVERSE_TRIG,
    "Acos": _INVERSE_TRIG,
    "Atan": _INVERSE_TRIG,
    "Sign": KnownCause(
        "torch.sign on integers (a float one becomes a Where here)",
        "use torch.where(x > 0, 1, torch.where(x < 0, -1, 0)) on floats",
    ),
    "LSTMSequence": _RECURRENT,
    "GRUSequence": _RECURRENT,
    "RNNSequence": _RECURRENT,
    "TensorIterator": _RECURRENT,
    "GridSample": KnownCause(
        "F.grid_sample (sampling at computed positions: a spatial transformer, RT-DETR's deformable attention)",
        "the Myriad X has no sampler: cut the graph before it with --output-names and sample on the host (a fixed "
        "warp: the camera's ImageManip/Warp node); RT-DETR's decoder samples in every layer: for NMS-free "
        "detection on the camera use YOLOv10 or YOLO26 (exported with nms=False)",
    ),
    "NonZero": KnownCause(
        "torch.nonzero or boolean-mask indexing (x[mask]), whose output size depends on the data",
        "cut the graph before it with --output-names and do it on the host",
    ),
    "NonMaxSuppression": KnownCause(
        "non-maximum suppression inside the model",
        "cut the graph before the NMS with --output-names: the camera's detection node or the host runs it",
    ),
    "Einsum": KnownCause("torch.einsum", "write it as torch.matmul with permute/reshape"),
    "Loop": KnownCause(
        "a loop in the graph (scripted control flow)",
        "trace the model (torch.jit.trace) at a fixed input shape, which unrolls it",
    ),
    # case22: "trace the model instead" was unsafe: tracing freezes the branch taken, and a branch on the
    # data then converts, passes the check on one input and is wrong on others (dark frames).
    "If": KnownCause(
        "a branch in the graph (scripted control flow) whose condition depends on the input",
        "tracing would freeze the branch taken: compute both branches and blend them by the condition "
        "(torch.where(cond, a, b), or c * a + (1 - c) * b with c = cond.float()); a condition on shapes "
        "or constants alone is folded here",
    ),
}

# ONNX ops whose output size depends on the data, which the Myriad X cannot give: refused before the
# front ends, naming the node and the tensors that feed it (the --output-names to cut at). case19:
# the blob's dynamic output was blamed on torch.nonzero at verify.
DATA_DEPENDENT: dict[str, KnownCause] = {
    "NonMaxSuppression": KnownCause(
        "non-maximum suppression inside the model (torchvision.ops.nms, an exporter's NMS), whose output size "
        "depends on the data",
        "run it on the host, or cut the graph before it and let depthai's detection parser do it",
    ),
}


# ONNX ops the Myriad X has no layer for, refused before the front ends too: the readers may fail on
# the rest of such a model first (RT-DETR: OpenVINO 2022.3 crashes, Model Optimizer refuses its
# LayerNormalization), which would hide the op that no front end can help with.
NO_LAYER: dict[str, KnownCause] = {"GridSample": REFUSED["GridSample"]}


def refuse_data_dependent(graph) -> str | None:
    """One line for the first DATA_DEPENDENT or NO_LAYER node of an ONNX GraphProto, or None."""
    initializers = {init.name for init in graph.initializer}
    for node in graph.node:
        cause = DATA_DEPENDENT.get(node.op_type) or NO_LAYER.get(node.op_type)
        if cause is None:
            continue
        feeding = [name for name in node.input if name and name not in initializers]
        cut = f" (--output-names {','.join(feeding)})" if feeding else ""
        return f"ONNX node `{node.name or node.output[0]}` ({node.op_type}): {cause.what}; {cause.fix}{cut}"
    return None


# torch.onnx.export's failures with a known cause that no other opset mends: (what the exporter
# says, the cause and what to change). Without a match the export stage suggests another --opset.
EXPORT_REFUSED: tuple[tuple[re.Pattern, KnownCause], ...] = (
    (
        re.compile(r"prim::(DictConstruct|ListConstruct)' to ONNX"),
        KnownCause(
            "a TorchScript model that returns (or builds) a dict or list: torch.onnx.export takes tensors and "
            "tuples of them",
            "trace it returning a tuple, or give its state dict with --model-class (a returned dict's keys then "
            "name the outputs)",
        ),
    ),
    (  # case21: nn.TransformerEncoderLayer / nn.MultiheadAttention traced under no_grad in eval mode
        re.compile(r"aten::_(transformer_encoder_layer_fwd|native_multi_head_attention|transformer_decoder_only)"),
        KnownCause(
            "PyTorch's fused attention fast path (nn.TransformerEncoderLayer or nn.MultiheadAttention traced "
            "in eval mode under torch.no_grad()), an op no ONNX opset has",
            "give the weights as a state dict with --model-class (the export then takes the plain path), or "
            "trace the model after torch.backends.mha.set_fastpath_enabled(False)",
        ),
    ),
)

# What the Myriad compiler (or its plugin) says without naming a layer of a REFUSED type, in the
# user's terms: (the compiler's words, the cause and what to change). Each row was met by a case
# in ../shared/cases.
COMPILER_SAID: tuple[tuple[re.Pattern, KnownCause], ...] = (
    (  # case16, where no exact rewrite exists (a factor that is not an integer)
        re.compile(r"Interpolate supports 'nearest' and 'linear' modes only, actual cubic"),
        KnownCause(
            "bicubic resizing (F.interpolate(mode='bicubic')) by a factor that is not an integer, which the "
            "Myriad X has no form for (an integer factor becomes a transposed convolution here)",
            "use mode='bilinear', or an integer scale_factor",
        ),
    ),
    (  # case23: a convolution (or matmul) whose input is a constant the front end did not fold
        re.compile(r"duplicateData error: while duplicating (\S+) Const data"),
        KnownCause(
            "a layer computing on a constant tensor (a convolution of a fixed frame or grid) that the "
            "compiler cannot hold",
            "compute that part once and store the result in the model (register it as a buffer), or make "
            "the constant a model input",
        ),
    ),
    (  # case18's 4-D twin: [T, H, W, C] with T = 20 reads as a batch of 20; ONNX's test_log_softmax_dim3
        # (batch 2, a Reshape whose target the opset-1 LogSoftmax fixes)
        re.compile(
            r"Total length of splits: (\d+) must match the length of the chosen axis: 1"
            r"|v1::Reshape .* Non-'-1' output dimensions do not evenly divide the input dimensions"
        ),
        KnownCause(
            "an input whose first dimension (the batch to the Myriad plugin, which runs the model once per "
            "item) is not 1",
            "convert at batch 1 and send the items one by one, or move that dimension to another axis "
            "(frames as [1, T, H*W, C] or as channels)",
        ),
    ),
    (  # ONNX's test_operator_non_float_params: x + y of int64 inputs; test_greater_equal of int32 inputs
        re.compile(
            r"Stage node (?P<layer>\S+) \(\w+\) types check error: input #\d+ has type S32, but one of \[FP16\]"
        ),
        KnownCause(
            "integer arithmetic or comparison (int32/int64 tensors: an add, a multiply, a >=), which the Myriad X "
            "computes in FP16 only",
            "compute it in float (.float() before it, or float inputs), or on the host",
        ),
    ),
    (  # ONNX's test_Conv3d_no_bias (a zero bias added to the ONNX file fails the same way)
        re.compile(r"number of biases must equal to number of output channels per group, but: .*biases=1\b"),
        KnownCause(
            "a 3-D convolution without a bias (nn.Conv3d(..., bias=False)), which the 2021.4 Myriad compiler "
            "cannot compile",
            "train it with bias=True, or write it as 2-D convolutions over the frames (time folded into channels)",
        ),
    ),
    (  # ONNX's test_Conv3d_groups
        re.compile(r"number of groups=\d+, but grouped 3D convolution is not supported"),
        KnownCause(
            "a grouped 3-D convolution (nn.Conv3d with groups > 1)",
            "write it as one nn.Conv3d per group on torch.chunk of the channels, concatenated",
        ),
    ),
)


# ONNX op inputs that the Myriad X fixes when the blob is compiled (a shape, axes, a count): a model
# whose graph input feeds one of them directly computes something else for every value it is given.
# op -> {input index: what it is}.
_AXES = {1: "axes"}
COMPILE_TIME_INPUTS: dict[str, dict[int, str]] = {
    **dict.fromkeys(
        (
            "ReduceSum",
            "ReduceMean",
            "ReduceMax",
            "ReduceMin",
            "ReduceProd",
            "ReduceL1",
            "ReduceL2",
            "ReduceLogSum",
            "ReduceLogSumExp",
            "ReduceSumSquare",
            "Squeeze",
            "Unsqueeze",
        ),
        _AXES,
    ),
    "Reshape": {1: "shape"},
    "Expand": {1: "shape"},
    "ConstantOfShape": {0: "shape"},
    "Tile": {1: "repeats"},
    "Slice": {1: "starts", 2: "ends", 3: "axes", 4: "steps"},
    "Pad": {1: "pads", 3: "axes"},
    "Split": {1: "split"},
    "TopK": {1: "K"},
    "Resize": {1: "roi", 2: "scales", 3: "sizes"},
    "Upsample": {1: "scales"},
    "Range": {0: "start", 1: "limit", 2: "delta"},
    "OneHot": {1: "depth"},
}


def compile_time_input_misuse(graph) -> str | None:
    """One line for the first graph input (not an initializer) that feeds a COMPILE_TIME_INPUTS input
    of a node directly, or None. graph: an onnx GraphProto."""
    inputs = {value.name for value in graph.input} - {init.name for init in graph.initializer}
    for node in graph.node:
        for index, what in COMPILE_TIME_INPUTS.get(node.op_type, {}).items():
            if index < len(node.input) and node.input[index] in inputs:
                name = node.input[index]
                return (
                    f"the model's input {name!r} gives {node.op_type}'s {what} (node `{node.name or node.output[0]}`) "
                    f"at run time, but the Myriad X fixes {node.op_type}'s {what} when the blob is compiled: "
                    f"make {name!r} a constant of the ONNX file (an initializer with the value you run it with)"
                )
    return None


def explain_compiler_message(message: str) -> KnownCause | None:
    """The known cause of a compiler failure, if its message is one of COMPILER_SAID's."""
    return next((cause for pattern, cause in COMPILER_SAID if pattern.search(message)), None)


def explain_export_failure(message: str) -> KnownCause | None:
    """The known cause of a torch.onnx.export failure, if its message is one of EXPORT_REFUSED's."""
    return next((cause for pattern, cause in EXPORT_REFUSED if pattern.search(message)), None)


# Op versions the 2021.4 IR reader knows (it reads IR v10 layers of opset1..opset7 and its own).
READER_OPSETS = {f"opset{n}" for n in range(1, 8)} | {"experimental", "extension", "ie"}


def module_path(onnx_node: str | None) -> str | None:
    """The PyTorch module path the exporter kept in an ONNX node name ("/features/features.0/Conv"
    -> "features.0", "/backbone/3/conv/Conv" -> "backbone.3.conv"), if it looks like one."""
    if not onnx_node or not onnx_node.startswith("/"):
        return None
    path = ""
    for segment in onnx_node.split("/")[1:-1]:
        path = segment if not path or segment.startswith(path + ".") else f"{path}.{segment}"
    return path or None


def where(layer: str, layer_type: str, origin: dict | None) -> str:
    """`layer` (Type; ONNX node `n`, Op; PyTorch module `m`), for messages."""
    parts = [layer_type]
    if origin:
        parts.append(f"ONNX node `{origin['node']}`, {origin['op']}")
        module = module_path(origin["node"])
        if module:
            parts.append(f"PyTorch module `{module}`")
    return f"`{layer}` ({'; '.join(parts)})"


_COMPILER_LAYER = re.compile(r'Failed to compile layer "([^"]+)"')
_STAGE_LAYER = re.compile(r"stage (\S+) with type")


def compiler_layer(message: str) -> str | None:
    """The layer the compiler's message names, if it names one."""
    match = _COMPILER_LAYER.search(message) or _STAGE_LAYER.search(message)
    return match.group(1) if match else None


def explain_refused(layers, origin_of, compiler_message: str = "") -> str | None:
    """One line naming every layer of a REFUSED type (and the one the compiler named), grouped by
    cause, or None when there is nothing to name. layers: (name, type) pairs in network order;
    origin_of(name) -> {"node", "op"} or None."""
    named = compiler_layer(compiler_message)
    said = explain_compiler_message(compiler_message)
    culprits = [(name, kind) for name, kind in layers if kind in REFUSED]
    if named and named not in {name for name, _ in culprits}:
        kind = next((k for n, k in layers if n == named), None)
        if kind is not None:
            culprits.append((named, kind))
    if not culprits:
        if said is None:
            return None
        match = next(p.search(compiler_message) for p, c in COMPILER_SAID if c is said and p.search(compiler_message))
        layer = match.groupdict().get("layer")
        kind = next((k for n, k in layers if n == layer), None)
        part = where(layer, kind, origin_of(layer)) if kind else "a part"
        return f"the Myriad X cannot run {part} of this model: {said.what}; {said.fix}"
    groups: dict = {}
    for name, kind in culprits:
        groups.setdefault(kind, []).append(name)
    parts = []
    for kind, names in groups.items():
        cause = REFUSED.get(kind) or (said if named in names else None)
        listed = ", ".join(where(name, kind, origin_of(name)) for name in names[:6])
        listed += f" and {len(names) - 6} more" if len(names) > 6 else ""
        parts.append(f"{listed}: {cause.what}; {cause.fix}" if cause else f"{listed}: no known rewrite")
    count = len(culprits)
    return f"the Myriad X cannot run {count} layer(s) of this model: " + " | ".join(parts)
