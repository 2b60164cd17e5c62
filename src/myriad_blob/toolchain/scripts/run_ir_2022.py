"""Run an IR on OpenVINO 2022.3.1's CPU plugin (in the front end's Python 3.9 venv): the numeric
check's second opinion when the converted model's outputs miss.

Usage: python run_ir_2022.py MODEL.xml INPUTS.npz VALUES.npz
Every computing layer's output is added as a model output; the values are written as float32,
keyed "layer:port" (the IR's layer names), like run_ir_on_cpu.py --values for the 2021.4 plugin.
FP32 inference (no bf16/fp16 hints), so a difference is the runtime's, not its precision's.
"""

import sys

import numpy as np

try:
    import openvino.runtime as ov
except ImportError:  # imported by the converter's Python only to find this file
    if __name__ == "__main__":
        raise

_SKIPPED = {"Parameter", "Constant", "Result"}


def run(xml, inputs_path, values_path):
    core = ov.Core()
    model = core.read_model(xml)
    keys = []
    for op in model.get_ordered_ops():
        if op.get_type_name() in _SKIPPED:
            continue
        for index in range(op.get_output_size()):
            if op.output(index).get_element_type().is_real():
                key = f"{op.get_friendly_name()}:{index}"
                op.output(index).get_tensor().add_names({key})  # found by this name, whatever the output order
                model.add_outputs([op.output(index)])
                keys.append(key)
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    with np.load(inputs_path, allow_pickle=False) as inputs:
        feed = {name: inputs[name] for name in inputs.files}
    results = compiled.infer_new_request(feed)
    np.savez(values_path, **{key: np.asarray(results[compiled.output(key)], dtype=np.float32) for key in keys})


if __name__ == "__main__":
    run(*sys.argv[1:])
