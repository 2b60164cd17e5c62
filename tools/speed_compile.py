"""Compile one calibration architecture and keep the plugin's internal graph (a .dot file).

python tools/speed_compile.py KEY SIZE SHAVES OUT.dot  (run under flock /tmp/myriad-heavy.lock)

The pipeline's own stages (load, export, IR, compile) with the private dump key added to the
compile; no numeric check (the calibration needs the compiled graph, not the blob's accuracy).
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed_models

from myriad_blob import pipeline
from myriad_blob import toolchain as toolchain_module
from myriad_blob.options import ConversionOptions, InputSpec
from myriad_blob.report import ConversionReport


def compile_graph(key: str, size: int, shaves: int, dot: Path) -> Path:
    """Build, export (ONNX opset 12), convert and compile KEY at SIZE x SIZE for SHAVES; the blob
    beside dot (.blob). Raises ConversionError as the pipeline does."""
    with tempfile.TemporaryDirectory(prefix="speed-") as tmp:
        onnx_path = Path(tmp) / f"{key}.onnx"
        module = speed_models.build(key)
        sample = torch.zeros(1, 3, size, size)
        with torch.no_grad():
            torch.onnx.export(module, sample, onnx_path, opset_version=12, dynamo=False)
        options = ConversionOptions(
            input=onnx_path,
            output=dot.with_suffix(".blob"),
            input_shapes=(InputSpec(None, (1, 3, size, size)),),
            nshaves=shaves,
            nslices=shaves,
            compile_config={"MYRIAD_DUMP_INTERNAL_GRAPH_FILE_NAME": str(dot.resolve())},
        )
        options = dataclasses.replace(options)
        toolchain = toolchain_module.locate(None)
        report = ConversionReport(options.to_dict())
        session = pipeline.Session(Path(tmp) / "work")
        conversion = pipeline.Conversion(options, toolchain, report, session, session.directory(("speed", key)))
        loaded = conversion.load()
        onnx_model = conversion.export(loaded)
        ir, prepared = conversion.make_ir(onnx_model)
        compiled, _ = conversion.compile(ir, prepared)
        dot.with_suffix(".blob").write_bytes(compiled.path.read_bytes())
        session.close()
    return dot


if __name__ == "__main__":
    key, size, shaves, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    out.parent.mkdir(parents=True, exist_ok=True)
    compile_graph(key, size, shaves, out)
    print(out, out.stat().st_size)
