"""A read-only view of an ONNX graph for the rewrite rules: producers, static shapes, constants.

Constants include what the exporter computes from shapes at run time (Shape -> Gather -> Concat
-> Expand chains feeding a ScatterND's indices or a TopK's K): once the ONNX preparation has fixed
every input shape, such a tensor depends on no input value, and ONNX Runtime evaluates it once.
"""

from __future__ import annotations

import collections

import numpy as np

from ..ort import ort_session

# Ops whose output depends only on their input's shape, never its values.
SHAPE_ONLY_OPS = {"Shape", "Size"}


def opset_of(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


class Graph:
    """The model's nodes by output, consumers by input, static shapes (onnx shape inference) and
    constant values (initializers, Constant nodes, and shape-only computations)."""

    def __init__(self, model):
        import onnx

        self.model = model
        self.opset = opset_of(model)
        self.initializers = {init.name: init for init in model.graph.initializer}
        self.producer = {out: node for node in model.graph.node for out in node.output if out}
        self.consumers = collections.defaultdict(list)
        for node in model.graph.node:
            for name in node.input:
                if name:
                    self.consumers[name].append(node)
        try:  # data propagation: shapes computed by Shape -> Gather -> Concat -> Reshape chains too
            inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
        except Exception:  # a custom op: shapes stay unknown, rules that need them do not apply
            inferred = model
        self.value_info = {}
        for value in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
            self.value_info[value.name] = value.type.tensor_type
        self._constants = None
        self._runtime_shapes = None

    def shape(self, name: str) -> tuple | None:
        """The tensor's static shape (from shape inference, else from one ONNX Runtime run at the
        fixed input shapes), or None when it cannot be known."""
        if name in self.initializers:
            return tuple(self.initializers[name].dims)
        tensor = self.value_info.get(name)
        if tensor is not None and tensor.HasField("shape"):
            dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
            if not any(d is None or d < 0 for d in dims):
                return dims
        if self._runtime_shapes is None:
            self._runtime_shapes = {name: value.shape for name, value in self._evaluate(everything=True).items()}
        return self._runtime_shapes.get(name)

    def elem_type(self, name: str) -> int | None:
        if name in self.initializers:
            return self.initializers[name].data_type
        tensor = self.value_info.get(name)
        return tensor.elem_type if tensor is not None and tensor.elem_type else None

    def const(self, name: str) -> np.ndarray | None:
        """The tensor's value when it does not depend on any input's values, else None."""
        from onnx import numpy_helper

        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    return numpy_helper.to_array(attribute.t)
        if self._constants is None:
            self._constants = self._evaluate(everything=False)
        return self._constants.get(name)

    def _evaluate(self, everything: bool) -> dict:
        """Every tensor computed from shapes and constants alone (or every tensor of a known type, with
        zeros for the inputs: for its shape), evaluated at the fixed input shapes."""
        import onnx

        graph = self.model.graph
        inputs = [v for v in graph.input if v.name not in self.initializers]
        if any(self.shape(v.name) is None for v in inputs):
            return {}  # a dynamic input: shape computations are not constants
        dependent = {v.name for v in inputs}
        for node in graph.node:  # topological order (ONNX requires it)
            if node.op_type not in SHAPE_ONLY_OPS and any(i in dependent for i in node.input if i):
                dependent.update(o for o in node.output if o)
        wanted = [
            out
            for node in graph.node
            if node.op_type != "Constant" and node.op_type not in ("If", "Loop", "Scan")
            for out in node.output
            if out and (everything or out not in dependent) and self.elem_type(out)
        ]
        if not wanted:
            return {}
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        del model.graph.output[:]
        for name in wanted:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, self.elem_type(name), None))
        feeds = {
            v.name: np.zeros(
                self.shape(v.name), dtype=onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type)
            )
            for v in inputs
        }
        try:
            session = ort_session(model.SerializeToString())
            return dict(zip(wanted, session.run(wanted, feeds)))
        except Exception:  # some op ORT cannot run here: no shape-only constants, rules that need them skip
            return {}


# A node a rewrite made says which of the user's nodes it replaces (its doc_string, which neither
# front end carries into the IR): messages then name the user's node and module, not ours.
REWRITE_OF = "myriad-blob rewrite of "


def rewrite_origin(node) -> tuple[str, str] | None:
    """(the user's ONNX node name, its op) a rewritten node stands for, or None for the user's own."""
    if not node.doc_string.startswith(REWRITE_OF):
        return None
    op, _, name = node.doc_string.removeprefix(REWRITE_OF).partition(" ")
    return name, op


class Builder:
    """New nodes and initializers with names derived from the node they replace (so IR layers
    still trace back to the user's ONNX node and PyTorch module), each node marked with the
    user's node it stands for (rewrite_origin), through any number of rewrites."""

    def __init__(self, model, replaced):
        self.model, self.prefix, self.nodes, self._count = model, replaced.name or replaced.output[0], [], 0
        origin = rewrite_origin(replaced) or (self.prefix, replaced.op_type)
        self._mark = f"{REWRITE_OF}{origin[1]} {origin[0]}"
        self._taken = {i.name for i in model.graph.initializer} | {o for n in model.graph.node for o in n.output}

    def name(self, what: str) -> str:
        while True:
            self._count += 1
            candidate = f"{self.prefix}/{what}_{self._count}"
            if candidate not in self._taken:
                self._taken.add(candidate)
                return candidate

    def constant(self, value, what: str = "const") -> str:
        from onnx import numpy_helper

        name = self.name(what)
        self.model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list, output: str | None = None, **attributes) -> str:
        from onnx import helper

        output = output or self.name(op.lower())
        node = helper.make_node(op, inputs, [output], name=self.name(op), doc_string=self._mark, **attributes)
        self.nodes.append(node)
        return output

    def slice(self, data: str, axis: int, start: int, end: int) -> str:
        return self.node(
            "Slice",
            [
                data,
                self.constant(np.array([start], np.int64), "starts"),
                self.constant(np.array([end], np.int64), "ends"),
                self.constant(np.array([axis], np.int64), "axes"),
            ],
        )


def replace_nodes(model, replacements: dict) -> None:
    """Put each replaced node's new nodes (by the old node's index) where it stood: the graph
    order stays topological."""
    nodes = []
    for index, node in enumerate(model.graph.node):
        nodes.extend(replacements.get(index, [node]))
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def copy_model(model):
    import onnx

    result = onnx.ModelProto()
    result.CopyFrom(model)
    return result
