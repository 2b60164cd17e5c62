"""Micro-models for the plugin's stage graph (test_stage_graph.py, test_fp16_stages.py): each one
holds the IR layer a decomposition-table row is about, and compiles in a few seconds."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from conftest import make_ir
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


def compile_model(path: Path, **values):
    """(IRModel, CompiledBlob, PreparedOnnx) for a model file, made by the pipeline's own stages
    (conftest.make_ir, then pipeline.Conversion's compile; the blob in a temporary directory that
    lives as long as the process)."""
    workdir = Path(tempfile.mkdtemp(prefix="myriad-stages-"))
    options = parse_options(input=path, output=workdir / "m.blob", **values)
    toolchain, _, prepared, ir = make_ir(options, workdir)
    conversion = Conversion(options, toolchain, ConversionReport(options.to_dict()), Session(workdir), workdir)
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


class Normalize(nn.Module):
    """F.normalize over dim 1, as a module (its ONNX nodes are named after it: /norm/ReduceL2)."""

    def forward(self, x):
        return F.normalize(x, dim=1)


class FaceEmbedding(nn.Module):
    """conv -> Linear(128) -> L2 normalisation (issue #25's face-embedding net). gain sets the
    embedding's size: 600 gives an L2 norm of ~400 on the check photo, whose sum of squares is beyond
    FP16's 65504 on the chip; prescale divides the embedding by it before the normalisation (64:
    right on the chip, the same output). bias=False: a black frame gives an all-zero embedding."""

    def __init__(self, gain: float = 600.0, prescale: float = 1.0, bias: bool = True):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, stride=4, padding=1, bias=bias)
        self.fc = nn.Linear(8 * 16 * 16, 128, bias=bias)
        self.norm = Normalize()
        self.gain, self.prescale = gain, prescale

    def forward(self, x):
        features = torch.relu(self.conv(x / 255)).flatten(1)
        embedding = self.fc(features) * self.gain
        return self.norm(embedding / self.prescale if self.prescale != 1 else embedding)


class SuperPoint(nn.Module):
    """SuperPoint (DeTone et al. 2018; magicleap/SuperPointPretrainedNetwork's SuperPointNet) with
    seeded weights: a shared VGG encoder, the keypoint head (65 channels) and the descriptor head
    (256 channels) ending in its L2 normalisation, kept inside the model:
    `desc.div(torch.norm(desc, p=2, dim=1, keepdim=True))`. Grayscale 0..255 in (a U8 blob).
    desc_gain scales the descriptor head's last conv: trained descriptors before the norm are
    large; at the default the L2 norm on the check photo is ~1,000 (a sum of squares ~1e6, each value
    below 256)."""

    def __init__(self, desc_gain: float = 9000.0):
        super().__init__()
        torch.manual_seed(0)
        c1, c2, c3, c4, c5, d1 = 64, 64, 128, 128, 256, 256
        conv = lambda i, o, k=3: nn.Conv2d(i, o, k, padding=k // 2)  # noqa: E731
        self.conv1a, self.conv1b = conv(1, c1), conv(c1, c1)
        self.conv2a, self.conv2b = conv(c1, c2), conv(c2, c2)
        self.conv3a, self.conv3b = conv(c2, c3), conv(c3, c3)
        self.conv4a, self.conv4b = conv(c3, c4), conv(c4, c4)
        self.convPa, self.convPb = conv(c4, c5), conv(c5, 65, 1)
        self.convDa, self.convDb = conv(c4, c5), conv(c5, d1, 1)
        self.pool = nn.MaxPool2d(2, 2)
        with torch.no_grad():
            self.convDb.weight.mul_(desc_gain)

    def forward(self, x):
        relu = torch.relu
        x = x / 255
        x = self.pool(relu(self.conv1b(relu(self.conv1a(x)))))
        x = self.pool(relu(self.conv2b(relu(self.conv2a(x)))))
        x = self.pool(relu(self.conv3b(relu(self.conv3a(x)))))
        x = relu(self.conv4b(relu(self.conv4a(x))))
        semi = self.convPb(relu(self.convPa(x)))
        desc = self.convDb(relu(self.convDa(x)))
        desc = desc.div(torch.norm(desc, p=2, dim=1, keepdim=True))
        return semi, desc
