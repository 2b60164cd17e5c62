"""The IR front end: ONNX -> IR v10 (FP16 weights) with OpenVINO 2022.3.1's ONNX reader, legalized for
the 2021.4 Myriad compiler. Runs in the front-end environment's Python 3.9 (openvino==2022.3.1),
always in a child process: the 2022.3 reader can crash on some inputs, which must not take the
converter with it.

One job: a JSON object on argv[1] (or one per line on stdin with --worker), one JSON answer line:
  {"onnx": path, "xml": path, "shapes": {name: [dims]}, "inputs": [ONNX input names, in order],
   "outputs": [ONNX output names, in order],
   "mean": {name: [...]}, "scale": {name: [...]}, "reverse_input_channels": bool}
  -> {"ok": true, "rewrites": {rule: count}, "preprocessing_layers": n} or {"ok": false, "error": "..."}

LEGALIZATION is the one table of rewrites: an op (or op version) the 2021.4 IR reader or the
Myriad plugin rejects, and an equivalent built from ops they accept. A new case is one row.
"""

import json
import os
import sys
import traceback
import warnings

import numpy as np

if __name__ == "__main__":  # always, in the toolchain; not when the converter imports the table
    warnings.simplefilter("ignore")  # openvino.offline_transformations announces it is private
try:
    import openvino.runtime as ov
    from openvino.offline_transformations import apply_moc_transformations, compress_model_transformation
    from openvino.preprocess import PrePostProcessor
    from openvino.runtime import Layout, opset1, opset7
except ImportError:  # the converter's Python imports this module for LEGALIZATION only (tests)
    if __name__ == "__main__":
        raise


def _max_pool_v1(node):
    """MaxPool-8 (indices output, dilations) -> MaxPool-1, when only the values are used."""
    if node.output(1).get_target_inputs() or any(d != 1 for d in node.get_attributes().get("dilations", [1])):
        return None
    a = node.get_attributes()
    return opset1.max_pool(
        node.input_value(0),
        a["strides"],
        a["pads_begin"],
        a["pads_end"],
        a["kernel"],
        a["rounding_type"],
        a["auto_pad"],
    )


def _softmax_v1(node):
    """Softmax-8 (negative axes allowed) -> Softmax-1 with the axis made non-negative."""
    axis = node.get_attributes()["axis"]
    if axis < 0:
        axis += node.input_value(0).get_partial_shape().rank.get_length()
    return opset1.softmax(node.input_value(0), axis)


_FP16_EXACT = 2048  # the largest size whose every index FP16 holds exactly
# Ops whose integer outputs are never negative: Gather-8 and Gather-7 agree on indices they compute.
_NON_NEGATIVE_INDICES = {"TopK", "ArgMax", "ArgMin", "ShapeOf", "NonZero"}


def _non_negative(indices) -> bool:
    """Indices no run time can make negative: an op's that never are, or a Range from a start >= 0 up."""
    node = indices.get_node()
    if node.get_type_name() == "Range":
        start, step = _scalar(node.input_value(0)), _scalar(node.input_value(2))
        return start is not None and step is not None and start >= 0 and step > 0
    return node.get_type_name() in _NON_NEGATIVE_INDICES


