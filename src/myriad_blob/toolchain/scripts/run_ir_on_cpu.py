"""Run an OpenVINO 2021.4 IR on the CPU plugin (in the legacy toolchain's Python 3.8/3.9).

Usage: python run_ir_on_cpu.py [--layouts JSON] MODEL.xml INPUTS.npz OUTPUTS.npz [RANGES.json]
       python run_ir_on_cpu.py --values MODEL.xml INPUTS.npz VALUES.npz  (every layer's values)
Inputs are fed as FP32 (the values a camera would send: for a U8 blob, integers 0..255);
every output is written as float32. The numeric check compares these with the original model.
--layouts '{"name": "NHWC"}': 4-D inputs and outputs laid out as the blob's are (the compiler's
-iol): such an input is given interleaved, (N, H, W, C), and fed as its bytes, as a camera sends an
interleaved frame; such an output is written (N, H, W, C).

With RANGES.json, every layer's output range is recorded too (the FP16 range check): the IR is
loaded again with each floating-point layer output added as an extra network output
(CNNNetwork.add_outputs), the same input is run, and each layer's min, max, largest magnitude and
counts of non-finite and FP16-subnormal values are written, in network order. The network
outputs of the first run are left exactly as they were.
"""

import json
import sys
import xml.etree.ElementTree as ElementTree

import numpy as np

try:
    from openvino.inference_engine import IECore
except ImportError:  # the converter's Python may import this module for its constants (tests)
    if __name__ == "__main__":
        raise

FP16_MIN_NORMAL = 2.0**-14  # 6.1e-5: below it FP16 has only subnormals (or flushes to zero)
# Extra outputs are buffers of their own; layers are added in chunks of at most this many bytes
# of FP32 output, one load per chunk, so a large network does not hold every activation at once.
RANGE_CHUNK_BYTES = 256 * 2**20
_SKIPPED_TYPES = {"Parameter", "Const", "Constant", "Result"}
_FLOAT_PRECISIONS = {"FP16", "FP32", "F16", "F32", "BF16"}


def run(core, xml, inputs_path, outputs_path, ranges_path=None, layouts=None):
    layouts = layouts or {}
    network = _read(core, xml)
    for name, layout in layouts.items():
        (network.input_info[name] if name in network.input_info else network.outputs[name]).layout = layout
    executable = _load(core, network)
    with np.load(inputs_path, allow_pickle=False) as inputs:
        given = {name: inputs[name] for name in inputs.files}
    # The inference engine's buffers keep (N, C, H, W) dims whatever the layout: an interleaved
    # input goes in as its bytes, and an interleaved output comes out as its bytes.
    feed = {
        name: value.reshape(executable.input_info[name].tensor_desc.dims) if name in layouts else value
        for name, value in given.items()
    }
    results = executable.infer(feed)
    np.savez(
        outputs_path,
        **{
            name: _as_laid_out(np.asarray(value, dtype=np.float32), layouts.get(name))
            for name, value in results.items()
        },
    )
    if ranges_path:
        planar = {
            name: value.transpose(0, 3, 1, 2) if layouts.get(name) == "NHWC" else value for name, value in given.items()
        }
        try:
            ranges = {"layers": layer_ranges(core, xml, planar)}
        except Exception as error:  # the range check is extra: its failure must not fail the run
            lines = str(error).strip().splitlines()
            ranges = {"error": f"{type(error).__name__}: {lines[-1] if lines else ''}"}
        with open(ranges_path, "w") as stream:
            json.dump(ranges, stream)


def _as_laid_out(value, layout):
    if layout == "NHWC":
        batch, channels, height, width = value.shape
        return value.reshape(batch, height, width, channels)
    return value


def _read(core, xml):
    return core.read_network(xml, xml[: -len(".xml")] + ".bin")


def _load(core, network):
    for info in network.input_info.values():
        info.precision = "FP32"
    for data in network.outputs.values():
        data.precision = "FP32"
    # On CPUs with native bfloat16 the 2021.4 CPU plugin otherwise computes in BF16 (8-bit
    # mantissa), noisier than the Myriad's FP16 and different from host to host.
    return core.load_network(network, "CPU", {"ENFORCE_BF16": "NO"})


