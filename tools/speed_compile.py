"""Compile one calibration architecture into a blob.

python tools/speed_compile.py KEY SIZE SHAVES OUT.blob  (run under flock /tmp/myriad-heavy.lock)

The pipeline's own stages (load, export, IR, compile); no numeric check (the calibration needs
the blob's stage table, not its accuracy).
"""

from __future__ import annotations

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


def compile_graph(key: str, size: int, shaves: int, blob: Path) -> Path:
    """Build, export (ONNX opset 12), convert and compile KEY at SIZE x SIZE for SHAVES into blob.
    Raises ConversionError as the pipeline does."""
    with tempfile.TemporaryDirectory(prefix="speed-") as tmp:
        onnx_path = Path(tmp) / f"{key}.onnx"
        module = speed_models.build(key)
        sample = torch.zeros(1, 3, size, size)
        with torch.no_grad():
            torch.onnx.export(module, sample, onnx_path, opset_version=12, dynamo=False)
        options = ConversionOptions(
            input=onnx_path,
            output=blob,
            input_shapes=(InputSpec(None, (1, 3, size, size)),),
            nshaves=shaves,
            nslices=shaves,
        )
        toolchain = toolchain_module.locate(None)
        report = ConversionReport(options.to_dict())
        session = pipeline.Session(Path(tmp) / "work")
        conversion = pipeline.Conversion(options, toolchain, report, session, session.directory(("speed", key)))
        loaded = conversion.load()
        onnx_model = conversion.export(loaded)
        ir, prepared = conversion.make_ir(onnx_model)
        compiled, _ = conversion.compile(ir, prepared)
        blob.write_bytes(compiled.path.read_bytes())
        session.close()
    return blob


if __name__ == "__main__":
    key, size, shaves, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    out.parent.mkdir(parents=True, exist_ok=True)
    compile_graph(key, size, shaves, out)
    print(out, out.stat().st_size)
