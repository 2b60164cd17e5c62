"""The numeric check's second opinion: where, layer by layer, the converted model parts from the
original, and whose fault it is.

When an output misses, the same IR runs on OpenVINO 2022.3.1's CPU plugin (the front end's venv)
beside 2021.4's (the check's reference), with every layer exposed, and ONNX Runtime runs the
prepared ONNX model the IR was made from with every tensor exposed. IR layers named exactly
after an ONNX node or tensor are compared in network order; the first where 2021.4 parts from
ONNX Runtime tells:
- "runtime": 2022.3 agrees with ONNX Runtime there. The IR is right; OpenVINO 2021.4's CPU plugin
  computes that layer differently (case03d: it returns zeros for a constant row of a rank-3
  Concat). Whether the Myriad plugin of the same release shares the fault needs a device.
- "conversion": both OpenVINO runtimes part from ONNX Runtime there: the conversion changed
  the computation at that layer (a rewrite, or FP16 weights: a softmax over logits in the
  thousands turns FP16 rounding into a different winner).
- "preprocessing": the first layer after the input parts: the baked-in --mean/--scale/
  --reverse-input-channels are where they differ.
The same values give the yardstick for outputs too small to compare: the logits feeding a final
Sigmoid or Softmax.
"""

from __future__ import annotations

import dataclasses
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np

from .artifacts import IRModel, OnnxModel
from .metrics import peak_relative_error
from .ort import ort_session
from .rules.advice import where
from .toolchain import RUN_IR_2022_SCRIPT, RUN_IR_ON_CPU_SCRIPT, LegacyWorker, Toolchain, last_line, run_job

# A layer "parts" from ONNX Runtime when its largest difference exceeds this share of the layer's
# largest magnitude: FP16 weights alone stay near 1e-3 per layer (the corpus), a changed
# computation is far beyond it (case03d's zeroed token row: 1.0).
DIVERGENCE = 0.05
# OpenVINO 2021.4 and 2022.3 run the same IR with the same FP16-rounded weights in FP32: they agree to
# float32 reassociation (below 1e-5 on the corpus). A layer where they part by more than this is
# one runtime's fault (case03d's zeroed class-token row: 0.05 of the layer's peak).
RUNTIMES_AGREE = 1e-3
VALUES_TIMEOUT_S = 900
_SKIPPED = {"Parameter", "Const", "Constant", "Result"}


@dataclasses.dataclass(frozen=True)
class LayerAgreement:
    layer: str
    type: str
    onnx_tensor: str
    onnx_node: str | None
    onnx_op: str | None
    error_2021: float  # max |2021.4 CPU - ONNX Runtime| / the layer's peak
    error_2022: float | None  # the same for OpenVINO 2022.3's CPU plugin (None: not run)
    after_input: bool  # the layer reads a network input directly

    def where(self) -> str:
        origin = {"node": self.onnx_node, "op": self.onnx_op} if self.onnx_node else None
        return where(self.layer, self.type, origin)


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    cause: str  # runtime | conversion | preprocessing | unknown | error
    message: str
    compared: int = 0
    first: LayerAgreement | None = None

    def to_dict(self) -> dict:
        return {
            "cause": self.cause,
            "message": self.message,
            "layers_compared": self.compared,
            "first_divergence": dataclasses.asdict(self.first) if self.first else None,
        }


@dataclasses.dataclass
class LayerValues:
    """Every layer's values on the check's input, from the runtimes asked so far (lazily)."""

    ir: IRModel
    blob_inputs: dict
    model_inputs: dict
    onnx_model: OnnxModel  # the prepared ONNX the IR was made from
    toolchain: Toolchain
    worker: LegacyWorker | None = None
    _cache: dict = dataclasses.field(default_factory=dict)

    def openvino_2021(self) -> dict:
        if "2021" not in self._cache:
            self._cache["2021"] = _run_values(self, "2021")
        return self._cache["2021"]

    def openvino_2022(self) -> dict:
        if "2022" not in self._cache:
            self._cache["2022"] = _run_values(self, "2022")
        return self._cache["2022"]

    def ir_graph(self) -> tuple[list, dict]:
        if "graph" not in self._cache:
            self._cache["graph"] = ir_graph(self.ir.xml)
        return self._cache["graph"]

    def onnxruntime(self) -> dict:
        if "ort" not in self._cache:
            self._cache["ort"] = onnx_tensor_values(self.onnx_model.path, self.model_inputs)
        return self._cache["ort"]


