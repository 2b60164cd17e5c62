"""Micro-models for the plugin's stage graph (test_stage_graph.py, test_fp16_stages.py): each one
holds the IR layer a decomposition-table row is about, and compiles in a few seconds."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from myriad_blob import toolchain as toolchain_module
from myriad_blob.checks.fp16_stages import check_stages
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


def stage_check(path: Path, **values):
    """(StageCheck, CompiledBlob) of a model file: compiled as a conversion compiles it, then the
    plugin's stages checked in FP16 on the photo and the hard frames."""
    ir, compiled, prepared = compile_model(path, **values)
    options = parse_options(input=path, **values)
    check = check_stages(
        compiled.stage_graph,
        ir,
        prepared,
        toolchain_module.locate(),
        options,
        input_types=compiled.settings["tensor_types"],
        layouts=compiled.settings["tensor_layouts"],
    )
    return check, compiled


class FaceEmbedding(nn.Module):
    """conv -> Linear(128) -> L2 normalisation (issue #25's face-embedding net). gain sets the
    embedding's size: 600 gives an L2 norm of ~400 on the check photo, whose sum of squares is beyond
    FP16's 65504 on the chip; prescale divides the embedding by it before F.normalize (64: right on
    the chip, the same output)."""

    def __init__(self, gain: float = 600.0, prescale: float = 1.0):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.fc = nn.Linear(8 * 16 * 16, 128)
        self.gain, self.prescale = gain, prescale

    def forward(self, x):
        features = torch.relu(self.conv(x / 255)).flatten(1)
        embedding = self.fc(features) * self.gain
        return F.normalize(embedding / self.prescale if self.prescale != 1 else embedding, dim=1)
