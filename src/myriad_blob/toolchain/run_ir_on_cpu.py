"""Run an OpenVINO 2021.4 IR on the CPU plugin (in the legacy toolchain's Python 3.8/3.9).

Usage: python run_ir_on_cpu.py MODEL.xml INPUTS.npz OUTPUTS.npz
Inputs are fed as FP32 (the values a camera would send: for a U8 blob, integers 0..255);
every output is written as float32. The numeric check compares these with the original model.
"""

import sys

import numpy as np
from openvino.inference_engine import IECore


def run(core, xml, inputs_path, outputs_path):
    network = core.read_network(xml, xml[: -len(".xml")] + ".bin")
    for info in network.input_info.values():
        info.precision = "FP32"
    for data in network.outputs.values():
        data.precision = "FP32"
    # On CPUs with native bfloat16 the 2021.4 CPU plugin otherwise computes in BF16 (8-bit
    # mantissa), noisier than the Myriad's FP16 and different from host to host.
    executable = core.load_network(network, "CPU", {"ENFORCE_BF16": "NO"})
    with np.load(inputs_path, allow_pickle=False) as inputs:
        feed = {name: inputs[name] for name in inputs.files}
    results = executable.infer(feed)
    np.savez(outputs_path, **{name: np.asarray(value, dtype=np.float32) for name, value in results.items()})


def main():
    run(IECore(), *sys.argv[1:])


if __name__ == "__main__":
    main()
