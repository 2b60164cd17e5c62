"""Micro-models for the plugin's stage graph (test_stage_graph.py, test_fp16_stages.py): each one
holds the IR layer a decomposition-table row is about, and compiles in a few seconds."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from myriad_blob import toolchain as toolchain_module
from myriad_blob.options import parse_options
from myriad_blob.pipeline import Conversion, Session
from myriad_blob.report import ConversionReport


def onnx_file(model: nn.Module, shape, path: Path, opset: int = 12) -> Path:
    torch.onnx.export(
        model.eval(),
        (torch.zeros(shape),),
        str(path),
        opset_version=opset,
        dynamo=False,
        input_names=["x"],
        output_names=["y"],
    )
    return path


def compile_model(path: Path, *extra: str, **values):
    """(IRModel, CompiledBlob, prepared ONNX) for a model file, as a conversion makes them (the blob in a
    temporary directory that lives as long as the process)."""
    workdir = Path(tempfile.mkdtemp(prefix="myriad-stages-"))
    options = parse_options(input=path, output=workdir / "m.blob", **values)
    report = ConversionReport(options.to_dict())
    toolchain = toolchain_module.locate()
    conversion = Conversion(options, toolchain, report, Session(workdir), workdir)
    onnx_model = conversion.export(conversion.load())
    ir, prepared = conversion.make_ir(onnx_model)
    compiled, _ = conversion.compile(ir, prepared)
    return ir, compiled, prepared


class L2Normalize(nn.Module):
    """conv -> F.normalize over 128 channels (ONNX ReduceL2 -> Clip -> Div)."""

    def __init__(self, channels: int = 128, gain: float = 1.0):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.mul_(gain)

    def forward(self, x):
        return F.normalize(self.conv(x / 255), dim=1)