def computed_layers(xml):
    """The layers that compute on the input, in network order: [(name, type, [(port index, shape)])].
    Constant subgraphs (weights, shapes) and non-floating-point outputs are left out."""
    root = ElementTree.parse(xml).getroot()
    layers = {}
    for layer in root.iter("layer"):
        outputs = layer.find("output")
        ports = []
        for index, port in enumerate(outputs.findall("port") if outputs is not None else []):
            shape = [int(dim.text) for dim in port.findall("dim")]
            ports.append((index, shape, port.get("precision", "FP32").upper()))
        layers[layer.get("id")] = (layer.get("name"), layer.get("type"), ports)
    consumers, indegree = {}, dict.fromkeys(layers, 0)
    for edge in root.iter("edge"):
        source, target = edge.get("from-layer"), edge.get("to-layer")
        consumers.setdefault(source, []).append(target)
        indegree[target] += 1
    order = [key for key in layers if indegree[key] == 0]
    live = {key for key in layers if layers[key][1] == "Parameter"}
    result, position = [], 0
    while position < len(order):  # Kahn's topological sort; liveness flows along the edges
        key = order[position]
        position += 1
        name, kind, ports = layers[key]
        if key in live and kind not in _SKIPPED_TYPES:
            kept = [(index, shape) for index, shape, precision in ports if precision in _FLOAT_PRECISIONS]
            if kept:
                result.append((name, kind, kept, len(ports)))
        for target in consumers.get(key, []):
            if key in live:
                live.add(target)
            indegree[target] -= 1
            if indegree[target] == 0:
                order.append(target)
    return result


def _output_name(name, index, port_count):
    # CNNNetwork.add_outputs names an added output after its layer, with ".port" when it has several.
    return name if port_count == 1 else f"{name}.{index}"


def layer_outputs(core, xml, feed):
    """(layer, type, port, output name, value) of every computing layer's output, in network order,
    from runs with those outputs added in chunks."""
    layers = computed_layers(xml)
    chunks, chunk, size = [], [], 0
    for name, kind, ports, port_count in layers:
        for index, shape in ports:
            nbytes = 4 * int(np.prod(shape)) if shape else 4
            if chunk and size + nbytes > RANGE_CHUNK_BYTES:
                chunks.append(chunk)
                chunk, size = [], 0
            chunk.append((name, kind, index, port_count, shape))
            size += nbytes
    if chunk:
        chunks.append(chunk)
    for chunk in chunks:
        network = _read(core, xml)
        existing = set(network.outputs)
        extra = [
            (name, index) for name, _, index, count, _ in chunk if _output_name(name, index, count) not in existing
        ]
        if extra:
            network.add_outputs(extra)
        results = _load(core, network).infer(feed)
        for name, kind, index, count, _shape in chunk:
            output = _output_name(name, index, count)
            if output in results:
                yield name, kind, index, output, results[output]


def layer_ranges(core, xml, feed):
    return [
        dict(layer=name, type=kind, port=index, output=output, **_stats(value))
        for name, kind, index, output, value in layer_outputs(core, xml, feed)
    ]


def run_values(core, xml, inputs_path, values_path):
    """Every computing layer's output values ("layer:port" -> float32 array): the numeric check's
    layer-by-layer comparison, asked for when outputs miss."""
    with np.load(inputs_path, allow_pickle=False) as inputs:
        feed = {name: inputs[name] for name in inputs.files}
    np.savez(
        values_path,
        **{
            f"{name}:{index}": np.asarray(value, dtype=np.float32)
            for name, _, index, _, value in layer_outputs(core, xml, feed)
        },
    )


def _stats(value):
    values = np.asarray(value, dtype=np.float32).ravel()
    finite = values[np.isfinite(values)]
    magnitude = np.abs(finite)
    return {
        "shape": list(np.shape(value)),
        "size": int(values.size),
        "nonfinite": int(values.size - finite.size),
        "min": float(finite.min()) if finite.size else 0.0,
        "max": float(finite.max()) if finite.size else 0.0,
        "max_abs": float(magnitude.max()) if finite.size else 0.0,
        "nonzero": int(np.count_nonzero(magnitude)),
        "subnormal": int(np.count_nonzero((magnitude > 0) & (magnitude < FP16_MIN_NORMAL))),
    }


def main():
    if sys.argv[1] == "--values":
        run_values(IECore(), *sys.argv[2:])
    elif sys.argv[1] == "--layouts":
        xml, inputs, outputs, *ranges = sys.argv[3:]
        run(IECore(), xml, inputs, outputs, ranges[0] if ranges else None, json.loads(sys.argv[2]))
    else:
        run(IECore(), *sys.argv[1:])


if __name__ == "__main__":
    main()