def _gather_v7(node):
    """Gather-8 (negative indices allowed; the 2021.4 reader has no opset8) -> Gather-7, with
    constant negative indices counted from the front. Indices computed at run time (TopK's,
    ArgMax's) are never negative, where the two versions agree; others (an input's, arithmetic's)
    may be, and are counted from the front at run time: Select(i < 0, i + size, i)."""
    data, indices, axis = node.input_value(0), node.input_value(1), node.input_value(2)
    axis_value = _scalar(axis)
    if axis_value is None:
        return None
    batch_dims = node.get_attributes().get("batch_dims", 0)
    rank = data.get_partial_shape().rank.get_length()
    dimension = data.get_partial_shape()[int(axis_value) % rank]
    producer = indices.get_node().get_type_name()
    if producer == "Constant":
        values = indices.get_node().get_data()
        if (values < 0).any():
            if not dimension.is_static:
                return None
            values = np.where(values < 0, values + dimension.get_length(), values).astype(values.dtype)
            indices = opset1.constant(values).output(0)
    elif not _non_negative(indices) and dimension.is_static and dimension.get_length() <= _FP16_EXACT:
        # The Myriad has no integer arithmetic: in floating point (FP16 holds every integer up to 2048).
        size = np.array(dimension.get_length(), np.float32)
        position = opset1.convert(indices, "f32")
        negative = opset1.less(position, opset1.constant(np.array(0, np.float32)))
        wrapped = opset1.select(negative, opset1.add(position, opset1.constant(size)), position)
        indices = opset1.convert(wrapped, indices.get_element_type().get_type_name()).output(0)
    return opset7.gather(data, indices, axis, batch_dims)


def _hard_sigmoid_clamp(node):
    """HardSigmoid(x) = clamp(alpha * x + beta, 0, 1); the Myriad plugin has no HardSigmoid kernel."""
    alpha, beta = (_scalar(node.input_value(i)) for i in (1, 2))
    if alpha is None or beta is None:
        return None
    x = node.input_value(0)
    dtype = x.get_element_type().to_dtype()
    scaled = opset1.add(
        opset1.multiply(x, opset1.constant(np.array(alpha, dtype))), opset1.constant(np.array(beta, dtype))
    )
    return opset1.clamp(scaled, 0.0, 1.0)


def _scalar(value):
    node = value.get_node()
    if node.get_type_name() != "Constant":
        return None
    data = node.get_data()
    return float(data.reshape(-1)[0]) if data.size == 1 else None


# (rule shown in the report, op type, op version or None for any, rewrite: node -> new node or None to keep)
LEGALIZATION = (
    ("MaxPool-8 -> MaxPool-1", "MaxPool", "opset8", _max_pool_v1),
    ("Softmax-8 -> Softmax-1", "Softmax", "opset8", _softmax_v1),
    ("HardSigmoid -> Clamp(alpha*x+beta)", "HardSigmoid", None, _hard_sigmoid_clamp),
    ("Gather-8 -> Gather-7", "Gather", "opset8", _gather_v7),
)


def legalize(model):
    """Apply LEGALIZATION; {rule: layers rewritten}. The new node takes the old one's friendly
    name and output tensor names, so the blob's outputs keep the model's names."""
    counts = {}
    for node in model.get_ordered_ops():
        info = node.get_type_info()
        for rule, op, version, rewrite in LEGALIZATION:
            if info.name != op or (version is not None and info.version_id != version):
                continue
            replacement = rewrite(node)
            if replacement is None:
                continue
            replacement.set_friendly_name(node.get_friendly_name())
            names = node.output(0).get_names()
            node.output(0).replace(replacement.output(0))
            replacement.output(0).get_tensor().set_names(names)
            counts[rule] = counts.get(rule, 0) + 1
    if counts:
        model.validate_nodes_and_infer_types()
    return counts