def _run_values(values: LayerValues, release: str) -> dict:
    toolchain, ir = values.toolchain, values.ir
    with tempfile.TemporaryDirectory(prefix="myriad-blob-values-") as tmp:
        inputs_path, values_path = Path(tmp) / "inputs.npz", Path(tmp) / "values.npz"
        np.savez(inputs_path, **values.blob_inputs)
        command = (
            [str(toolchain.python), str(RUN_IR_ON_CPU_SCRIPT), "--values"]
            if release == "2021"
            else [str(toolchain.frontend_python), str(RUN_IR_2022_SCRIPT)]
        )
        returncode, output = run_job(
            toolchain,
            values.worker if release == "2021" else None,
            "values",
            {"xml": str(ir.xml), "inputs": str(inputs_path), "values": str(values_path)},
            command + [str(ir.xml), str(inputs_path), str(values_path)],
            VALUES_TIMEOUT_S,
        )
        if returncode != 0:
            raise RuntimeError(f"OpenVINO {release}'s CPU plugin could not run the IR: {last_line(output)}")
        with np.load(values_path, allow_pickle=False) as loaded:
            return {name: loaded[name] for name in loaded.files}


_FLOAT_TYPES = {"tensor(float16)": np.float16, "tensor(double)": np.float64}


def onnx_tensor_values(path: Path, inputs: dict) -> dict:
    """Every floating-point tensor of the ONNX model on ONNX Runtime (no graph optimizations)."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load_model(str(path)))
    known = {o.name for o in model.graph.output}
    for value in model.graph.value_info:
        if (
            value.type.tensor_type.elem_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
            and value.name not in known
        ):
            model.graph.output.append(value)
    session = ort_session(model.SerializeToString())
    feeds = {
        arg.name: inputs[arg.name].astype(_FLOAT_TYPES.get(arg.type, np.float32))
        if np.asarray(inputs[arg.name]).dtype.kind == "f"
        else inputs[arg.name]
        for arg in session.get_inputs()
    }
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def ir_graph(xml: Path) -> tuple[list, dict]:
    """The IR's layers [(name, type, id)] in file order, and each layer's inputs {id: [(source id, output index)]}."""
    root = ElementTree.parse(xml).getroot()
    layers = [(layer.get("name"), layer.get("type"), layer.get("id")) for layer in root.iter("layer")]
    # An edge names a port by its id, numbered across a layer's inputs and outputs; values are keyed
    # by the output's index among the layer's outputs.
    output_index = {}
    for layer in root.iter("layer"):
        outputs = layer.find("output")
        for index, port in enumerate(outputs.findall("port") if outputs is not None else []):
            output_index[(layer.get("id"), port.get("id"))] = index
    inputs: dict = {}
    for edge in root.iter("edge"):
        source = edge.get("from-layer")
        inputs.setdefault(edge.get("to-layer"), []).append(
            (source, output_index.get((source, edge.get("from-port")), 0))
        )
    return layers, inputs


def relative_difference(expected: np.ndarray, actual: np.ndarray) -> float:
    expected, actual = np.asarray(expected, np.float64).ravel(), np.asarray(actual, np.float64).ravel()
    if expected.size != actual.size:
        return float("inf")
    if not expected.size:
        return 0.0
    difference = peak_relative_error(expected, actual)
    return difference if np.isfinite(difference) else float("inf")


def _onnx_tensor(onnx_model: OnnxModel, layer: str, port: int) -> str | None:
    """The ONNX tensor an IR layer's output is, when the layer is named exactly after the tensor or
    after the node producing it (a suffixed name, "/conv/Conv/WithoutBiases", is a part of it)."""
    if layer in onnx_model.producers:
        return layer
    outputs = [tensor for tensor, node in onnx_model.producers.items() if node == layer]
    return outputs[port] if port < len(outputs) else None


def diagnose(values: LayerValues) -> Diagnosis:
    """Walk the IR's layers in network order; the first layer where OpenVINO 2021.4 and 2022.3 part
    (the same IR, both in FP32: a runtime's fault), or where both part from ONNX Runtime (the
    conversion's), names the cause."""
    try:
        ov2021, ort = values.openvino_2021(), values.onnxruntime()
    except Exception as error:  # the second opinion is extra: its failure never fails the check
        return Diagnosis("error", f"the layer-by-layer comparison could not run ({error})")
    try:
        ov2022 = values.openvino_2022()
    except Exception:
        ov2022 = {}
    onnx_model = values.onnx_model
    layers, inputs = values.ir_graph()
    types = {layer_id: kind for _, kind, layer_id in layers}
    compared = 0
    for name, kind, layer_id in layers:
        if kind in _SKIPPED:
            continue
        for key in (k for k in ov2021 if k.rpartition(":")[0] == name):
            tensor = _onnx_tensor(onnx_model, name, int(key.rpartition(":")[2]))
            mapped = tensor is not None and tensor in ort and np.size(ort[tensor]) == np.size(ov2021[key])
            between = relative_difference(ov2022[key], ov2021[key]) if key in ov2022 else None
            error_2021 = relative_difference(ort[tensor], ov2021[key]) if mapped else None
            error_2022 = relative_difference(ort[tensor], ov2022[key]) if mapped and key in ov2022 else None
            compared += mapped
            runtime = between is not None and between > RUNTIMES_AGREE and (error_2022 is None or error_2022 < between)
            conversion = (
                error_2021 is not None and error_2021 > DIVERGENCE and (error_2022 is None or error_2022 > DIVERGENCE)
            )
            if not (runtime or conversion):
                continue
            origin = (onnx_model.origin(tensor) if mapped else None) or {}
            after_input = any(types.get(source) == "Parameter" for source, _ in inputs.get(layer_id, []))
            first = LayerAgreement(
                name,
                kind,
                tensor if mapped else None,
                origin.get("node"),
                origin.get("op"),
                _round(error_2021 if mapped else between),
                _round(error_2022),
                after_input,
            )
            return _verdict(values, first, "runtime" if runtime else "conversion", compared)
    return Diagnosis(
        "unknown",
        f"every one of the {compared} IR layers compared with ONNX Runtime agrees within "
        f"{DIVERGENCE:g} of its peak, and OpenVINO 2021.4 with 2022.3 on every layer; "
        "the outputs part after them",
        compared,
    )


def _round(value):
    return None if value is None else round(value, 6)


def _verdict(values: LayerValues, first: LayerAgreement, kind: str, compared: int) -> Diagnosis:
    preprocessing = values.ir.preprocessing
    if (
        kind == "conversion"
        and first.after_input
        and (preprocessing.get("mean") or preprocessing.get("scale") or preprocessing.get("reverse_input_channels"))
    ):
        return Diagnosis(
            "preprocessing",
            f"the first layer after the input, {first.where()}, differs from the "
            f"original by {first.error_2021:.2g} of its peak: the preprocessing baked "
            "into the blob does not compute what the check applies to the original "
            "(both get the same --mean/--scale/--reverse-input-channels, so the flags "
            "are not the cause: a fault of the conversion there)",
            compared,
            first,
        )
    if kind == "conversion" and first.onnx_tensor and fp16_weights_explain(values, first):
        return Diagnosis(
            "fp16",
            f"the IR's FP16 weights change layer {first.where()} by {first.error_2021:.2g} of its "
            "peak: ONNX Runtime with the same weights rounded to FP16 parts from the original "
            "there too, so the conversion computes what it should, and FP16 is not precise "
            "enough for this layer (a softmax or argmax over near-equal values, or large "
            "activations): the camera will see the same; retrain or rescale that part, or run it "
            "on the host",
            compared,
            first,
        )
    if kind == "runtime" and first.onnx_tensor is None:  # no ONNX tensor to say which runtime is right
        return Diagnosis(
            "runtime",
            f"OpenVINO 2021.4's CPU plugin, the check's reference, and 2022.3's compute layer "
            f"{first.where()} of the same IR differently (by {first.error_2021:.2g} of its "
            "peak): one runtime is wrong there. Whether the Myriad plugin of 2021.4 shares "
            "the fault needs a device: check this output on the camera",
            compared,
            first,
        )
    if kind == "runtime":
        return Diagnosis(
            "runtime",
            f"OpenVINO 2021.4's CPU plugin, the check's reference, computes layer "
            f"{first.where()} differently from OpenVINO 2022.3's CPU plugin on the same IR "
            f"(by {first.error_2021:.2g} of its peak), and 2022.3 agrees with the original: "
            "the IR is right, the 2021.4 runtime is the odd one out. Whether the Myriad "
            "plugin of that release shares the fault needs a device: check this output on "
            "the camera",
            compared,
            first,
        )
    also = "" if first.error_2022 is None else f" (OpenVINO 2022.3 too: {first.error_2022:.2g})"
    return Diagnosis(
        "conversion",
        f"the conversion (a rewrite, or the IR's FP16 weights) changed the computation at "
        f"layer {first.where()}: it differs from the original by {first.error_2021:.2g} of "
        f"its peak{also}",
        compared,
        first,
    )


def round_weights_to_fp16(model) -> None:
    """Every FP32 initializer rounded to FP16 and back, as the IR stores weights (in place); a
    weight beyond FP16's range becomes inf, as in the IR."""
    import onnx
    from onnx import numpy_helper

    for initializer in model.graph.initializer:
        if initializer.data_type == onnx.TensorProto.FLOAT:
            with np.errstate(over="ignore"):
                rounded = numpy_helper.to_array(initializer).astype(np.float16).astype(np.float32)
            initializer.CopyFrom(numpy_helper.from_array(rounded, initializer.name))


def fp16_weights_explain(values: LayerValues, first: LayerAgreement) -> bool:
    """Whether ONNX Runtime on the prepared ONNX with its weights rounded to FP16 (as the IR stores
    them) also parts from the original at the diverging layer."""
    import onnx

    try:
        model = onnx.load_model(str(values.onnx_model.path))
        round_weights_to_fp16(model)
        with tempfile.TemporaryDirectory(prefix="myriad-blob-fp16w-") as tmp:
            path = Path(tmp) / "fp16-weights.onnx"
            onnx.save_model(model, str(path))
            rounded_values = onnx_tensor_values(path, values.model_inputs)
        original = values.onnxruntime()[first.onnx_tensor]
        return relative_difference(original, rounded_values[first.onnx_tensor]) > DIVERGENCE
    except Exception:  # unknown: the verdict stays the conversion's
        return False


def logits(values: LayerValues, output: str) -> tuple[str, np.ndarray, np.ndarray] | None:
    """For an output made by a final Sigmoid or Softmax: (description, the original's logits, the
    IR's logits on the 2021.4 CPU plugin), else None."""
    layers, inputs = values.ir_graph()
    by_id = {layer_id: (name, kind) for name, kind, layer_id in layers}
    result = next((layer_id for name, kind, layer_id in layers if name == output and kind != "Result"), None)
    if result is None or by_id[result][1] not in ("Sigmoid", "SoftMax", "Softmax"):
        return None
    node = values.onnx_model.producers.get(output)
    import onnx

    graph = onnx.load_model(str(values.onnx_model.path), load_external_data=False).graph
    onnx_node = next((n for n in graph.node if output in n.output), None)
    if onnx_node is None or onnx_node.op_type not in ("Sigmoid", "Softmax"):
        return None
    (source, port), *_ = inputs[result]
    source_name = by_id[source][0]
    try:
        ov2021, ort = values.openvino_2021(), values.onnxruntime()
    except Exception:
        return None
    key = f"{source_name}:{port}"
    if key not in ov2021 or onnx_node.input[0] not in ort:
        return None
    what = f"the logits feeding its {onnx_node.op_type} (ONNX node `{node}`, IR layer `{source_name}`)"
    return what, ort[onnx_node.input[0]], ov2021[key]
