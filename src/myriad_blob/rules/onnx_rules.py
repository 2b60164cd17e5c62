"""ONNX-level rules: rewrites of what exporters write into ops the 2021.4 Myriad compiler runs.

One table, ONNX_RULES: a row's needed(model) says why the model needs it ("" when it does not),
rewrite(model) returns the rewritten model. The ONNX preparation (onnx_prep.prepare) applies
the rows in order, runs each result on ONNX Runtime, and keeps it only when every output agrees
with the reference within the row's tolerance (relative to each output's largest magnitude);
the report lists every row that applied. A new case is one row here and one test.

Exact rewrites (same numbers up to float32 reassociation) keep AGREEMENT. The one approximation,
a polynomial for Sin/Cos, is applied only where the graph proves the argument's range, and its
error bound on that range is in the step's detail.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from ..artifacts import FP16_MAX
from .onnx_graph import Builder, Graph, copy_model, opset_of, replace_nodes

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
# The newest ONNX opset the OpenVINO 2022.3 front end reads well (opset 18 moved the axes of the
# Reduce ops to an input, which it misreads).
FRONTEND_MAX_OPSET = 17
# Ops that compute shapes at run time: constant folding with the fixed input shapes removes them,
# which Model Optimizer 2021.4 needs (it loses shapes on such graphs); OpenVINO 2022.3 folds them itself.
SHAPE_OPS = {"Shape", "Size", "ConstantOfShape", "Range", "Expand", "NonZero"}
BOTH = frozenset({"ov2022", "mo2021"})
# The node rules emit Slice and Pad with their parameters as inputs (ONNX opset 10 and 11 on).
MIN_RULE_OPSET = 11


@dataclasses.dataclass(frozen=True)
class OnnxRule:
    name: str  # shown in the report
    frontends: frozenset  # the IR front ends whose input it prepares
    needed: Callable  # model -> why it applies, or ""
    rewrite: Callable  # model -> rewritten model
    tolerance: float = AGREEMENT


def node_rule(op: str, plan: Callable, build: Callable, why):
    """needed/rewrite for a rule that replaces single nodes of type op: plan(graph, node) gives
    what build needs (None: this node cannot be rewritten), build(builder, node, plan, graph)
    emits nodes that produce the node's outputs. why: "{n} ... node(s) ..." for the report, or a
    function of the [(index, node, plan)] found that says it."""

    def matches(model):
        graph = Graph(model)
        found = []
        if graph.opset < MIN_RULE_OPSET:
            return graph, found
        for index, node in enumerate(model.graph.node):
            if node.op_type == op:
                chosen = plan(graph, node)
                if chosen is not None:
                    found.append((index, node, chosen))
        return graph, found

    def needed(model) -> str:
        if not any(node.op_type == op for node in model.graph.node):
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
            builder = Builder(result, node.name or node.output[0])
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


# --- Abs -> Relu(x) + Relu(-x) ---


def _float_input(graph: Graph, node):
    """The node's floating-point input type (the rewrite's constants take it), or None."""
    dtype = _np_type(graph, node.input[0])
    return dtype if dtype is not None and np.dtype(dtype).kind == "f" else None


def _build_abs(builder: Builder, node, dtype, graph: Graph) -> None:
    x = node.input[0]
    negated = builder.node("Mul", [x, builder.constant(np.array(-1, dtype), "minus_one")])
    builder.node("Add", [builder.node("Relu", [x]), builder.node("Relu", [negated])], node.output[0])


# --- Sign -> Where(x > 0, 1, Where(x < 0, -1, 0)) ---


def _build_sign(builder: Builder, node, dtype, graph: Graph) -> None:
    x = node.input[0]
    zero, one, minus_one = (
        builder.constant(np.array(v, dtype), name) for v, name in ((0, "zero"), (1, "one"), (-1, "minus_one"))
    )
    negative = builder.node("Where", [builder.node("Less", [x, zero]), minus_one, zero])
    builder.node("Where", [builder.node("Greater", [x, zero]), one, negative], node.output[0])


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

    converted = onnx.version_converter.convert_version(model, FRONTEND_MAX_OPSET)
    # The converter moves the Reduce ops' axes back to an attribute but keeps opset 18's
    # noop_with_empty_axes, which only ReduceSum has before 18; at its default (0) it means nothing.
    for node in converted.graph.node:
        if node.op_type.startswith("Reduce") and node.op_type != "ReduceSum":
            kept = [a for a in node.attribute if not (a.name == "noop_with_empty_axes" and a.i == 0)]
            del node.attribute[:]
            node.attribute.extend(kept)
    return converted


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


def _rule(name, frontends, op, plan, build, why, tolerance=AGREEMENT) -> OnnxRule:
    needed, rewrite = node_rule(op, plan, build, why)
    return OnnxRule(name, frontends, needed, rewrite, tolerance)


ONNX_RULES: tuple[OnnxRule, ...] = (
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
    ),
    _rule(
        "TopK's K folded to a constant",
        frozenset({"ov2022"}),
        "TopK",
        _topk_plan,
        _build_topk_constant,
        "{n} TopK node(s) whose K is computed from a shape, which OpenVINO 2022.3 cannot read",
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
    _rule("Cos -> polynomial on its proven range", BOTH, "Cos", _trig_plan, _build_trig_polynomial, _trig_why),
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