def name_outputs(model, names):
    """The 2021.4 reader names each output after the layer feeding its Result, with '.<index>'
    when that layer has several outputs. Make those names the ONNX output names: rename a
    single-output producer, or put a same-shape Reshape named after the output behind a
    multi-output one (Split, TopK), a Parameter, or a tensor that is already another output.
    A name is one layer's only (the serializer would rename a twin): any other layer holding an
    output's name gives it up (the ONNX reader names a node after its ONNX node name, or after
    one of its outputs)."""
    holders = {}
    for node in model.get_ops():
        holders.setdefault(node.get_friendly_name(), []).append(node)
    claimed = set()  # (producer's unique name, output index) already serving an output
    named = set()  # unique names of the layers renamed after an output here: they keep it
    for result, name in zip(model.get_results(), names):
        source = result.input_value(0)
        producer = source.get_node()
        key = (producer.get_name(), source.get_index())
        rename = producer.get_output_size() == 1 and producer.get_type_name() != "Parameter" and key not in claimed
        claimed.add(key)
        for holder in holders.pop(name, []):
            if holder.get_name() not in named and not (rename and holder.get_name() == producer.get_name()):
                holder.set_friendly_name(f"{name}/{holder.get_name()}")
        if rename:
            producer.set_friendly_name(name)
            named.add(producer.get_name())
            continue
        if producer.get_type_name() == "TopK":
            # The 2021.4 plugin folds a Reshape into TopK and names the output "<name>.0"; a
            # Multiply by 1 it keeps (op sweep: "topk").
            alias = opset1.multiply(source, opset1.constant(np.array(1, dtype=source.get_element_type().to_dtype())))
        else:
            shape = opset1.constant(np.array(source.get_partial_shape().to_shape(), dtype=np.int64))
            alias = opset1.reshape(source, shape, special_zero=False)
        alias.set_friendly_name(name)
        result.input(0).replace_source_output(alias.output(0))
        alias.output(0).get_tensor().set_names({name})
    model.validate_nodes_and_infer_types()


def convert(job):
    core = ov.Core()
    model = core.read_model(job["onnx"])
    if job.get("shapes"):
        model.reshape({name: ov.PartialShape(dims) for name, dims in job["shapes"].items()})
    ppp = PrePostProcessor(model)
    steps = 0
    for parameter in model.get_parameters():
        name = parameter.get_friendly_name()
        mean, scale = job.get("mean", {}).get(name), job.get("scale", {}).get(name)
        reverse = job.get("reverse_input_channels") and _channels(parameter) == 3
        if not (mean or scale or reverse):
            continue
        put = ppp.input(name)
        put.tensor().set_layout(Layout("NCHW"))
        put.model().set_layout(Layout("NCHW"))
        # The order Model Optimizer uses and the numeric check assumes: reverse, then mean, then scale.
        if reverse:
            put.preprocess().reverse_channels()
        if mean:
            put.preprocess().mean(mean)
        if scale:
            put.preprocess().scale(scale)
        steps += 1
    if steps:
        model = ppp.build()
    # Where an input feeds an output directly (Identity, Dropout), the ONNX reader names the Parameter
    # after the output, and name_outputs then renames it: the inputs keep the ONNX inputs' names (the
    # reader makes one Parameter per ONNX input, in order).
    parameters = model.get_parameters()
    names = job.get("inputs") or []
    inputs = list(zip(parameters, names)) if len(names) == len(parameters) else []
    apply_moc_transformations(model, True)
    rewrites = legalize(model)
    name_outputs(model, job.get("outputs") or [])
    for parameter, name in inputs:
        parameter.set_friendly_name(name)
    compress_model_transformation(model)
    ov.serialize(model, job["xml"], job["xml"][: -len(".xml")] + ".bin", version="IR_V10")
    return {"ok": True, "rewrites": rewrites, "preprocessed_inputs": steps}


def _channels(parameter):
    shape = parameter.get_partial_shape()
    return (
        shape[1].get_length() if shape.rank.is_static and shape.rank.get_length() == 4 and shape[1].is_static else None
    )


def answer(job):
    try:
        return convert(job)
    except Exception as error:  # the converter reports this at the ir stage, one line
        message = " ".join(str(error).split()) or type(error).__name__
        return {"ok": False, "error": message, "traceback": traceback.format_exc()}


def main():
    if sys.argv[1:] == ["--worker"]:
        answers = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)  # prints from OpenVINO must not corrupt the answers
        for line in sys.stdin:
            answers.write(json.dumps(answer(json.loads(line))) + "\n")
            answers.flush()
    else:
        print(json.dumps(answer(json.loads(sys.argv[1]))))


if __name__ == "__main__":
    main()
