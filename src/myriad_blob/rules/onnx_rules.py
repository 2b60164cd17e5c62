"""ONNX-level rules: rewrites of what exporters write into ops the 2021.4 Myriad compiler runs.

One table, ONNX_RULES: a row's needed(model) says why the model needs it ("" when it does not),
rewrite(model) returns the rewritten model. The ONNX preparation (onnx_prep.prepare) applies
the rows in order, runs each result on ONNX Runtime, and keeps it only when every output agrees
with the reference within the row's tolerance (relative to each output's largest magnitude);
the report lists every row that applied. A new case is one row here and one test.

Exact rewrites (same numbers up to float32 reassociation) keep AGREEMENT. The approximations, a
polynomial for Sin/Cos on the range the graph proves, else on [-pi/2, pi/2] after a range
reduction, state their error bound in the step's detail; an FP16 model cast to FP32 differs by
FP16's rounding, and the rows after it compare with the cast model.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from ..artifacts import FP16_MAX
from .onnx_graph import SHAPE_ONLY_OPS, Builder, Graph, copy_model, opset_of, replace_nodes

# Outputs of a kept rewrite may differ from the reference's by this much, relative to each
# output's largest magnitude (float32 reassociation, not a changed computation).
AGREEMENT = 1e-4
# The Sin/Cos polynomial: the smallest degree whose float64 error on the proven range is below
# POLYNOMIAL_MAX_ERROR, applied only where its error computed as the device does (FP16 coefficients
# and Horner steps) stays below POLYNOMIAL_FP16_ERROR, about ten FP16 steps near 1 (4.9e-4 each) and
# a tenth of the numeric check's tolerance: an oriented-box head's angle [-pi/4, 3pi/4] gives 2.2e-3 (degree 7);
# [-pi, pi] gives 7.6e-3 and is refused, as wider ranges are (their coefficients outgrow FP16).
POLYNOMIAL_MAX_ERROR = 2e-5
POLYNOMIAL_FP16_ERROR = 5e-3
# The padding of a dilated MaxPool's slices: below any value a window takes (an activation below it
# is already near FP16's overflow, which the numeric check reports), and not itself that near.
MAX_POOL_PAD = -16000.0
# An FP16 model cast to FP32: the reference computes in FP16, the cast model in FP32; they differ by
# FP16's rounding, which the device (FP16) has anyway: half the numeric check's relative tolerance.
FP16_MODEL_TOLERANCE = 1e-2
# The range-reduced Sin/Cos (any argument): the float32 reduction adds about x's float32 rounding.
REDUCED_TOLERANCE = 1e-3
# The newest ONNX opset the OpenVINO 2022.3 front end reads well (opset 18 moved the axes of the
# Reduce ops to an input, which it misreads).
FRONTEND_MAX_OPSET = 17
# Ops that compute shapes at run time: constant folding with the fixed input shapes removes them,
# which Model Optimizer 2021.4 needs (it loses shapes on such graphs); OpenVINO 2022.3 folds them itself.
SHAPE_OPS = {"Shape", "Size", "ConstantOfShape", "Range", "Expand", "NonZero"}
BOTH = frozenset({"ov2022", "mo2021"})
# The node rules emit Slice and Pad with their parameters as inputs (ONNX opset 10 and 11 on).
MIN_RULE_OPSET = 11
# Rules that emit only elementwise ops (Relu, Mul, Add, Div, Elu) apply from the oldest opset ONNX
# Runtime runs (older files are upgraded to it first): a 2017 export's Selu or Abs too.
ELEMENTWISE_OPSET = 7


@dataclasses.dataclass(frozen=True)
class OnnxRule:
    name: str  # shown in the report
    frontends: frozenset  # the IR front ends whose input it prepares
    needed: Callable  # model -> why it applies, or ""
    rewrite: Callable  # model -> rewritten model
    tolerance: float = AGREEMENT
    # The rows after it compare with its outputs, not the reference's (a change of arithmetic, FP16
    # to FP32, whose difference would count against every later row).
    new_reference: bool = False


def node_rule(op, plan: Callable, build: Callable, why, min_opset: int = MIN_RULE_OPSET):
    """needed/rewrite for a rule that replaces single nodes of type op (or of a set of types): plan(graph, node) gives
    what build needs (None: this node cannot be rewritten), build(builder, node, plan, graph)
    emits nodes that produce the node's outputs. why: "{n} ... node(s) ..." for the report, or a
    function of the [(index, node, plan)] found that says it."""

    ops = {op} if isinstance(op, str) else set(op)

    def matches(model):
        graph = Graph(model)
        found = []
        if graph.opset < min_opset:
            return graph, found
        for index, node in enumerate(model.graph.node):
            if node.op_type in ops:
                chosen = plan(graph, node)
                if chosen is not None:
                    found.append((index, node, chosen))
        return graph, found

    def needed(model) -> str:
        if not any(node.op_type in ops for node in model.graph.node):
            return ""
        found = matches(model)[1]
        if not found:
            return ""
        return why(found) if callable(why) else why.format(n=len(found))

    def rewrite(model):
        result = copy_model(model)
        graph, found = matches(result)
        replacements = {}
        for index, node, chosen in found:
            builder = Builder(result, node)
            build(builder, node, chosen, graph)
            replacements[index] = builder.nodes
        replace_nodes(result, replacements)
        return result

    return needed, rewrite


def _attribute(node, name, default=None):
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _np_type(graph: Graph, name: str):
    from onnx import helper

    elem = graph.elem_type(name)
    return helper.tensor_dtype_to_np_dtype(elem) if elem else None


# --- ScatterND writing a box (in-place slice assignment, y[..., 0:2] = v) -> Concat of slices ---


def _scatter_box(graph: Graph, node):
    """The box [start, end) per axis that the ScatterND's constant indices write, when they write
    exactly one contiguous box, element by element, in order."""
    if _attribute(node, "reduction", b"none") not in (b"none", "none"):
        return None
    data_shape, indices = graph.shape(node.input[0]), graph.const(node.input[1])
    if data_shape is None or indices is None or indices.ndim < 2:
        return None
    depth = indices.shape[-1]
    block = indices.shape[:-1]
    if len(block) != depth or depth > len(data_shape):
        return None
    box = []
    for axis in range(depth):
        start = int(indices[(0,) * depth + (axis,)])
        start += data_shape[axis] if start < 0 else 0
        expected = start + np.arange(block[axis]).reshape([-1 if a == axis else 1 for a in range(depth)])
        actual = np.where(indices[..., axis] < 0, indices[..., axis] + data_shape[axis], indices[..., axis])
        if not np.array_equal(np.broadcast_to(expected, block), actual) or start + block[axis] > data_shape[axis]:
            return None
        box.append((start, start + block[axis]))
    box += [(0, size) for size in data_shape[depth:]]
    return box, data_shape


def _build_scatter_concat(builder: Builder, node, plan, graph: Graph) -> None:
    box, shape = plan
    partial = [axis for axis, (start, end) in enumerate(box) if (start, end) != (0, shape[axis])]

    def assemble(data: str, axes: list, output: str | None) -> str:
        """data restricted to the box on the axes already handled; the updates go in the middle."""
        if not axes:
            return builder.node("Identity", [node.input[2]], output)
        axis, rest = axes[0], axes[1:]
        start, end = box[axis]
        middle = assemble(builder.slice(data, axis, start, end), rest, None)
        pieces = (
            ([builder.slice(data, axis, 0, start)] if start > 0 else [])
            + [middle]
            + ([builder.slice(data, axis, end, shape[axis])] if end < shape[axis] else [])
        )
        return builder.node("Concat", pieces, output, axis=axis)

    assemble(node.input[0], partial, node.output[0])


# --- CumSum -> MatMul with a constant triangular matrix ---


def _cumsum_plan(graph: Graph, node):
    shape, axis = graph.shape(node.input[0]), graph.const(node.input[1])
    dtype = _np_type(graph, node.input[0])
    if shape is None or axis is None or dtype is None or np.dtype(dtype).kind != "f":
        return None
    axis = int(np.asarray(axis).reshape(-1)[0])
    return (axis + len(shape) if axis < 0 else axis), shape, dtype


def _build_cumsum_matmul(builder: Builder, node, plan, graph: Graph) -> None:
    axis, shape, dtype = plan
    size = shape[axis]
    i, j = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")  # out[j] = sum_i x[i] * T[i, j]
    exclusive, reverse = _attribute(node, "exclusive", 0), _attribute(node, "reverse", 0)
    triangle = (i > j if exclusive else i >= j) if reverse else (i < j if exclusive else i <= j)
    matrix = builder.constant(triangle.astype(dtype), "triangle")
    last = len(shape) - 1
    if axis == last:
        builder.node("MatMul", [node.input[0], matrix], node.output[0])
        return
    perm = list(range(len(shape)))
    perm[axis], perm[last] = last, axis  # a swap is its own inverse
    moved = builder.node("Transpose", [node.input[0]], perm=perm)
    summed = builder.node("MatMul", [moved, matrix])
    builder.node("Transpose", [summed], node.output[0], perm=perm)


# --- GatherElements with a negative axis -> the same axis counted from the front ---


def _negative_axis_plan(graph: Graph, node):
    axis = _attribute(node, "axis", 0)
    tensor = graph.value_info.get(node.input[0])
    if axis >= 0 or tensor is None or not tensor.HasField("shape"):
        return None
    return axis + len(tensor.shape.dim)


def _build_positive_axis(builder: Builder, node, axis, graph: Graph) -> None:
    builder.node(node.op_type, list(node.input), node.output[0], axis=axis)


# --- Pooling: ONNX's output sizes and dilations where OpenVINO's pooling differs ---


def _pool_geometry(graph: Graph, node):
    """(spatial input sizes, kernel, strides, dilations, pads begin, pads end) of a pooling node
    with explicit padding and static sizes, else None."""
    shape = graph.shape(node.input[0])
    kernel = _attribute(node, "kernel_shape")
    if shape is None or not kernel or _attribute(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None
    sizes, n = list(shape[2:]), len(kernel)
    if len(sizes) != n or not all(isinstance(size, int) and size > 0 for size in sizes):
        return None
    pads = list(_attribute(node, "pads", [0] * 2 * n))
    strides = list(_attribute(node, "strides", [1] * n))
    dilations = list(_attribute(node, "dilations", [1] * n))
    return sizes, list(kernel), strides, dilations, pads[:n], pads[n:]


def _ceil_pads_end(geometry) -> list | None:
    """ONNX's ceil-mode output sizes as floor-mode end padding: ONNX drops a last window that
    would start in the end padding (the output is one smaller than ceil's formula there), which
    OpenVINO's ceil rounding keeps. None where the two already agree."""
    sizes, kernel, strides, dilations, begin, end = geometry
    pads_end, differs = [], False
    for size, k, s, d, b, e in zip(sizes, kernel, strides, dilations, begin, end):
        extent = d * (k - 1) + 1
        out = -(-(size + b + e - extent) // s) + 1
        if (out - 1) * s >= size + b:
            out, differs = out - 1, True
        pads_end.append(max((out - 1) * s + extent - size - b, 0))
    return pads_end if differs else None


def _max_pool_ceil_plan(graph: Graph, node):
    geometry = _pool_geometry(graph, node)
    if _attribute(node, "ceil_mode", 0) != 1 or geometry is None or (len(node.output) > 1 and node.output[1]):
        return None
    pads_end = _ceil_pads_end(geometry)
    return None if pads_end is None else geometry[4] + pads_end


def _build_max_pool_floor(builder: Builder, node, pads, graph: Graph) -> None:
    kept = {a.name: _attribute(node, a.name) for a in node.attribute if a.name not in ("ceil_mode", "pads")}
    builder.node("MaxPool", [node.input[0]], node.output[0], pads=pads, **kept)


def _dilated_average_plan(graph: Graph, node):
    """AveragePool-19's dilations (OpenVINO's AvgPool has none) as a depthwise Conv with 1/k weights:
    exact without padding, or when padding counts (count_include_pad), where ceil mode rounds nothing."""
    geometry = _pool_geometry(graph, node)
    if geometry is None or all(d == 1 for d in geometry[3]):
        return None
    sizes, kernel, strides, dilations, begin, end = geometry
    spans = [size + b + e - d * (k - 1) - 1 for size, k, d, b, e in zip(sizes, kernel, dilations, begin, end)]
    if _attribute(node, "ceil_mode", 0) == 1 and any(span % s for span, s in zip(spans, strides)):
        return None
    if any(geometry[4] + geometry[5]) and _attribute(node, "count_include_pad", 0) != 1:
        return None
    return graph.shape(node.input[0])[1], geometry


def _build_dilated_average_conv(builder: Builder, node, plan, graph: Graph) -> None:
    channels, (_, kernel, strides, dilations, begin, end) = plan
    weights = np.full([channels, 1, *kernel], 1.0 / np.prod(kernel), _np_type(graph, node.input[0]) or np.float32)
    builder.node(
        "Conv",
        [node.input[0], builder.constant(weights, "weights")],
        node.output[0],
        group=channels,
        kernel_shape=kernel,
        strides=strides,
        dilations=dilations,
        pads=begin + end,
    )


def _dilated_max_plan(graph: Graph, node):
    """MaxPool with dilations (OpenVINO's MaxPool-8, which the 2021.4 IR reader does not know) as
    Max of slices of the input padded with MAX_POOL_PAD: exact above it. A window's max is the max
    along each axis in turn, and k taps along one axis take about 2 log2(k) Max of two slices (the
    max over 2p taps is the max of the p-tap max and itself shifted by p dilations)."""
    geometry = _pool_geometry(graph, node)
    if geometry is None or all(d == 1 for d in geometry[3]) or (len(node.output) > 1 and node.output[1]):
        return None
    out = graph.shape(node.output[0])
    dtype = _np_type(graph, node.input[0])
    if out is None or dtype is None or np.dtype(dtype).kind != "f":
        return None
    return geometry, list(out[2:]), dtype


def _build_dilated_max(builder: Builder, node, plan, graph: Graph) -> None:
    (sizes, kernel, strides, dilations, begin, end), out, dtype = plan
    # Enough end padding for every window the output has (ceil mode's last one included).
    ends = [
        max(e, (o - 1) * s + (k - 1) * d + 1 - size - b)
        for o, s, k, d, size, b, e in zip(out, strides, kernel, dilations, sizes, begin, end)
    ]
    value = node.input[0]
    if any(begin) or any(ends):
        value = builder.node(
            "Pad",
            [
                node.input[0],
                builder.constant(np.array([0, 0, *begin, 0, 0, *ends], np.int64), "pads"),
                builder.constant(np.array(MAX_POOL_PAD, dtype), "lowest"),
            ],
        )
    for index, (k, d, s, o) in enumerate(zip(kernel, dilations, strides, out)):
        axis, length = 2 + index, sizes[index] + begin[index] + ends[index]

        def widen(tensor, shift, length, axis=axis):  # m[x] = max(m[x], m[x + shift])
            head = builder.slice(tensor, axis, 0, length - shift)
            return builder.node("Max", [head, builder.slice(tensor, axis, shift, length)]), length - shift

        taps = 1
        while 2 * taps <= k:
            value, length = widen(value, taps * d, length)
            taps *= 2
        if taps < k:
            value, length = widen(value, (k - taps) * d, length)
        last = index == len(kernel) - 1
        value = builder.node(
            "Slice",
            [
                value,
                builder.constant(np.array([0], np.int64), "starts"),
                builder.constant(np.array([(o - 1) * s + 1], np.int64), "ends"),
                builder.constant(np.array([axis], np.int64), "axes"),
                builder.constant(np.array([s], np.int64), "steps"),
            ],
            node.output[0] if last else None,
        )


# --- A grouped 3-D convolution -> one convolution per group, concatenated ---

MAX_SPLIT_GROUPS = 64  # a depthwise Conv3d over many channels would become that many layers


def _grouped_3d_plan(graph: Graph, node):
    group, shape = _attribute(node, "group", 1), graph.shape(node.input[0])
    weights = graph.const(node.input[1])
    bias = graph.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if group == 1 or group > MAX_SPLIT_GROUPS or shape is None or len(shape) != 5 or weights is None:
        return None
    if len(node.input) > 2 and node.input[2] and bias is None:
        return None
    return group, shape[1] // group, weights, bias


def _build_split_groups(builder: Builder, node, plan, graph: Graph) -> None:
    group, per_group, weights, bias = plan
    outputs = weights.shape[0] // group
    attributes = {a.name: _attribute(node, a.name) for a in node.attribute if a.name != "group"}
    parts = []
    for g in range(group):
        inputs = [
            builder.slice(node.input[0], 1, g * per_group, (g + 1) * per_group),
            builder.constant(weights[g * outputs : (g + 1) * outputs], "weights"),
        ]
        if bias is not None:
            inputs.append(builder.constant(bias[g * outputs : (g + 1) * outputs], "bias"))
        parts.append(builder.node("Conv", inputs, **attributes))
    builder.node("Concat", parts, node.output[0], axis=1)


# --- Col2Im (F.fold) whose patches do not overlap -> Reshape, Transpose, Reshape ---


def _col2im_plan(graph: Graph, node):
    """F.fold with stride == kernel, no padding or dilation (MobileViTV2's patches back to an image):
    a rearrangement, which OpenVINO 2022.3 (no Col2Im) and the Myriad can run."""
    shape, image, block = graph.shape(node.input[0]), graph.const(node.input[1]), graph.const(node.input[2])
    if shape is None or image is None or block is None or len(shape) != 3 or np.size(block) != 2:
        return None
    (height, width), (kh, kw) = [int(v) for v in np.asarray(image).reshape(-1)], [int(v) for v in block.reshape(-1)]
    strides = list(_attribute(node, "strides", [1, 1]))
    if (
        strides != [kh, kw]
        or any(_attribute(node, "pads", [0] * 4))
        or any(d != 1 for d in _attribute(node, "dilations", [1, 1]))
    ):
        return None
    if height % kh or width % kw or shape[1] % (kh * kw) or shape[2] != (height // kh) * (width // kw):
        return None
    return shape[0], shape[1] // (kh * kw), kh, kw, height, width


def _build_col2im_rearrange(builder: Builder, node, plan, graph: Graph) -> None:
    n, c, kh, kw, height, width = plan
    blocks = builder.node(
        "Reshape",
        [node.input[0], builder.constant(np.array([n, c, kh, kw, height // kh, width // kw], np.int64), "shape")],
    )
    moved = builder.node("Transpose", [blocks], perm=[0, 1, 4, 2, 5, 3])
    builder.node(
        "Reshape", [moved, builder.constant(np.array([n, c, height, width], np.int64), "shape")], node.output[0]
    )


# --- Abs -> Relu(x) + Relu(-x) ---


def _float_input(graph: Graph, node):
    """The node's floating-point input type (the rewrite's constants take it), or None."""
    dtype = _np_type(graph, node.input[0])
    return dtype if dtype is not None and np.dtype(dtype).kind == "f" else None


def _build_abs(builder: Builder, node, dtype, graph: Graph) -> None:
    x = node.input[0]
    negated = builder.node("Mul", [x, builder.constant(np.array(-1, dtype), "minus_one")])
    builder.node("Add", [builder.node("Relu", [x]), builder.node("Relu", [negated])], node.output[0])


def _build_softsign(builder: Builder, node, dtype, graph: Graph) -> None:
    x = node.input[0]
    negated = builder.node("Mul", [x, builder.constant(np.array(-1, dtype), "minus_one")])
    absolute = builder.node("Add", [builder.node("Relu", [x]), builder.node("Relu", [negated])])
    denominator = builder.node("Add", [absolute, builder.constant(np.array(1, dtype), "one")])
    builder.node("Div", [x, denominator], node.output[0])


def _build_selu(builder: Builder, node, dtype, graph: Graph) -> None:
    alpha = _attribute(node, "alpha", 1.67326319217681884765625)
    gamma = _attribute(node, "gamma", 1.05070102214813232421875)
    elu = builder.node("Elu", [node.input[0]], alpha=float(alpha))
    builder.node("Mul", [elu, builder.constant(np.array(gamma, dtype), "gamma")], node.output[0])


# --- Sign -> Where(x > 0, 1, Where(x < 0, -1, 0)) ---


def _build_sign(builder: Builder, node, dtype, graph: Graph) -> None:
    x = node.input[0]
    zero, one, minus_one = (
        builder.constant(np.array(v, dtype), name) for v, name in ((0, "zero"), (1, "one"), (-1, "minus_one"))
    )
    negative = builder.node("Where", [builder.node("Less", [x, zero]), minus_one, zero])
    builder.node("Where", [builder.node("Greater", [x, zero]), one, negative], node.output[0])


# --- GreaterOrEqual / LessOrEqual -> Not(Less) / Not(Greater) ---

# OpenVINO reads a >= b as LogicalOr(Greater, Equal), which the Myriad compiler refuses on its
# boolean inputs; its Logical_NOT of one comparison compiles (equal for every value but NaN).
_NEGATED = {"GreaterOrEqual": "Less", "LessOrEqual": "Greater"}


def _build_negated_comparison(builder: Builder, node, dtype, graph: Graph) -> None:
    opposite = builder.node(_NEGATED[node.op_type], list(node.input[:2]))
    builder.node("Not", [opposite], node.output[0])


# --- hyperbolic functions -> Exp, Log, Sqrt (the Myriad X has none of them) ---


def _build_hyperbolic(builder: Builder, node, dtype, graph: Graph) -> None:
    """Each written so that no intermediate leaves FP16 before the result does: e^x / 2 as e^(x - ln 2);
    sqrt(x^2 +- 1) as m * sqrt((x/m)^2 +- (1/m)^2) with m = max(|x|, 1); asinh of |x| (x + sqrt(x^2 + 1)
    cancels for negative x), its sign restored."""
    x, op = node.input[0], node.op_type

    def constant(value, what):
        return builder.constant(np.array(value, dtype), what)

    def half_exp(value):  # e^value / 2
        return builder.node("Exp", [builder.node("Sub", [value, constant(math.log(2), "ln2")])])

    def root_of_square(value, sign):  # sqrt(value^2 + sign), value >= 0
        m = builder.node("Max", [value, constant(1, "one")])
        ratio, inverse = builder.node("Div", [value, m]), builder.node("Div", [constant(1, "one"), m])
        squares = builder.node(
            "Add" if sign > 0 else "Sub", [builder.node("Mul", [ratio, ratio]), builder.node("Mul", [inverse, inverse])]
        )
        return builder.node("Mul", [m, builder.node("Sqrt", [squares])])

    if op in ("Sinh", "Cosh"):
        negated = builder.node("Mul", [x, constant(-1, "minus_one")])
        builder.node("Sub" if op == "Sinh" else "Add", [half_exp(x), half_exp(negated)], node.output[0])
    elif op == "Asinh":
        negated = builder.node("Mul", [x, constant(-1, "minus_one")])
        magnitude = builder.node("Add", [builder.node("Relu", [x]), builder.node("Relu", [negated])])
        value = builder.node("Log", [builder.node("Add", [magnitude, root_of_square(magnitude, 1)])])
        sign = builder.node(
            "Where", [builder.node("Less", [x, constant(0, "zero")]), constant(-1, "minus_one"), constant(1, "one")]
        )
        builder.node("Mul", [value, sign], node.output[0])
    elif op == "Acosh":
        builder.node("Log", [builder.node("Add", [x, root_of_square(x, -1)])], node.output[0])
    else:  # Atanh
        one = constant(1, "one")
        ratio = builder.node("Div", [builder.node("Add", [one, x]), builder.node("Sub", [one, x])])
        builder.node("Mul", [builder.node("Log", [ratio]), constant(0.5, "half")], node.output[0])


# --- TopK whose K the exporter computes from a shape -> a constant K ---


def _topk_plan(graph: Graph, node):
    if node.input[1] in graph.initializers:
        return None
    producer = graph.producer.get(node.input[1])
    if producer is not None and producer.op_type == "Constant":
        return None
    k = graph.const(node.input[1])
    return None if k is None else np.asarray(k, dtype=np.int64).reshape(1)


def _build_topk_constant(builder: Builder, node, k, graph: Graph) -> None:
    from onnx import helper

    inputs = [node.input[0], builder.constant(k, "k")]
    builder.nodes.append(
        helper.make_node(
            "TopK",
            inputs,
            list(node.output),
            name=node.name,
            **{a.name: helper.get_attribute_value(a) for a in node.attribute},
        )
    )


# --- NMS-free detection heads (ultralytics' end-to-end YOLOv10/YOLO26 export) pick their top-k with
# integer index arithmetic, which the Myriad compiler refuses (an S32 Tile, FloorMod) or runs where the
# CPU check cannot tell whether it is exact on the chip (an S32 Divide on the SHAVEs) ---


def _expanded_index_plan(graph: Graph, node):
    """GatherElements whose index is one vector repeated along every other axis (torch.gather of
    idx.unsqueeze(-1).expand(..., C), ultralytics' _gather): (the vector, the axis), else None. That
    is a Gather along the axis; the Expand of integers is an S32 Tile the Myriad compiler refuses."""
    expand = graph.producer.get(node.input[1])
    if expand is None or expand.op_type != "Expand":
        return None
    data, index, vector = (graph.shape(name) for name in (node.input[0], node.input[1], expand.input[0]))
    if data is None or index is None or vector is None or not len(data) == len(index) == len(vector):
        return None
    axis = _attribute(node, "axis", 0) % len(data)
    repeated = all(vector[a] == 1 and index[a] == data[a] for a in range(len(data)) if a != axis)
    return (expand.input[0], axis) if repeated and vector[axis] == index[axis] else None


def _build_gather_vector(builder: Builder, node, plan, graph: Graph) -> None:
    vector, axis = plan
    flat = builder.node("Reshape", [vector, builder.constant(np.array([-1], np.int64), "shape")])
    builder.node("Gather", [node.input[0], flat], node.output[0], axis=axis)


# The largest index range looked up in a table (held in the blob: 1 MiB of int32 at most). 300 picks
# of an end-to-end head over 80 classes are 24,000 indices; Objects365's 365 classes 109,500.
INDEX_TABLE_MAX = 1 << 18
_INTEGER_TYPES = {6, 7}  # onnx.TensorProto.INT32, INT64


def _index_table_plan(graph: Graph, node):
    """Integer Div or Mod of TopK's (or ArgMax's) indices by a constant: the table of the results over
    the indices' range [0, N), else None. ultralytics' end-to-end heads split a top-k over anchors x
    classes into anchor = i // nc and class = i % nc; in FP16 i (up to 24,000) is not exact."""
    source = graph.producer.get(node.input[0])
    if source is None or graph.elem_type(node.input[0]) not in _INTEGER_TYPES:
        return None
    if source.op_type == "TopK" and node.input[0] == source.output[1]:
        axis = _attribute(source, "axis", -1)
    elif source.op_type in ("ArgMax", "ArgMin"):
        axis = _attribute(source, "axis", 0)
    else:
        return None
    shape, divisor = graph.shape(source.input[0]), graph.const(node.input[1])
    if shape is None or divisor is None or np.size(divisor) != 1 or int(np.asarray(divisor).reshape(-1)[0]) <= 0:
        return None
    if np.ndim(divisor) > len(shape):  # a [1, 1, 1] divisor would broadcast the result up a rank
        return None
    size = shape[axis % len(shape)]
    if size > INDEX_TABLE_MAX:
        return None
    indices, divisor = np.arange(size, dtype=np.int64), int(np.asarray(divisor).reshape(-1)[0])
    table = indices // divisor if node.op_type == "Div" else indices % divisor
    from onnx import helper

    return table.astype(helper.tensor_dtype_to_np_dtype(graph.elem_type(node.input[0])))


def _build_index_table(builder: Builder, node, table, graph: Graph) -> None:
    builder.node("Gather", [builder.constant(table, "table"), node.input[0]], node.output[0], axis=0)


# --- ArgMax/ArgMin with select_last_index -> the first index of the reversed axis, looked up ---


def _last_index_plan(graph: Graph, node):
    """(axis, size) of an ArgMax/ArgMin that picks the last of equal values, else None. Neither front
    end reads select_last_index=1; the first index j of the axis reversed is the last one, n-1-j,
    read from a table (a Gather) since the Myriad X computes integer subtraction in FP16."""
    if not _attribute(node, "select_last_index", 0):
        return None
    shape = graph.shape(node.input[0])
    if shape is None:
        return None
    axis = _attribute(node, "axis", 0) % len(shape)
    return (axis, shape[axis]) if shape[axis] <= INDEX_TABLE_MAX else None


def _build_last_index(builder: Builder, node, plan, graph: Graph) -> None:
    axis, size = plan
    reversed_ = builder.node(
        "Slice",
        [
            node.input[0],
            builder.constant(np.array([size - 1], np.int64), "starts"),
            builder.constant(np.array([-size - 1], np.int64), "ends"),  # one before the first
            builder.constant(np.array([axis], np.int64), "axes"),
            builder.constant(np.array([-1], np.int64), "steps"),
        ],
    )
    keepdims = _attribute(node, "keepdims", 1)
    first = builder.node(node.op_type, [reversed_], axis=axis, keepdims=keepdims)
    table = builder.constant(np.arange(size - 1, -1, -1, dtype=np.int64), "last_index")
    builder.node("Gather", [table, first], node.output[0], axis=0)


# --- a computed scalar broadcast in arithmetic -> the scalar as a [1] vector ---


def _computed_scalar_plan(graph: Graph, node):
    """The index of the input that is a computed 0-D tensor (x.mean() with no dims) while the other
    input has dims, or None. OpenVINO 2021.4's CPU plugin cannot run such a broadcast ("could not
    create a primitive descriptor for a reorder primitive"), which stops the numeric check; a
    constant scalar (x * 0.5) runs."""
    if len(node.input) != 2:
        return None
    shapes = [graph.shape(name) for name in node.input]
    for index in (0, 1):
        other = shapes[1 - index]
        if shapes[index] == () and other and graph.const(node.input[index]) is None:
            return index
    return None


def _build_scalar_as_vector(builder: Builder, node, index, graph: Graph) -> None:
    from onnx import helper

    inputs = list(node.input)
    inputs[index] = builder.node("Reshape", [inputs[index], builder.constant(np.array([1], np.int64), "shape")])
    builder.nodes.append(
        helper.make_node(
            node.op_type,
            inputs,
            list(node.output),
            name=node.name,
            **{a.name: helper.get_attribute_value(a) for a in node.attribute},
        )
    )


# --- Sin/Cos on a range the graph proves -> a polynomial ---


def interval(graph: Graph, name: str, depth: int = 0) -> tuple[float, float] | None:
    """Bounds on a tensor's values that follow from the graph alone (a Sigmoid's (0, 1), constants,
    and affine steps after them), or None."""
    value = graph.const(name)
    if value is not None:
        return (float(np.min(value)), float(np.max(value))) if np.size(value) else None
    node = graph.producer.get(name)
    if node is None or depth > 32:
        return None
    op = node.op_type
    if op in ("Sigmoid", "HardSigmoid"):
        return 0.0, 1.0
    if op == "Tanh":
        return -1.0, 1.0
    if op in (
        "Identity",
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Transpose",
        "Slice",
        "Gather",
        "Split",
        "MaxPool",
        "Expand",
    ):
        return interval(graph, node.input[0], depth + 1)
    if op == "Cast":  # only between float types: a cast to an integer truncates
        from onnx import helper

        to = np.dtype(helper.tensor_dtype_to_np_dtype(_attribute(node, "to", 1)))
        source = _np_type(graph, node.input[0])
        if to.kind != "f" or source is None or np.dtype(source).kind != "f":
            return None
        return interval(graph, node.input[0], depth + 1)
    if op == "Concat":
        parts = [interval(graph, i, depth + 1) for i in node.input]
        return None if any(p is None for p in parts) else (min(p[0] for p in parts), max(p[1] for p in parts))
    if op == "Neg":
        inner = interval(graph, node.input[0], depth + 1)
        return None if inner is None else (-inner[1], -inner[0])
    if op == "Relu":
        inner = interval(graph, node.input[0], depth + 1)
        return None if inner is None else (max(inner[0], 0.0), max(inner[1], 0.0))
    if op == "Clip":
        low = graph.const(node.input[1]) if len(node.input) > 1 and node.input[1] else _attribute(node, "min")
        high = graph.const(node.input[2]) if len(node.input) > 2 and node.input[2] else _attribute(node, "max")
        inner = interval(graph, node.input[0], depth + 1) or (-math.inf, math.inf)
        low = -math.inf if low is None else float(np.asarray(low).reshape(-1)[0])
        high = math.inf if high is None else float(np.asarray(high).reshape(-1)[0])
        bounded = (max(inner[0], low), min(inner[1], high))
        return bounded if all(map(math.isfinite, bounded)) else None
    if op in ("Add", "Sub", "Mul", "Div"):
        a, b = (interval(graph, i, depth + 1) for i in node.input[:2])
        if a is None or b is None:
            return None
        if op == "Add":
            return a[0] + b[0], a[1] + b[1]
        if op == "Sub":
            return a[0] - b[1], a[1] - b[0]
        if op == "Div":
            if b[0] <= 0 <= b[1]:
                return None
            b = (1 / b[1], 1 / b[0])
        products = [x * y for x in a for y in b]
        return min(products), max(products)
    return None


def fit_polynomial(function, low: float, high: float) -> tuple[np.ndarray, float, float, float]:
    """Power-basis coefficients (lowest first) of f on [low, high] in t = (x - centre) / half, and
    the error as the device computes it: coefficients, argument and every Horner step rounded to
    FP16 (the IR stores FP16 weights and the Myriad computes in FP16). The smallest degree whose
    float64 error is below POLYNOMIAL_MAX_ERROR: (coefficients, centre, half, FP16 error)."""
    centre, half = (low + high) / 2, max((high - low) / 2, 1e-6)
    x = np.linspace(low, high, 8193)
    t = (x - centre) / half
    exact = function(x)
    for degree in range(1, 24):
        series = np.polynomial.chebyshev.Chebyshev.fit(t, exact, degree, domain=[-1, 1])
        coefficients = np.polynomial.chebyshev.cheb2poly(series.coef)
        if float(np.max(np.abs(np.polynomial.polynomial.polyval(t, coefficients) - exact))) < POLYNOMIAL_MAX_ERROR:
            break
    half16 = np.float16
    with np.errstate(over="ignore"):
        t16 = ((x.astype(half16) - half16(centre)) * half16(1 / half)).astype(half16)
        value = np.full_like(t16, half16(coefficients[-1]))
        for coefficient in coefficients[-2::-1]:
            value = (value * t16 + half16(coefficient)).astype(half16)
    return coefficients, centre, half, float(np.max(np.abs(value.astype(np.float64) - exact)))


_TRIG = {"Sin": np.sin, "Cos": np.cos}


def _trig_plan(graph: Graph, node):
    bounds = interval(graph, node.input[0])
    dtype = _np_type(graph, node.input[0])
    if bounds is None or dtype is None or np.dtype(dtype).kind != "f" or bounds[1] - bounds[0] > 4 * math.pi:
        return None
    fit = fit_polynomial(_TRIG[node.op_type], *bounds)
    return fit + (bounds, dtype) if fit[3] <= POLYNOMIAL_FP16_ERROR else None


def _build_trig_polynomial(builder: Builder, node, plan, graph: Graph) -> None:
    coefficients, centre, half, _, _, dtype = plan
    t = builder.node(
        "Mul",
        [
            builder.node("Sub", [node.input[0], builder.constant(np.array(centre, dtype), "centre")]),
            builder.constant(np.array(1 / half, dtype), "inverse_half"),
        ],
    )
    value = builder.constant(np.array(coefficients[-1], dtype), "c")
    for index, coefficient in enumerate(coefficients[-2::-1]):  # Horner's scheme
        last = index == len(coefficients) - 2
        value = builder.node(
            "Add",
            [builder.node("Mul", [value, t]), builder.constant(np.array(coefficient, dtype), "c")],
            node.output[0] if last else None,
        )
    if len(coefficients) == 1:
        builder.node("Identity", [value], node.output[0])


def _trig_why(found) -> str:
    """Each Sin/Cos node's proven range and degree, and the largest error in FP16 arithmetic."""
    op = found[0][1].op_type
    worst = max(plan[3] for _, _, plan in found)
    ranges = ", ".join(
        f"{node.name or node.output[0]} on [{plan[4][0]:.4g}, {plan[4][1]:.4g}] (degree {len(plan[0]) - 1})"
        for _, node, plan in found[:4]
    )
    return f"{len(found)} {op} node(s) with a range the graph proves: {ranges}; largest error in FP16 arithmetic {worst:.1e}"


# --- ReduceL2 (F.normalize, x / x.norm()) -> a mean of squares, prescaled by a power of two ---

# The largest magnitude whose square stays 4x below FP16's largest value (127.9^2 = 16,358): the FP16
# range check's near-overflow headroom (numeric.NEAR_OVERFLOW_HEADROOM), so a proven-bound rewrite is not flagged.
_SQUARE_SAFE = 127.9


def _reduce_l2_plan(graph: Graph, node):
    """(axes, keepdims, N, bound, dtype) for a ReduceL2 whose sum of squares can leave FP16 on the
    Myriad. Its plugin runs ReduceL2 as x^2 -> mean -> times N -> root, all FP16 (checks/fp16_stages.py),
    so the sum N * bound^2 must stay below 65,504. bound: the largest |x| the graph proves (a Tanh's 1,
    a Clip's limits), else FP16's own largest value, which no FP16 tensor passes."""
    shape, dtype = graph.shape(node.input[0]), _float_input(graph, node)
    if shape is None or dtype is None or not all(isinstance(size, int) and size > 0 for size in shape):
        return None
    axes = _attribute(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = graph.const(node.input[1])
        if axes is None:
            return None
    axes = sorted({int(a) + len(shape) if int(a) < 0 else int(a) for a in np.asarray(axes).reshape(-1)})
    if not axes:  # no axes: ONNX reduces over all of them (noop_with_empty_axes aside)
        if _attribute(node, "noop_with_empty_axes", 0):
            return None
        axes = list(range(len(shape)))
    count = int(np.prod([shape[a] for a in axes]))
    proven = interval(graph, node.input[0])
    bound = min(max(abs(proven[0]), abs(proven[1])), FP16_MAX) if proven else FP16_MAX
    if count * bound * bound <= FP16_MAX:
        return None
    return axes, _attribute(node, "keepdims", 1), count, bound, dtype


def _reduce(builder: Builder, graph: Graph, op: str, x: str, axes: list, keepdims: int) -> str:
    if graph.opset >= 18:  # the axes became an input
        return builder.node(op, [x, builder.constant(np.array(axes, np.int64), "axes")], keepdims=keepdims)
    return builder.node(op, [x], axes=axes, keepdims=keepdims)


def _mean_of_squares(builder: Builder, graph: Graph, x: str, axes: list, keepdims: int) -> str:
    """sqrt(ReduceMean(x^2)): no intermediate larger than max |x|^2 (the plugin's times-N is gone)."""
    return builder.node("Sqrt", [_reduce(builder, graph, "ReduceMean", builder.node("Mul", [x, x]), axes, keepdims)])


def _build_reduce_l2(builder: Builder, node, plan, graph: Graph) -> None:
    """||x|| = sqrt(N) * sqrt(mean(x^2)): the plugin's times-N step, which overflows, is gone.
    Where the graph proves |x| <= bound, x is first divided by s, the smallest power of two that brings
    the bound to 127.9 or below (exact in FP16: only the exponent changes), and the root multiplied by
    s * sqrt(N). Where it proves nothing, the scale is taken at run time instead, per reduced vector:
    m = max |x| (at least 2^-10, so 1/m fits), ||x|| = m * sqrt(N) * sqrt(mean((x / m)^2)); then
    (x / m)^2 <= 1 for any FP16 input, and its largest value is 1, so the squares FP16 flushes (below
    2^-14, |x| < m / 128) are ones that add less than 2^-14 each to a mean of at least 1/N."""
    axes, keepdims, count, bound, dtype = plan
    x, root = node.input[0], math.sqrt(count)

    def constant(value, what):
        return builder.constant(np.array(value, dtype), what)

    if bound < FP16_MAX:  # proven by the graph
        scale = 2.0 ** max(math.ceil(math.log2(bound / _SQUARE_SAFE)), 0)
        prescaled = builder.node("Mul", [x, constant(1 / scale, "prescale")]) if scale > 1 else x
        norm = _mean_of_squares(builder, graph, prescaled, axes, keepdims)
        builder.node("Mul", [norm, constant(root * scale, "scale")], node.output[0])
        return
    magnitude = builder.node("Max", [x, builder.node("Mul", [x, constant(-1, "minus_one")])])
    peak = builder.node("Max", [_reduce(builder, graph, "ReduceMax", magnitude, axes, 1), constant(2.0**-10, "floor")])
    norm = _mean_of_squares(builder, graph, builder.node("Div", [x, peak]), axes, keepdims)
    if not keepdims:
        peak = _reduce(builder, graph, "ReduceMax", peak, axes, 0)
    scaled = builder.node("Mul", [norm, constant(root, "root_n")])
    builder.node("Mul", [scaled, peak], node.output[0])


def _lp_pool_plan(graph: Graph, node):
    """(p, the bound the graph proves on |x| or None, dtype) of an LpPool with an integer p >= 1, no
    dilations and no ceil mode (AveragePool's window count differs from LpPool's sum there), else None."""
    p, dtype = int(_attribute(node, "p", 2)), _float_input(graph, node)
    kernel = _attribute(node, "kernel_shape")
    if p < 1 or dtype is None or not kernel or _attribute(node, "ceil_mode", 0):
        return None
    if any(d != 1 for d in _attribute(node, "dilations", [1] * len(kernel))):
        return None
    proven = interval(graph, node.input[0])
    return p, max(abs(proven[0]), abs(proven[1])) if proven else None, dtype


def _build_lp_pool(builder: Builder, node, plan, graph: Graph) -> None:
    """LpPool = (sum over the window of |x|^p)^(1/p) = K^(1/p) * AveragePool(|x|^p)^(1/p), the padding's
    zeros counted (count_include_pad=1), as LpPool adds them. The root of the mean comes before the
    times-K^(1/p), so no intermediate exceeds max |x|^p; where the graph proves |x| <= bound with
    bound^p above 127.9^2, x is first divided by a power of two (exact in FP16) so its powers stay in FP16."""
    p, bound, dtype = plan
    x, count = node.input[0], int(np.prod(_attribute(node, "kernel_shape")))
    geometry = {
        key: _attribute(node, key) for key in ("kernel_shape", "strides", "pads", "auto_pad") if _attribute(node, key)
    }

    def constant(value, what):
        return builder.constant(np.array(value, dtype), what)

    safe = _SQUARE_SAFE ** (2 / p)  # the largest |x| whose p-th power stays as far from FP16's limit as 127.9^2
    scale = 2.0 ** max(math.ceil(math.log2(bound / safe)), 0) if bound else 1.0
    prescaled = builder.node("Mul", [x, constant(1 / scale, "prescale")]) if scale > 1 else x
    if p == 2:
        power = builder.node("Mul", [prescaled, prescaled])
    else:
        negated = builder.node("Mul", [prescaled, constant(-1, "minus_one")])
        power = builder.node("Add", [builder.node("Relu", [prescaled]), builder.node("Relu", [negated])])
        if p > 2:
            power = builder.node("Pow", [power, constant(p, "p")])
    mean = builder.node("AveragePool", [power], count_include_pad=1, **geometry)
    if p == 1:
        root = mean
    elif p == 2:
        root = builder.node("Sqrt", [mean])
    else:
        root = builder.node("Pow", [mean, constant(1 / p, "inverse_p")])
    builder.node("Mul", [root, constant(count ** (1 / p) * scale, "scale")], node.output[0])


def _reduce_l2_why(found) -> str:
    parts = ", ".join(
        f"{node.name or node.output[0]} over {plan[2]} values (sum of squares up to {plan[2] * plan[3] ** 2:.3g})"
        for _, node, plan in found[:4]
    )
    return (
        f"{len(found)} ReduceL2 node(s) whose sum of squares can pass FP16's 65504 on the Myriad (its plugin "
        f"runs x^2 -> mean -> times N -> root in FP16): {parts}"
    )


# --- LSTM and GRU (fixed length, torch's defaults) -> unrolled MatMul/Sigmoid/Tanh steps ---

_GATES = {"LSTM": 4, "GRU": 3}  # ONNX gate order: LSTM i, o, f, c; GRU z, r, h
_DEFAULT_ACTIVATIONS = {"LSTM": [b"Sigmoid", b"Tanh", b"Tanh"], "GRU": [b"Sigmoid", b"Tanh"]}


def _recurrent_plan(graph: Graph, node):
    """(X shape, (W, R, B), inputs) for a recurrent node the unrolling covers: constant weights,
    no sequence lengths or peepholes, time-major layout, the default activations, no clipping."""
    optional = list(node.input) + [""] * (8 - len(node.input))
    peepholes = optional[7] if node.op_type == "LSTM" else ""
    activations = _attribute(node, "activations")
    if (
        optional[4]
        or peepholes
        or _attribute(node, "layout", 0)
        or _attribute(node, "input_forget", 0)
        or _attribute(node, "clip") is not None
        or activations not in (None, _DEFAULT_ACTIVATIONS[node.op_type], _DEFAULT_ACTIVATIONS[node.op_type] * 2)
    ):
        return None
    x_shape = graph.shape(node.input[0])
    weights = [graph.const(name) if name else None for name in optional[1:4]]
    if x_shape is None or weights[0] is None or weights[1] is None or (optional[3] and weights[2] is None):
        return None
    return x_shape, weights, optional


def _lstm_step(builder: Builder, node, gates: str, state: tuple, hidden: int, recurrence: tuple) -> tuple:
    h, c = state
    gates = builder.node("Add", [gates, builder.node("MatMul", [h, recurrence[0]])])
    i, o, f, g = (builder.slice(gates, 2, k * hidden, (k + 1) * hidden) for k in range(4))
    c = builder.node(
        "Add",
        [
            builder.node("Mul", [builder.node("Sigmoid", [f]), c]),
            builder.node("Mul", [builder.node("Sigmoid", [i]), builder.node("Tanh", [g])]),
        ],
    )
    return builder.node("Mul", [builder.node("Sigmoid", [o]), builder.node("Tanh", [c])]), c


def _gru_step(builder: Builder, node, projected: str, state: tuple, hidden: int, recurrence: tuple) -> tuple:
    (h,), (weights, bias) = state, recurrence
    recurrent = builder.node("Add", [builder.node("MatMul", [h, weights]), bias])  # H R^T + Rb, all three gates
    z, r = (
        builder.node(
            "Sigmoid",
            [
                builder.node(
                    "Add",
                    [
                        builder.slice(projected, 2, k * hidden, (k + 1) * hidden),
                        builder.slice(recurrent, 2, k * hidden, (k + 1) * hidden),
                    ],
                )
            ],
        )
        for k in range(2)
    )
    x_part = builder.slice(projected, 2, 2 * hidden, 3 * hidden)
    if _attribute(node, "linear_before_reset", 0):  # torch's GRU: r gates (H Rh^T + Rbh)
        reset = builder.node("Mul", [r, builder.slice(recurrent, 2, 2 * hidden, 3 * hidden)])
    else:  # (r * H) Rh^T + Rbh
        reset = builder.node(
            "Add",
            [
                builder.node(
                    "MatMul", [builder.node("Mul", [r, h]), builder.slice(weights, 1, 2 * hidden, 3 * hidden)]
                ),
                builder.slice(bias, 0, 2 * hidden, 3 * hidden),
            ],
        )
    n = builder.node("Tanh", [builder.node("Add", [x_part, reset])])
    return (builder.node("Add", [n, builder.node("Mul", [z, builder.node("Sub", [h, n])])]),)  # (1 - z) n + z H


def _build_recurrent_unrolled(builder: Builder, node, plan, graph: Graph) -> None:
    (steps, batch, _), (w, r, b), inputs = plan
    directions, hidden, gates = w.shape[0], r.shape[-1], _GATES[node.op_type]
    dtype = w.dtype
    outputs = list(node.output) + [""] * (3 - len(node.output))
    sequences, finals = [], []
    for direction in range(directions):
        bias = b[direction] if b is not None else np.zeros(2 * gates * hidden, dtype)
        x_bias, r_bias = bias[: gates * hidden], bias[gates * hidden :]
        weights = builder.constant(r[direction].T.copy(), "R")
        if node.op_type == "LSTM":  # both biases add to the input projection
            x_bias, recurrence = x_bias + r_bias, (weights,)
        else:  # GRU keeps the recurrent bias apart (the reset gate multiplies it)
            recurrence = (weights, builder.constant(r_bias.astype(dtype), "Rb"))
        projected = builder.node(
            "Add",
            [
                builder.node("MatMul", [inputs[0], builder.constant(w[direction].T.copy(), "W")]),
                builder.constant(x_bias.astype(dtype), "bias"),
            ],
        )  # [T, B, gates * H]

        def initial(index, direction=direction):
            if index < len(inputs) and inputs[index]:
                return builder.slice(inputs[index], 0, direction, direction + 1)  # [1, B, H]
            return builder.constant(np.zeros((1, batch, hidden), dtype), "zeros")

        state = (initial(5), initial(6)) if node.op_type == "LSTM" else (initial(5),)
        step_function = _lstm_step if node.op_type == "LSTM" else _gru_step
        per_step = {}
        backwards = direction == 1 or _attribute(node, "direction", b"forward") in (b"reverse", "reverse")
        for step in range(steps - 1, -1, -1) if backwards else range(steps):
            state = step_function(builder, node, builder.slice(projected, 0, step, step + 1), state, hidden, recurrence)
            per_step[step] = state[0]
        sequences.append(builder.node("Concat", [per_step[step] for step in range(steps)], axis=0))  # [T, B, H]
        finals.append(state)

    def join(parts, output, axis):
        builder.node("Concat", parts, output, axis=axis) if len(parts) > 1 else builder.node("Identity", parts, output)

    if outputs[0]:
        axis_one = builder.constant(np.array([1], np.int64), "axes")
        join(
            [
                builder.node("Unsqueeze", [s, axis_one])
                if graph.opset >= 13
                else builder.node("Unsqueeze", [s], axes=[1])
                for s in sequences
            ],
            outputs[0],
            1,
        )  # [T, D, B, H]
    for index, output in enumerate(outputs[1 : 1 + len(finals[0])]):
        if output:
            join([state[index] for state in finals], output, 0)  # [D, B, H]


# --- A token prepended as a constant (ViT's class token: Concat of a constant and x) -> Pad + Add ---


def _constant_concat_plan(graph: Graph, node):
    """One computed input among constant ones, rank 3 (tokens): OpenVINO 2021.4's CPU plugin returns
    zeros for the constant rows of such a Concat (case03d; 2022.3 and ONNX Runtime agree)."""
    values = [graph.const(name) for name in node.input]
    computed = [i for i, v in enumerate(values) if v is None]
    shape = graph.shape(node.output[0])
    if len(computed) != 1 or len(node.input) < 2 or shape is None or len(shape) != 3:
        return None
    dtype = _np_type(graph, node.output[0])
    axis = _attribute(node, "axis", 0) % 3
    sizes = [graph.shape(name) for name in node.input]
    if dtype is None or any(s is None for s in sizes):
        return None
    index = computed[0]
    parts = [
        np.broadcast_to(v, sizes[i]).astype(dtype) if v is not None else np.zeros(sizes[i], dtype)
        for i, v in enumerate(values)
    ]
    before = sum(sizes[i][axis] for i in range(index))
    after = sum(sizes[i][axis] for i in range(index + 1, len(sizes)))
    return axis, before, after, np.concatenate(parts, axis)


def _build_pad_add(builder: Builder, node, plan, graph: Graph) -> None:
    axis, before, after, constants = plan
    pads = [0] * 6
    pads[axis], pads[3 + axis] = before, after
    computed = next(name for name in node.input if graph.const(name) is None)
    padded = builder.node("Pad", [computed, builder.constant(np.array(pads, np.int64), "pads")])
    builder.node("Add", [padded, builder.constant(constants, "tokens")], node.output[0])


# --- Sin/Cos of any value -> range reduction (Floor) and a polynomial on [-pi/2, pi/2] ---

REDUCED_RANGE = (-math.pi / 2, math.pi / 2)


def _trig_reduced_plan(graph: Graph, node):
    """Sin/Cos whose argument the graph does not bound (the proven-range row did not apply):
    x = k pi + r with k = floor(x / pi + 1/2), r in [-pi/2, pi/2], and sin x = (-1)^k sin r,
    cos x = (-1)^k cos r (SAM's positional encodings, case17)."""
    dtype = _np_type(graph, node.input[0])
    if dtype is None or np.dtype(dtype).kind != "f" or _trig_plan(graph, node) is not None:
        return None
    fit = fit_polynomial(_TRIG[node.op_type], *REDUCED_RANGE)
    return fit + (REDUCED_RANGE, dtype) if fit[3] <= POLYNOMIAL_FP16_ERROR else None


def _build_trig_reduced(builder: Builder, node, plan, graph: Graph) -> None:
    coefficients, _, half, _, _, dtype = plan

    def const(value, what):
        return builder.constant(np.array(value, dtype), what)

    x = node.input[0]
    k = builder.node(
        "Floor", [builder.node("Add", [builder.node("Mul", [x, const(1 / math.pi, "inverse_pi")]), const(0.5, "half")])]
    )
    r = builder.node("Sub", [x, builder.node("Mul", [k, const(math.pi, "pi")])])
    # (-1)^k = 1 - 2 (k - 2 floor(k / 2))
    parity = builder.node(
        "Sub",
        [
            k,
            builder.node(
                "Mul", [builder.node("Floor", [builder.node("Mul", [k, const(0.5, "half")])]), const(2, "two")]
            ),
        ],
    )
    sign = builder.node("Sub", [const(1, "one"), builder.node("Mul", [parity, const(2, "two")])])
    t = builder.node("Mul", [r, const(1 / half, "inverse_half")])  # centre 0
    value = const(coefficients[-1], "c")
    for coefficient in coefficients[-2::-1]:  # Horner's scheme
        value = builder.node("Add", [builder.node("Mul", [value, t]), const(coefficient, "c")])
    builder.node("Mul", [value, sign], node.output[0])


def _trig_reduced_why(found) -> str:
    op = found[0][1].op_type
    names = ", ".join(node.name or node.output[0] for _, node, _ in found[:4])
    worst = max(plan[3] for _, _, plan in found)
    return (
        f"{len(found)} {op} node(s) on values the graph does not bound ({names}): reduced to [-pi/2, pi/2] "
        f"with Floor, then degree {len(found[0][2][0]) - 1} (largest error in FP16 arithmetic {worst:.1e}, "
        "plus the argument's own FP16 rounding)"
    )


# --- Bicubic Resize by an integer factor -> edge Pad + depthwise ConvTranspose + Slice ---

CUBIC_PAD = 2  # the cubic kernel reaches two pixels beyond the edge


def _cubic_matrix(size: int, out: int, scale: float, mode: str, a: float) -> np.ndarray:
    """ONNX Resize's cubic interpolation along one axis as a matrix (out x size + 2 CUBIC_PAD) on the
    edge-padded input (ONNX Runtime clamps the taps to the edge, as the padding repeats it)."""

    def weight(x):
        x = abs(x)
        if x <= 1:
            return (a + 2) * x**3 - (a + 3) * x**2 + 1
        return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a if x < 2 else 0.0

    matrix = np.zeros((out, size + 2 * CUBIC_PAD))
    for o in range(out):
        if mode == "asymmetric":
            x = o / scale
        elif mode == "pytorch_half_pixel" and out == 1:
            x = 0.0
        else:  # half_pixel, pytorch_half_pixel
            x = (o + 0.5) / scale - 0.5
        base = math.floor(x)
        f = x - base
        for tap, w in zip(range(base - 1, base + 3), (weight(1 + f), weight(f), weight(1 - f), weight(2 - f))):
            matrix[o, min(max(tap, -CUBIC_PAD), size - 1 + CUBIC_PAD) + CUBIC_PAD] += w
    return matrix


def _transposed_kernel(matrix: np.ndarray, stride: int):
    """(kernel, crop start) such that matrix @ x == ConvTranspose(x, kernel, stride)[start:start + out],
    or None when the matrix is not such a filter."""
    out, size = matrix.shape
    middle = size // 2
    rows = np.nonzero(np.abs(matrix[:, middle]) > 1e-12)[0]
    if not len(rows):
        return None
    low, high = int(rows.min()), int(rows.max())
    kernel = matrix[low : high + 1, middle]
    start = stride * middle - low
    rebuilt = np.zeros((out, size))
    for i in range(size):
        for u, value in enumerate(kernel):
            o = stride * i + u - start
            if 0 <= o < out:
                rebuilt[o, i] = value
    if start < 0 or not np.allclose(rebuilt, matrix, atol=1e-9):
        return None
    return kernel, start


def _bicubic_plan(graph: Graph, node):
    if _attribute(node, "mode", b"nearest") not in (b"cubic", "cubic") or _attribute(node, "exclude_outside", 0):
        return None
    mode = _attribute(node, "coordinate_transformation_mode", b"half_pixel")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    shape, out_shape = graph.shape(node.input[0]), graph.shape(node.output[0])
    dtype = _np_type(graph, node.input[0])
    if (
        mode not in ("half_pixel", "pytorch_half_pixel", "asymmetric")
        or shape is None
        or out_shape is None
        or len(shape) != 4
        or tuple(out_shape[:2]) != tuple(shape[:2])
        or dtype is None
        or np.dtype(dtype).kind != "f"
    ):
        return None
    scales = graph.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    scales = None if scales is None or not np.size(scales) else [float(v) for v in np.asarray(scales).reshape(-1)]
    kernels = []
    for axis in (2, 3):
        size, out = shape[axis], out_shape[axis]
        if out % size:
            return None
        stride = out // size
        scale = scales[axis] if scales else out / size
        if scale != stride:
            return None
        found = _transposed_kernel(
            _cubic_matrix(size, out, scale, mode, _attribute(node, "cubic_coeff_a", -0.75)), stride
        )
        if found is None:
            return None
        kernels.append((stride, *found, out))
    return shape[1], kernels, dtype


def _build_bicubic(builder: Builder, node, plan, graph: Graph) -> None:
    channels, ((stride_h, kernel_h, start_h, out_h), (stride_w, kernel_w, start_w, out_w)), dtype = plan
    p = CUBIC_PAD
    padded = builder.node(
        "Pad", [node.input[0], builder.constant(np.array([0, 0, p, p, 0, 0, p, p], np.int64), "pads")], mode="edge"
    )
    weights = np.broadcast_to(np.outer(kernel_h, kernel_w), (channels, 1, len(kernel_h), len(kernel_w)))
    up = builder.node(
        "ConvTranspose",
        [padded, builder.constant(weights.astype(dtype), "weights")],
        group=channels,
        kernel_shape=[len(kernel_h), len(kernel_w)],
        strides=[stride_h, stride_w],
    )
    builder.node(
        "Slice",
        [
            up,
            builder.constant(np.array([start_h, start_w], np.int64), "starts"),
            builder.constant(np.array([start_h + out_h, start_w + out_w], np.int64), "ends"),
            builder.constant(np.array([2, 3], np.int64), "axes"),
        ],
        node.output[0],
    )


# --- If on a condition that depends on no input value -> the branch it takes ---


def _constant_if_plan(graph: Graph, node):
    """The If's branch (a GraphProto) when its condition is a constant once the input shapes are
    fixed (torch.onnx.export's squeeze(dim) checks the dim's size with an If), else None."""
    condition = graph.const(node.input[0])
    if condition is None or np.size(condition) != 1:
        return None
    return _attribute(node, "then_branch" if bool(np.asarray(condition).reshape(-1)[0]) else "else_branch")


def _build_inlined_branch(builder: Builder, node, branch, graph: Graph) -> None:
    import onnx
    from onnx import helper

    renamed = {}
    outer = {init.name for init in builder.model.graph.initializer}
    for init in branch.initializer:
        copy = onnx.TensorProto()
        copy.CopyFrom(init)
        if init.name in outer:
            renamed[init.name] = copy.name = builder.name("initializer")
        builder.model.graph.initializer.append(copy)
    for inner in branch.node:
        copied = helper.make_node("Identity", [], [])
        copied.CopyFrom(inner)
        for index, name in enumerate(copied.input):
            copied.input[index] = renamed.get(name, name)
        builder.nodes.append(copied)
    for value, output in zip(branch.output, node.output):
        if output:
            builder.node("Identity", [renamed.get(value.name, value.name)], output)


# --- an op neither front end reads -> ONNX's own function body for it ---

# Ops whose ONNX schema defines them as a function of other ops, and which neither front end reads
# (measured on ONNX's node tests: Mish-18, GroupNormalization-18/21 and RMSNormalization-23 are
# unknown to OpenVINO 2022.3 and to Model Optimizer 2021.4, while their bodies convert). Ops a front
# end reads stay as they are (HardSwish, Gelu, Softplus, ...), so models that convert today keep
# their blob.
FUNCTION_BODY_OPS = {"Mish", "GroupNormalization", "RMSNormalization"}


def _function_body_plan(graph: Graph, node):
    """The FunctionProto ONNX's schema gives node's op at the model's opset, or None (no body, a
    body with subgraphs, or one that needs a newer opset than the model's)."""
    import onnx
    from onnx import defs

    if node.op_type not in FUNCTION_BODY_OPS or node.domain not in ("", "ai.onnx"):
        return None
    try:
        schema = defs.get_schema(node.op_type, graph.opset)
    except Exception:  # the op is newer than the model's opset
        return None
    versions = [v for v in schema.function_opset_versions if v <= graph.opset]
    dependent = [v for v in schema.context_dependent_function_opset_versions if v <= graph.opset]
    if schema.has_function and versions:
        body = onnx.FunctionProto.FromString(schema.get_function_with_opset_version(max(versions)))
    elif schema.has_context_dependent_function and dependent:  # the body depends on the input types
        types = []
        for name in node.input:
            elem_type, shape = graph.elem_type(name), graph.shape(name) if name else None
            if name and elem_type is None:
                return None
            types.append(onnx.helper.make_tensor_type_proto(elem_type or 0, shape).SerializeToString())
        try:
            built = schema.get_context_dependent_function_with_opset_version(
                max(dependent), node.SerializeToString(), types
            )
        except Exception:  # a type the body has no form for
            return None
        body = onnx.FunctionProto.FromString(built)
    else:
        return None
    needs = max((o.version for o in body.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if needs > graph.opset or any(a.g.node or a.graphs for n in body.node for a in n.attribute):
        return None
    return body


def _build_function_body(builder: Builder, node, body, graph: Graph) -> None:
    """The body's nodes with its formal inputs/outputs bound to node's, its intermediate values
    renamed after node, and attribute references replaced by node's values (or the defaults)."""
    import onnx

    names = dict(zip(body.input, list(node.input) + [""] * len(body.input)))
    names.update(zip(body.output, node.output))
    given = {a.name: a for a in node.attribute}
    defaults = {a.name: a for a in body.attribute_proto}
    for inner in body.node:
        inputs = [names.get(name, name) if name else "" for name in inner.input]
        outputs = []
        for name in inner.output:
            if name not in names:
                names[name] = builder.name(name)
            outputs.append(names[name])
        attributes = []
        for attribute in inner.attribute:
            if attribute.ref_attr_name:
                source = given.get(attribute.ref_attr_name) or defaults.get(attribute.ref_attr_name)
                if source is None:
                    continue  # an optional attribute left unset: the inner op's own default
                bound = onnx.AttributeProto()
                bound.CopyFrom(source)
                bound.name = attribute.name  # the inner op's name for it
                attribute = bound
            attributes.append(attribute)
        builder.node(inner.op_type, inputs, outputs[0])
        emitted = builder.nodes[-1]
        del emitted.output[:]
        emitted.output.extend(outputs)
        emitted.attribute.extend(attributes)


# --- a convolution or matmul of constants -> its result, computed once ---

FOLDED_OPS = {"Conv", "ConvTranspose", "MatMul", "Gemm"}


def _may_fold(model) -> bool:
    """Without running anything: whether a FOLDED_OPS node reads no graph input's values."""
    initializers = {init.name for init in model.graph.initializer}
    dependent = {v.name for v in model.graph.input if v.name not in initializers}
    found = False
    for node in model.graph.node:
        reads_input = node.op_type not in SHAPE_ONLY_OPS and any(name in dependent for name in node.input if name)
        if reads_input or node.op_type in ("If", "Loop", "Scan"):
            dependent.update(o for o in node.output if o)
        elif node.op_type in FOLDED_OPS:
            found = True
    return found


def _constant_cones(model):
    """(graph, the indices of the nodes computing from constants alone downstream of a FOLDED_OPS
    node whose inputs are all constant, the tensors of those that the rest of the model reads)."""
    graph = Graph(model)
    nodes = list(model.graph.node)
    cone, inside = set(), set()
    for index, node in enumerate(nodes):
        if node.op_type in ("If", "Loop", "Scan", "Constant"):
            continue
        if not all(graph.const(name) is not None for name in node.input if name):
            continue
        if not all(graph.const(o) is not None for o in node.output if o):
            continue
        if node.op_type in FOLDED_OPS or any(name in inside for name in node.input):
            cone.add(index)
            inside.update(o for o in node.output if o)
    outputs = {v.name for v in model.graph.output}
    read = {name for i, node in enumerate(nodes) if i not in cone for name in node.input}
    frontier = [name for name in sorted(inside) if name in read or name in outputs]
    return graph, cone, frontier


def _constant_convolutions(model) -> str:
    if not _may_fold(model):
        return ""
    _, cone, frontier = _constant_cones(model)
    nodes = list(model.graph.node)
    ops = sorted({nodes[i].op_type for i in cone if nodes[i].op_type in FOLDED_OPS})
    if not cone:
        return ""
    return (
        f"{len(cone)} node(s) computing from constants alone, with {'/'.join(ops)} (a convolution of a fixed "
        f"frame), which the Myriad compiler cannot hold: computed once into {len(frontier)} constant(s)"
    )


def fold_constant_convolutions(model):
    from onnx import numpy_helper

    graph, cone, frontier = _constant_cones(model)
    result = copy_model(model)
    values = {name: graph.const(name) for name in frontier}
    kept = [node for index, node in enumerate(result.graph.node) if index not in cone]
    del result.graph.node[:]
    result.graph.node.extend(kept)
    for name, value in values.items():
        result.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    _drop_unused(result)
    return result


def _drop_unused(model) -> None:
    """Remove nodes and initializers nothing reads (the constant inputs of a folded part)."""
    while True:
        read = {name for node in model.graph.node for name in node.input} | {v.name for v in model.graph.output}
        for node in model.graph.node:
            for attribute in node.attribute:  # subgraphs read outer names
                for sub in [attribute.g, *attribute.graphs]:
                    read |= {name for inner in sub.node for name in inner.input}
        kept = [node for node in model.graph.node if any(o in read for o in node.output if o)]
        if len(kept) == len(model.graph.node):
            break
        del model.graph.node[:]
        model.graph.node.extend(kept)
    initializers = [init for init in model.graph.initializer if init.name in read]
    del model.graph.initializer[:]
    model.graph.initializer.extend(initializers)


# --- an FP16 model (weights, inputs, outputs) -> FP32: the blob is FP16 either way ---


def _fp16_parts(model) -> str:
    from onnx import TensorProto

    narrow = (TensorProto.FLOAT16, TensorProto.DOUBLE)
    values = [v for v in (*model.graph.input, *model.graph.output) if v.type.tensor_type.elem_type in narrow]
    weights = sum(init.data_type in narrow for init in model.graph.initializer)
    if not values and not weights:
        return ""
    return (
        f"an FP16 model ({len(values)} input(s)/output(s), {weights} weight(s) in float16 or float64), which the "
        "front ends read with Convert layers the Myriad compiler cannot fold: all its float arithmetic cast to "
        "FP32 (the blob is FP16 either way)"
    )


def cast_fp16_to_fp32(model):
    """Every float16 and float64 tensor, type and Cast of the model (its subgraphs too) -> float32
    (PyTorch's FP16 export computes LayerNorm's variance in float64)."""
    from onnx import TensorProto, helper, numpy_helper

    result = copy_model(model)
    narrow, fp32 = (TensorProto.FLOAT16, TensorProto.DOUBLE), TensorProto.FLOAT

    def tensor(t):
        if t.data_type in narrow:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name))

    def graph(g):
        for init in g.initializer:
            tensor(init)
        for value in (*g.input, *g.output, *g.value_info):
            if value.type.tensor_type.elem_type in narrow:
                value.type.tensor_type.elem_type = fp32
        for node in g.node:
            for attribute in node.attribute:
                if attribute.type == helper.AttributeProto.TENSOR:
                    tensor(attribute.t)
                elif attribute.type == helper.AttributeProto.INT and attribute.name in ("to", "dtype"):
                    if attribute.i in narrow:
                        attribute.i = fp32
                elif attribute.type == helper.AttributeProto.GRAPH:
                    graph(attribute.g)
                elif attribute.type == helper.AttributeProto.GRAPHS:
                    for sub in attribute.graphs:
                        graph(sub)

    graph(result.graph)
    return result


# --- REFLECT Pad of a tensor with length-1 spatial axes -> the same Pad without those axes ---


def _reflect_length_one_plan(graph: Graph, node):
    """OpenVINO's Pad refuses REFLECT on any spatial axis of length 1, even one that is not padded
    (tf2onnx audio nets: [1, 1, 1, T]); without those axes it is the same pad."""
    if _attribute(node, "mode", b"constant") not in (b"reflect", "reflect") or len(node.input) > 3:
        return None
    shape, pads = graph.shape(node.input[0]), graph.const(node.input[1]) if len(node.input) > 1 else None
    if shape is None or pads is None or len(shape) < 3:
        return None
    pads, rank = [int(p) for p in np.asarray(pads).reshape(-1)], len(shape)
    ones = [axis for axis in range(2, rank) if shape[axis] == 1]
    if not ones or any(pads[axis] or pads[rank + axis] for axis in ones):
        return None
    kept = [axis for axis in range(rank) if axis not in ones]
    out = [size + pads[axis] + pads[rank + axis] for axis, size in enumerate(shape)]
    return [shape[a] for a in kept], [pads[a] for a in kept] + [pads[rank + a] for a in kept], out


def _build_reflect_without_ones(builder: Builder, node, plan, graph: Graph) -> None:
    squeezed, pads, out = plan
    reshaped = builder.node("Reshape", [node.input[0], builder.constant(np.array(squeezed, np.int64), "shape")])
    padded = builder.node("Pad", [reshaped, builder.constant(np.array(pads, np.int64), "pads")], mode="reflect")
    builder.node("Reshape", [padded, builder.constant(np.array(out, np.int64), "shape")], node.output[0])


# --- The mean of a 2-D MVN (LayerNorm after global pooling) -> MatMul by 1/C ---


def _mvn_2d_plan(graph: Graph, node):
    """A ReduceMean over the last axis of a 2-D tensor x whose result x - mean takes: OpenVINO fuses
    the LayerNorm it starts into an MVN, which the Myriad compiler has for 3-D and 4-D only (ConvNeXtV2
    and EfficientViT heads). As a MatMul by a column of 1/C the fusion does not happen."""
    shape, axes = graph.shape(node.input[0]), _attribute(node, "axes")
    if shape is None or len(shape) != 2 or len(node.input) > 1 or axes is None or [a % 2 for a in axes] != [1]:
        return None
    dtype = _np_type(graph, node.input[0])
    centred = any(
        c.op_type == "Sub" and list(c.input) == [node.input[0], node.output[0]]
        for c in graph.consumers.get(node.input[0], [])
    )
    if not centred or dtype is None or np.dtype(dtype).kind != "f":
        return None
    return shape, _attribute(node, "keepdims", 1), dtype


def _build_mean_matmul(builder: Builder, node, plan, graph: Graph) -> None:
    (rows, columns), keepdims, dtype = plan
    column = builder.constant(np.full((columns, 1), 1.0 / columns, dtype), "mean_column")
    if keepdims:
        builder.node("MatMul", [node.input[0], column], node.output[0])
    else:
        mean = builder.node("MatMul", [node.input[0], column])
        builder.node("Reshape", [mean, builder.constant(np.array([rows], np.int64), "shape")], node.output[0])


# --- A token-wise Linear (MatMul of [.., M, C] by a constant [C, K]) -> a 1x1 Conv over the rows ---

# The 2021.4 Myriad plugin makes such a MatMul a 1x1 hardware convolution (replaceFCbyConv) that folds
# the M rows (all dims but the last, multiplied) into its plane only when M is a multiple of this;
# otherwise adjustDataBatch copies the stage once per row (`NAME@fc-to-conv@batch=k/M`): M = 1,024 gives
# 1,026 stages, SegFormer-b0 at 256 about 132,000, and the compile time grows about as their cube.
# Measured: M = 10, 20, 30, 40, 50, 70, 90, 110, 1,000 fold (4 stages); 2, 3, 5, 7, 12, 15, 25, 49, 64,
# 196, 256, 1,024 copy; [4, 49, C] copies as 196 rows do, [4, 50, C] folds.
PLUGIN_FOLDED_ROWS = 10


def _token_matmul_plan(graph: Graph, node):
    """(rows, shape, weights, bias, the Add the bias came from) for a MatMul of a computed [.., M, C]
    by a constant [C, K] whose rows the plugin would copy stage by stage, else None. bias: a constant
    [K] added right after (nn.Linear's), folded into the convolution."""
    if len(node.input) != 2 or node.input[0] in graph.initializers:
        return None
    shape, weights, dtype = graph.shape(node.input[0]), graph.const(node.input[1]), _float_input(graph, node)
    if shape is None or weights is None or dtype is None or len(shape) < 2 or np.ndim(weights) != 2:
        return None
    if weights.shape[0] != shape[-1] or weights.dtype != dtype:
        return None
    rows = int(np.prod(shape[:-1]))
    if rows <= 1 or rows % PLUGIN_FOLDED_ROWS == 0:
        return None
    outputs = weights.shape[1]
    consumers = graph.consumers.get(node.output[0], [])
    graph_outputs = {value.name for value in graph.model.graph.output}
    if len(consumers) == 1 and consumers[0].op_type == "Add" and node.output[0] not in graph_outputs:
        add = consumers[0]
        other = [name for name in add.input if name != node.output[0]]
        bias = graph.const(other[0]) if len(other) == 1 else None
        # Broadcast along the last axis only (the Add's shape stays the MatMul's).
        if (
            bias is not None
            and bias.dtype == dtype
            and bias.shape[-1:] == (outputs,) == (bias.size,)
            and bias.ndim <= len(shape)
        ):
            return rows, shape, weights, bias.reshape(outputs), add, False
    return rows, shape, weights, None, None, False


def _token_gemm_plan(graph: Graph, node):
    """The same plan for a Gemm of a computed [M, C] by a constant B (nn.Linear on a 2-D input, as
    nn.MultiheadAttention's out_proj exports; transA when the exporter folded a transpose of A into it:
    A is then [C, M]): alpha = beta = 1, C a constant [K] or [1, K] (the bias), else None."""
    if len(node.input) < 2 or node.input[0] in graph.initializers:
        return None
    if _attribute(node, "alpha", 1.0) != 1.0 or _attribute(node, "beta", 1.0) != 1.0:
        return None
    shape, weights, dtype = graph.shape(node.input[0]), graph.const(node.input[1]), _float_input(graph, node)
    if shape is None or weights is None or dtype is None or len(shape) != 2 or np.ndim(weights) != 2:
        return None
    weights = weights.T if _attribute(node, "transB", 0) else weights
    a_transposed = bool(_attribute(node, "transA", 0))
    rows, channels = (shape[1], shape[0]) if a_transposed else (shape[0], shape[1])
    if weights.shape[0] != channels or weights.dtype != dtype:
        return None
    rows, outputs = int(rows), weights.shape[1]
    if rows <= 1 or rows % PLUGIN_FOLDED_ROWS == 0:
        return None
    bias = graph.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if len(node.input) > 2 and node.input[2] and (bias is None or bias.dtype != dtype or bias.shape[-1:] != (outputs,)):
        return None
    if bias is not None and bias.size != outputs:
        return None
    return rows, (rows, channels), weights, None if bias is None else bias.reshape(outputs), None, a_transposed


_TOKEN_PLANS = {"MatMul": _token_matmul_plan, "Gemm": _token_gemm_plan}


def _token_matmuls(model) -> tuple[Graph, list]:
    graph, found = Graph(model), []
    if graph.opset < ELEMENTWISE_OPSET:
        return graph, found
    for index, node in enumerate(model.graph.node):
        if node.op_type in _TOKEN_PLANS:
            plan = _TOKEN_PLANS[node.op_type](graph, node)
            if plan is not None:
                found.append((index, node, plan))
    return graph, found


def row_split_matmuls(model) -> list[tuple[str, int]]:
    """(node name, rows) of each MatMul the plugin would copy into one stage per row (for the
    messages when the rule above could not rewrite it)."""
    if not any(node.op_type in _TOKEN_PLANS for node in model.graph.node):
        return []
    return [(node.name or node.output[0], plan[0]) for _, node, plan in _token_matmuls(model)[1]]


def _token_matmuls_why(model) -> str:
    found = row_split_matmuls(model)
    if not found:
        return ""
    named = ", ".join(f"{name} ({rows:,} rows)" for name, rows in found[:3])
    more = f" and {len(found) - 3} more" if len(found) > 3 else ""
    return (
        f"{len(found)} MatMul/Gemm node(s) of [.., M, C] by a constant [C, K] (a token-wise nn.Linear) whose M rows, "
        f"not a multiple of {PLUGIN_FOLDED_ROWS}, the Myriad compiler would copy into one stage each: {named}{more}"
    )


def token_matmuls_as_convolutions(model):
    """Each such MatMul (and its bias Add) as Reshape [1, 1, M, C] -> Transpose [1, C, 1, M] -> 1x1 Conv
    -> Transpose [1, 1, M, K] -> Reshape [.., M, K]: the rows are the convolution's plane, whatever M.
    ([1, C, M, 1] gives 4x the stages at M = 4,096; a square plane saves one stage and adds a Reshape.)"""
    result = copy_model(model)
    _, found = _token_matmuls(result)
    replacements = {}
    for index, node, (rows, shape, weights, bias, add, a_transposed) in found:
        builder = Builder(result, node)
        channels, outputs = weights.shape
        if a_transposed:  # a Gemm's A given as [C, M]: already the planes
            planes = builder.node(
                "Reshape", [node.input[0], builder.constant(np.array([1, channels, 1, rows], np.int64), "shape")]
            )
        else:
            flat = builder.node(
                "Reshape", [node.input[0], builder.constant(np.array([1, 1, rows, channels], np.int64), "shape")]
            )
            planes = builder.node("Transpose", [flat], perm=[0, 3, 1, 2])
        inputs = [planes, builder.constant(np.ascontiguousarray(weights.T).reshape(outputs, channels, 1, 1), "weights")]
        if bias is not None:
            inputs.append(builder.constant(bias, "bias"))
        convolved = builder.node("Conv", inputs, kernel_shape=[1, 1])
        back = builder.node("Transpose", [convolved], perm=[0, 2, 3, 1])
        target = np.array([*shape[:-1], outputs], np.int64)
        builder.node("Reshape", [back, builder.constant(target, "shape")], (add or node).output[0])
        replacements[index] = builder.nodes
        if add is not None:
            replacements[next(i for i, n in enumerate(result.graph.node) if n.output[0] == add.output[0])] = []
    replace_nodes(result, replacements)
    # The MatMuls' weights and biases, now in the convolutions' layout: the old ones go.
    replaced = {name for _, node, (*_, add, _) in found for name in [*node.input, *(add.input if add else [])]}
    read = {name for node in result.graph.node for name in node.input}
    read |= {  # a subgraph may read an outer initializer
        name
        for node in result.graph.node
        for attribute in node.attribute
        for sub in [attribute.g, *attribute.graphs]
        for inner in sub.node
        for name in inner.input
    }
    kept = [init for init in result.graph.initializer if init.name in read or init.name not in replaced]
    del result.graph.initializer[:]
    result.graph.initializer.extend(kept)
    return result


# --- Whole-model rules ---


def _opset(model) -> int:
    return opset_of(model)


def _newer_opset(model) -> str:
    opset = _opset(model)
    return (
        f"opset {opset}, newer than the {FRONTEND_MAX_OPSET} OpenVINO 2022.3 reads well"
        if opset > FRONTEND_MAX_OPSET
        else ""
    )


def _convert_opset(model):
    import onnx.version_converter

    try:
        converted = onnx.version_converter.convert_version(model, FRONTEND_MAX_OPSET)
    except Exception:  # "No Adapter From Version $18 for Split": op by op
        return downgrade_op_by_op(model)
    # The converter moves the Reduce ops' axes back to an attribute but keeps opset 18's
    # noop_with_empty_axes, which only ReduceSum has before 18; at its default (0) it means nothing.
    for node in converted.graph.node:
        if node.op_type.startswith("Reduce") and node.op_type != "ReduceSum":
            kept = [a for a in node.attribute if not (a.name == "noop_with_empty_axes" and a.i == 0)]
            del node.attribute[:]
            node.attribute.extend(kept)
    return converted


# Reduce ops whose axes became an input at opset 18 (ReduceSum's did at 13).
_REDUCE_18 = {
    "ReduceMax",
    "ReduceMin",
    "ReduceMean",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceSumSquare",
}
# Attributes added after opset 17 that are no-ops at these values: dropped.
_NEW_ATTRIBUTE_DEFAULTS = {
    ("Resize", "antialias"): 0,
    ("Resize", "keep_aspect_ratio_policy"): b"stretch",
    ("LpPool", "ceil_mode"): 0,
    ("Cast", "saturate"): 1,
    ("AveragePool", "dilations"): None,  # all ones
    ("ScatterND", "reduction"): b"none",
    ("ScatterElements", "reduction"): b"none",
}


def downgrade_op_by_op(model):
    """An opset 18+ model written in opset 17's forms, op by op (onnx's version converter gives up on
    a model when one op has no adapter, Split-18 among them): the Reduce ops' axes back to an
    attribute, Split's num_outputs as sizes, Pad's axes as full pads, newer attributes at their no-op
    values dropped. Raises when an op has no opset-17 form (onnx's checker says which)."""
    import onnx
    from onnx import helper

    result = copy_model(model)
    graph = Graph(result)
    nodes = []
    for node in result.graph.node:
        new = onnx.NodeProto()
        new.CopyFrom(node)
        kept = []
        for attribute in new.attribute:
            default = _NEW_ATTRIBUTE_DEFAULTS.get((new.op_type, attribute.name), "keep")
            value = helper.get_attribute_value(attribute)
            if default == "keep" or not (value == default or (default is None and set(value) == {1})):
                kept.append(attribute)
        del new.attribute[:]
        new.attribute.extend(kept)
        if new.op_type in _REDUCE_18:
            noop = _attribute(new, "noop_with_empty_axes", 0)
            axes = graph.const(new.input[1]) if len(new.input) > 1 and new.input[1] else None
            if len(new.input) > 1 and new.input[1] and axes is None:
                raise ValueError(f"{new.op_type} {new.name}: its axes are computed at run time")
            kept = [a for a in new.attribute if a.name != "noop_with_empty_axes"]
            del new.attribute[:]
            new.attribute.extend(kept)
            del new.input[1:]
            if axes is not None and np.size(axes):
                new.attribute.append(helper.make_attribute("axes", [int(a) for a in np.asarray(axes).reshape(-1)]))
            elif noop:
                new = helper.make_node("Identity", [node.input[0]], list(node.output), name=node.name)
        elif new.op_type == "Split" and _attribute(new, "num_outputs") is not None:
            count = _attribute(new, "num_outputs")
            kept = [a for a in new.attribute if a.name != "num_outputs"]
            del new.attribute[:]
            new.attribute.extend(kept)
            shape = graph.shape(new.input[0])
            if shape is not None:
                size = shape[_attribute(new, "axis", 0)]
                chunk = -(-size // count)
                sizes = [min(chunk, size - i * chunk) for i in range(count)]
                builder = Builder(result, new)
                new.input.append(builder.constant(np.array(sizes, np.int64), "split"))
        elif new.op_type == "Pad" and len(new.input) > 3 and new.input[3]:
            shape, axes, pads = graph.shape(new.input[0]), graph.const(new.input[3]), graph.const(new.input[1])
            if shape is None or axes is None or pads is None:
                raise ValueError(f"Pad {new.name}: its axes or pads are computed at run time")
            full = np.zeros(2 * len(shape), np.int64)
            pads = np.asarray(pads).reshape(-1)
            for index, axis in enumerate(int(a) % len(shape) for a in np.asarray(axes).reshape(-1)):
                full[axis], full[len(shape) + axis] = pads[index], pads[len(axes.reshape(-1)) + index]
            builder = Builder(result, new)
            new.input[1] = builder.constant(full, "pads")
            del new.input[3:]
        nodes.append(new)
    del result.graph.node[:]
    result.graph.node.extend(nodes)
    for opset in result.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = FRONTEND_MAX_OPSET
    result.ir_version = min(result.ir_version, 8)
    _drop_unused(result)
    onnx.checker.check_model(result, full_check=True)  # an op or attribute opset 17 does not have
    return result


def _layer_norms(model) -> str:
    count = sum(node.op_type == "LayerNormalization" for node in model.graph.node)
    return f"{count} LayerNormalization node(s), which OpenVINO 2022.3 crashes on" if count else ""


def _ranks(model) -> dict:
    graph = Graph(model)
    return {name: len(t.shape.dim) for name, t in graph.value_info.items() if t.HasField("shape")}


def decompose_layer_norm(model):
    """LayerNormalization (opset 17) -> ReduceMean, Sub, Mul, ReduceMean, Add, Sqrt, Div, Mul, Add."""
    import onnx
    from onnx import helper

    result = copy_model(model)
    opset = _opset(result)
    ranks = _ranks(result)
    dtypes = {init.name: init.data_type for init in result.graph.initializer}
    nodes = []
    for node in result.graph.node:
        if node.op_type != "LayerNormalization" or len([o for o in node.output if o]) > 1:
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        axis, epsilon = attrs.get("axis", -1), attrs.get("epsilon", 1e-5)
        if axis < 0:
            axes = list(range(axis, 0))
        elif node.input[0] in ranks:
            axes = list(range(axis, ranks[node.input[0]]))
        else:
            raise ValueError(f"the rank of {node.input[0]} is unknown")
        # Names from the output, which is unique (node names need not be).
        x, p = node.input[0], node.output[0] + "/decomposed"
        extra = []
        if opset >= 18:  # axes are an input from opset 18 on: one constant, used by both means
            extra.append(
                helper.make_node(
                    "Constant",
                    [],
                    [f"{p}/axes"],
                    value=helper.make_tensor(f"{p}/axes", onnx.TensorProto.INT64, [len(axes)], axes),
                )
            )

        def reduce_mean(source, out):
            if opset >= 18:
                return helper.make_node("ReduceMean", [source, f"{p}/axes"], [out], keepdims=1)  # noqa: B023 (called in this iteration)
            return helper.make_node("ReduceMean", [source], [out], axes=axes, keepdims=1)  # noqa: B023

        eps = f"{p}/epsilon"
        eps_type = dtypes.get(node.input[1], onnx.TensorProto.FLOAT)  # the model's own float type (FP16 too)
        body = [
            reduce_mean(x, f"{p}/mean"),
            helper.make_node("Sub", [x, f"{p}/mean"], [f"{p}/centered"]),
            helper.make_node("Mul", [f"{p}/centered", f"{p}/centered"], [f"{p}/squared"]),
            reduce_mean(f"{p}/squared", f"{p}/variance"),
            helper.make_node("Constant", [], [eps], value=helper.make_tensor(eps, eps_type, [], [epsilon])),
            helper.make_node("Add", [f"{p}/variance", eps], [f"{p}/variance_eps"]),
            helper.make_node("Sqrt", [f"{p}/variance_eps"], [f"{p}/std"]),
            helper.make_node("Div", [f"{p}/centered", f"{p}/std"], [f"{p}/normalized"]),
        ]
        scaled = f"{p}/scaled" if len(node.input) > 2 and node.input[2] else node.output[0]
        body.append(helper.make_node("Mul", [f"{p}/normalized", node.input[1]], [scaled]))
        if scaled != node.output[0]:
            body.append(helper.make_node("Add", [scaled, node.input[2]], [node.output[0]]))
        nodes.extend(extra + body)
    del result.graph.node[:]
    result.graph.node.extend(nodes)
    return result


def _shape_computations(model) -> str:
    count = sum(node.op_type in SHAPE_OPS for node in model.graph.node)
    return f"{count} node(s) computing shapes at run time" if count else ""


def _fold_constants(model):
    """onnxslim: constant folding and shape simplification with the fixed input shapes."""
    import onnxslim

    return onnxslim.slim(copy_model(model))


def _rule(
    name, frontends, op, plan, build, why, tolerance=AGREEMENT, min_opset=MIN_RULE_OPSET, drop_unused=False
) -> OnnxRule:
    """drop_unused: the rewrite also removes what its replaced nodes alone read (an Expand of integers
    that the compiler would still refuse)."""
    needed, rewrite = node_rule(op, plan, build, why, min_opset)
    if drop_unused:
        rewrite_nodes = rewrite

        def rewrite(model):
            result = rewrite_nodes(model)
            _drop_unused(result)
            return result

    return OnnxRule(name, frontends, needed, rewrite, tolerance)


ONNX_RULES: tuple[OnnxRule, ...] = (
    # First: the rows below read the model's float type, and the If's condition may be FP16 arithmetic.
    OnnxRule("FP16 model -> FP32", BOTH, _fp16_parts, cast_fp16_to_fp32, FP16_MODEL_TOLERANCE, new_reference=True),
    _rule(
        "If on a constant condition -> its branch",
        BOTH,
        "If",
        _constant_if_plan,
        _build_inlined_branch,
        "{n} If node(s) whose condition depends on no input value at the fixed shapes (an exporter's shape "
        "check), which the Myriad X cannot run as a branch",
    ),
    # Before the opset conversion, which drops AveragePool-19's dilations.
    _rule(
        "MaxPool ceil mode -> end padding",
        BOTH,
        "MaxPool",
        _max_pool_ceil_plan,
        _build_max_pool_floor,
        "{n} MaxPool node(s) in ceil mode whose last window would start in the padding: ONNX drops it, "
        "OpenVINO keeps it (an output one too big)",
    ),
    _rule(
        "AveragePool with dilations -> depthwise Conv",
        BOTH,
        "AveragePool",
        _dilated_average_plan,
        _build_dilated_average_conv,
        "{n} AveragePool node(s) with dilations, which OpenVINO's AvgPool has not (it would pool undilated)",
    ),
    _rule(
        "grouped 3-D Conv -> one Conv per group",
        BOTH,
        "Conv",
        _grouped_3d_plan,
        _build_split_groups,
        "{n} grouped 3-D Conv node(s) (nn.Conv3d with groups > 1), which the Myriad compiler refuses",
    ),
    _rule(
        "MaxPool with dilations -> Max of strided slices",
        BOTH,
        "MaxPool",
        _dilated_max_plan,
        _build_dilated_max,
        "{n} MaxPool node(s) with dilations, which the Myriad X's MaxPool has not (OpenVINO's MaxPool-8, "
        "unknown to the 2021.4 IR reader)",
    ),
    _rule(
        "Col2Im without overlap -> Reshape/Transpose",
        BOTH,
        "Col2Im",
        _col2im_plan,
        _build_col2im_rearrange,
        "{n} Col2Im node(s) (F.fold) whose patches do not overlap, which OpenVINO 2022.3 cannot read",
    ),
    # Before the opset conversion: Mish is opset 18, which has no adapter down to 17.
    _rule(
        "op without a front end -> ONNX's function body for it",
        BOTH,
        FUNCTION_BODY_OPS,
        _function_body_plan,
        _build_function_body,
        lambda found: (
            f"{len(found)} node(s) of an op neither front end reads ("
            + ", ".join(sorted({node.op_type for _, node, _ in found}))
            + "), which ONNX defines as a function of ops they read"
        ),
        min_opset=ELEMENTWISE_OPSET,
    ),
    OnnxRule("convert to opset 17 (onnx version converter)", frozenset({"ov2022"}), _newer_opset, _convert_opset),
    OnnxRule("decompose LayerNormalization", frozenset({"ov2022"}), _layer_norms, decompose_layer_norm),
    _rule(
        "ScatterND writing a box -> Concat of slices",
        BOTH,
        "ScatterND",
        _scatter_box,
        _build_scatter_concat,
        "{n} ScatterND node(s) (in-place slice assignment, y[..., a:b] = v), which the Myriad compiler refuses",
    ),
    _rule(
        "CumSum -> MatMul with a triangular matrix",
        BOTH,
        "CumSum",
        _cumsum_plan,
        _build_cumsum_matmul,
        "{n} CumSum node(s) (torch.cumsum), which the Myriad compiler refuses",
    ),
    _rule(
        "LSTM -> unrolled steps",
        BOTH,
        "LSTM",
        _recurrent_plan,
        _build_recurrent_unrolled,
        "{n} fixed-length LSTM node(s), which the Myriad compiler fails on as a sequence layer",
    ),
    _rule(
        "GRU -> unrolled steps",
        BOTH,
        "GRU",
        _recurrent_plan,
        _build_recurrent_unrolled,
        "{n} fixed-length GRU node(s), which the Myriad compiler refuses as a sequence layer",
    ),
    _rule(
        "GatherElements axis made non-negative",
        BOTH,
        "GatherElements",
        _negative_axis_plan,
        _build_positive_axis,
        "{n} GatherElements node(s) with a negative axis, which the Myriad compiler refuses",
    ),
    _rule(
        "Abs -> Relu(x) + Relu(-x)",
        BOTH,
        "Abs",
        _float_input,
        _build_abs,
        "{n} Abs node(s), which the Myriad compiler refuses",
        min_opset=ELEMENTWISE_OPSET,
    ),
    _rule(
        "Softsign -> x / (1 + Relu(x) + Relu(-x))",
        BOTH,
        "Softsign",
        _float_input,
        _build_softsign,
        "{n} Softsign node(s) (F.softsign), which the front ends write with an Abs the Myriad compiler refuses",
        min_opset=ELEMENTWISE_OPSET,
    ),
    _rule(
        "Selu -> gamma * Elu(x, alpha)",
        BOTH,
        "Selu",
        _float_input,
        _build_selu,
        "{n} Selu node(s) (nn.SELU), which the Myriad compiler refuses",
        min_opset=ELEMENTWISE_OPSET,
    ),
    _rule(
        "constant tokens concatenated -> Pad + Add",
        BOTH,
        "Concat",
        _constant_concat_plan,
        _build_pad_add,
        "{n} rank-3 Concat node(s) of a constant (a class token) and a computed tensor, whose constant rows "
        "OpenVINO 2021.4's CPU plugin returns as zeros",
    ),
    _rule(
        "Sign -> Where(x > 0, 1, Where(x < 0, -1, 0))",
        BOTH,
        "Sign",
        _float_input,
        _build_sign,
        "{n} Sign node(s) (torch.sign), which the Myriad compiler refuses",
        min_opset=9,  # Where
    ),
    *(
        _rule(
            f"{op} -> Not({negated})",
            BOTH,
            op,
            _float_input,
            _build_negated_comparison,
            f"{{n}} {op} node(s), which OpenVINO makes a LogicalOr the Myriad compiler refuses",
            min_opset=12,  # GreaterOrEqual and LessOrEqual are opset 12
        )
        for op, negated in _NEGATED.items()
    ),
    _rule(
        "TopK's K folded to a constant",
        frozenset({"ov2022"}),
        "TopK",
        _topk_plan,
        _build_topk_constant,
        "{n} TopK node(s) whose K is computed from a shape, which OpenVINO 2022.3 cannot read",
    ),
    _rule(
        "GatherElements of a repeated index -> Gather",
        BOTH,
        "GatherElements",
        _expanded_index_plan,
        _build_gather_vector,
        "{n} GatherElements node(s) whose index is a vector expanded over the other axes (torch.gather of "
        "idx.expand(...), an NMS-free head's top-k pick): an integer Tile the Myriad compiler refuses",
        drop_unused=True,
    ),
    *(
        _rule(
            f"integer {op} of top-k indices -> table lookup",
            BOTH,
            op,
            _index_table_plan,
            _build_index_table,
            f"{{n}} integer {op} node(s) of top-k/argmax indices by a constant (an NMS-free head's anchor and "
            "class of each pick): the Myriad compiler refuses an integer FloorMod, and an integer Divide on the "
            "chip is beyond what the CPU check can confirm",
        )
        for op in ("Div", "Mod")
    ),
    *(
        _rule(
            f"{op} select_last_index -> {op} of the reversed axis",
            BOTH,
            op,
            _last_index_plan,
            _build_last_index,
            f"{{n}} {op} node(s) with select_last_index=1 (the last of equal values), which neither front end reads",
            min_opset=12,  # select_last_index is opset 12
        )
        for op in ("ArgMax", "ArgMin")
    ),
    _rule("Sin -> polynomial on its proven range", BOTH, "Sin", _trig_plan, _build_trig_polynomial, _trig_why),
    _rule(
        "ReduceL2 -> scaled mean of squares",
        BOTH,
        "ReduceL2",
        _reduce_l2_plan,
        _build_reduce_l2,
        _reduce_l2_why,
    ),
    _rule(
        "LpPool -> AveragePool of |x|^p",
        BOTH,
        "LpPool",
        _lp_pool_plan,
        _build_lp_pool,
        "{n} LpPool node(s) (nn.LPPool2d), which the Myriad compiler refuses",
        min_opset=ELEMENTWISE_OPSET,
    ),
    _rule("Cos -> polynomial on its proven range", BOTH, "Cos", _trig_plan, _build_trig_polynomial, _trig_why),
    *(
        _rule(
            f"{op} -> range reduction and a polynomial",
            BOTH,
            op,
            _trig_reduced_plan,
            _build_trig_reduced,
            _trig_reduced_why,
            tolerance=REDUCED_TOLERANCE,
        )
        for op in ("Sin", "Cos")
    ),
    *(
        _rule(
            f"{op} -> Exp/Log/Sqrt",
            BOTH,
            op,
            _float_input,
            _build_hyperbolic,
            f"{{n}} {op} node(s) (torch.{op.lower()}), which the Myriad compiler refuses",
            min_opset=9,  # the hyperbolic ops and Where are opset 9
        )
        for op in ("Sinh", "Cosh", "Asinh", "Acosh", "Atanh")
    ),
    _rule(
        "bicubic Resize -> edge Pad + depthwise ConvTranspose",
        BOTH,
        "Resize",
        _bicubic_plan,
        _build_bicubic,
        "{n} bicubic Resize node(s) by an integer factor (F.interpolate(mode='bicubic')), which the Myriad "
        "compiler refuses: a fixed filter",
    ),
    _rule(
        "REFLECT Pad without its length-1 axes",
        BOTH,
        "Pad",
        _reflect_length_one_plan,
        _build_reflect_without_ones,
        "{n} REFLECT Pad node(s) of a tensor with a spatial axis of length 1, which OpenVINO refuses "
        "(though that axis is not padded)",
    ),
    _rule(
        "2-D LayerNorm's mean -> MatMul by 1/C",
        BOTH,
        "ReduceMean",
        _mvn_2d_plan,
        _build_mean_matmul,
        "{n} LayerNorm(s) of a 2-D tensor (after global pooling), which OpenVINO makes an MVN the Myriad "
        "compiler has for 3-D and 4-D only",
    ),
    OnnxRule(
        "token-wise MatMul by a constant -> 1x1 Conv",
        BOTH,
        _token_matmuls_why,
        token_matmuls_as_convolutions,
    ),
    OnnxRule(
        "constant convolutions -> computed once",
        BOTH,
        _constant_convolutions,
        fold_constant_convolutions,
    ),
    *(
        _rule(
            f"{op} of a computed scalar: the scalar as [1]",
            BOTH,
            op,
            _computed_scalar_plan,
            _build_scalar_as_vector,
            f"{{n}} {op} node(s) broadcasting a computed scalar (such as x.mean()), which "
            "OpenVINO 2021.4's CPU plugin cannot run for the numeric check",
        )
        for op in ("Add", "Sub", "Mul", "Div")
    ),
    OnnxRule("fold constants (onnxslim)", frozenset({"mo2021"}), _shape_computations, _fold_constants),
)
