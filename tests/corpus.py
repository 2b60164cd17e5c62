"""Real architectures, built in code with seeded weights (no downloads), that users bring.

Each CorpusModel says how a user would hand it to myriad-blob: a PyTorch module saved as
TorchScript, or an ONNX file exported the way its own tooling exports it (ultralytics: opset 17,
dynamic batch/height/width). Weights are seeded; batch-norm statistics are calibrated on
image-like data so activations sit at the scales a trained net has (with torchvision's fresh
init, MobileNetV3's logits are ~1e-12, where no numeric comparison means anything).

Used by tests/test_corpus.py, `make bench` and `make corpus-table` (the README's table).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

_torchvision_ops = None


def torchvision_models():
    """torchvision's model definitions. PyPI's torchvision wheel cannot load its compiled ops
    beside the CPU build of torch 2.13.0 and then fails to register fake kernels for ops that do
    not exist; declaring their schemas first lets it import (the models use none of these ops)."""
    global _torchvision_ops
    try:
        import torchvision
    except RuntimeError:
        _torchvision_ops = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            _torchvision_ops.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        import torchvision
    return torchvision.models


def image_batch(shape, seed: int = 1) -> torch.Tensor:
    """Normalized image-like data: smooth gradients per channel plus noise."""
    generator = torch.Generator().manual_seed(seed)
    _, c, h, w = shape
    gradient = (torch.linspace(-1, 1, h)[:, None] + torch.linspace(-1, 1, w)[None, :]) / 2
    levels = torch.linspace(0.8, -0.8, c)[:, None, None]
    return levels + gradient + 0.5 * torch.randn(shape, generator=generator)


# Channels that random weights leave nearly dead get running variances of ~1e-4, and batch norm
# then multiplies whatever reaches them ~100x: the net amplifies FP16 rounding as no trained net
# does (mnasnet0_5: 1.7% output error from rounding its weights alone; 0.04% with this floor).
# Live channels have variance ~1 under torchvision's Kaiming init.
VARIANCE_FLOOR = 0.1
LOGIT_SCALE = 3.0  # a trained classifier's logits spread over several units; fresh ones over ~0.01


def calibrate(model: nn.Module, shape, batches: int = 3) -> nn.Module:
    """Batch-norm running statistics from image-like data, as training would leave them, and a
    classifier head scaled so its logits spread as a trained one's do."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a plain average over the batches
    model.train()
    with torch.no_grad():
        for seed in range(batches):
            model(image_batch((4, *shape[1:]), seed))
        for norm in norms:
            norm.running_var.clamp_(min=VARIANCE_FLOOR)
        model.eval()
        heads = [m for m in model.modules() if isinstance(m, nn.Linear)]
        output = model(image_batch((4, *shape[1:]), batches))
        if heads and isinstance(output, torch.Tensor) and output.dim() == 2 and output.std() < 1:
            factor = LOGIT_SCALE / float(output.std())
            heads[-1].weight.mul_(factor)
            heads[-1].bias.mul_(factor)
    return model


# --- A YOLOv8-style detector: ultralytics' blocks (Conv, C2f, SPPF, DFL head), written out ---


class Conv(nn.Sequential):
    def __init__(self, c1, c2, k=1, s=1):
        super().__init__(nn.Conv2d(c1, c2, k, s, k // 2, bias=False), nn.BatchNorm2d(c2), nn.SiLU())


class Bottleneck(nn.Module):
    def __init__(self, c, shortcut=True):
        super().__init__()
        self.cv1, self.cv2, self.add = Conv(c, c, 3), Conv(c, c, 3), shortcut

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    def __init__(self, c1, c2, n=1, shortcut=False):
        super().__init__()
        self.c = c2 // 2
        self.cv1 = Conv(c1, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c1, c2, k=5):
        super().__init__()
        self.cv1, self.cv2 = Conv(c1, c1 // 2, 1), Conv(c1 // 2 * 4, c2, 1)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x):
        y = [self.cv1(x)]
        y.extend(self.m(y[-1]) for _ in range(3))
        return self.cv2(torch.cat(y, 1))


class DFL(nn.Module):
    def __init__(self, c1=16):
        super().__init__()
        self.conv = nn.Conv2d(c1, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(c1, dtype=torch.float).view(1, c1, 1, 1)
        self.c1 = c1

    def forward(self, x):
        b, _, a = x.shape
        return self.conv(x.view(b, 4, self.c1, a).transpose(2, 1).softmax(1)).view(b, 4, a)


def make_anchors(feats, strides, offset=0.5):
    points, stride_tensor = [], []
    for feat, stride in zip(feats, strides):
        h, w = feat.shape[2:]
        sx = torch.arange(end=w, dtype=feat.dtype) + offset
        sy = torch.arange(end=h, dtype=feat.dtype) + offset
        sy, sx = torch.meshgrid(sy, sx, indexing="ij")
        points.append(torch.stack((sx, sy), -1).view(-1, 2))
        stride_tensor.append(torch.full((h * w, 1), stride, dtype=feat.dtype))
    return torch.cat(points), torch.cat(stride_tensor)


class Detect(nn.Module):
    """ultralytics' Detect head in export mode: boxes decoded with DFL, class scores sigmoid."""

    def __init__(self, nc, channels, strides=(8, 16, 32), reg_max=16):
        super().__init__()
        self.nc, self.reg_max, self.no, self.stride = nc, reg_max, nc + 4 * reg_max, strides
        c2, c3 = max(16, channels[0] // 4, 4 * reg_max), max(channels[0], min(nc, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1)) for x in channels
        )
        self.cv3 = nn.ModuleList(nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in channels)
        self.dfl = DFL(reg_max)

    def forward(self, x):
        x = [torch.cat((self.cv2[i](xi), self.cv3[i](xi)), 1) for i, xi in enumerate(x)]
        shape = x[0].shape
        x_cat = torch.cat([xi.view(shape[0], self.no, -1) for xi in x], 2)
        anchors, strides = (t.transpose(0, 1) for t in make_anchors(x, self.stride))
        box, cls = x_cat.split((self.reg_max * 4, self.nc), 1)
        lt, rb = self.dfl(box).chunk(2, 1)
        anchors = anchors.unsqueeze(0)
        x1y1, x2y2 = anchors - lt, anchors + rb
        dbox = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * strides
        return torch.cat((dbox, cls.sigmoid()), 1)


class YOLOv8Style(nn.Module):
    """YOLOv8n's layout at reduced width: backbone, SPPF, PAN neck, three-scale DFL head."""

    def __init__(self, nc=8, w=(8, 16, 32, 64, 128)):
        super().__init__()
        self.stem = nn.Sequential(Conv(3, w[0], 3, 2), Conv(w[0], w[1], 3, 2), C2f(w[1], w[1], 1, True))
        self.p3 = nn.Sequential(Conv(w[1], w[2], 3, 2), C2f(w[2], w[2], 2, True))
        self.p4 = nn.Sequential(Conv(w[2], w[3], 3, 2), C2f(w[3], w[3], 2, True))
        self.p5 = nn.Sequential(Conv(w[3], w[4], 3, 2), C2f(w[4], w[4], 1, True), SPPF(w[4], w[4]))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.n4, self.n3 = C2f(w[4] + w[3], w[3]), C2f(w[3] + w[2], w[2])
        self.d3, self.m4 = Conv(w[2], w[2], 3, 2), C2f(w[2] + w[3], w[3])
        self.d4, self.m5 = Conv(w[3], w[3], 3, 2), C2f(w[3] + w[4], w[4])
        self.head = Detect(nc, (w[2], w[3], w[4]))

    def forward(self, x):
        p3 = self.p3(self.stem(x))
        p4 = self.p4(p3)
        p5 = self.p5(p4)
        n4 = self.n4(torch.cat((self.up(p5), p4), 1))
        n3 = self.n3(torch.cat((self.up(n4), p3), 1))
        m4 = self.m4(torch.cat((self.d3(n3), n4), 1))
        m5 = self.m5(torch.cat((self.d4(m4), p5), 1))
        return self.head([n3, m4, m5])


# --- A ViT-style attention block: patch embedding, pre-norm transformer layers, a class head ---


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.qkv, self.proj = heads, nn.Linear(dim, dim * 3), nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 2), nn.GELU(), nn.Linear(dim * 2, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    def __init__(self, size=64, patch=8, dim=64, depth=2, heads=4, classes=10):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch, patch)
        self.position = nn.Parameter(0.02 * torch.randn(1, (size // patch) ** 2, dim))
        self.blocks = nn.Sequential(*(Block(dim, heads) for _ in range(depth)))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2) + self.position
        return self.head(self.norm(self.blocks(x)).mean(1))


class SegmentationOutput(nn.Module):
    """torchvision's segmentation models return {"out": ...}; a user exports the tensor."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


# --- The corpus ---

# torchvision's normalization in pixel units, and ultralytics' (pixels / 255).
IMAGENET = ("--mean", "[123.675, 116.28, 103.53]", "--scale", "[58.395, 57.12, 57.375]")
ULTRALYTICS = ("--scale", "[255, 255, 255]")


@dataclasses.dataclass(frozen=True)
class CorpusModel:
    name: str
    build: Callable[[], nn.Module]
    shape: tuple
    kind: str = "torchscript"  # how the user hands it over: "torchscript", or "onnx" (see onnx_export)
    onnx_export: dict = dataclasses.field(default_factory=dict)  # torch.onnx.export kwargs for kind "onnx"
    flags: tuple = IMAGENET  # the preprocessing flags a user would pass (the blob takes camera U8 pixels)
    note: str = ""

    def build_model(self) -> nn.Module:
        torch.manual_seed(0)
        return calibrate(self.build(), self.shape)

    def save(self, directory: Path) -> Path:
        """The file a user would bring."""
        model = self.build_model()
        example = image_batch(self.shape)
        if self.kind == "onnx":
            path = directory / f"{self.name}.onnx"
            torch.onnx.export(model, (example,), str(path), dynamo=False, do_constant_folding=True, **self.onnx_export)
            return path
        path = directory / f"{self.name}.pt"
        with torch.no_grad():
            torch.jit.save(torch.jit.trace(model, example), str(path))
        return path


def _tv(name, **kwargs):
    return lambda: getattr(torchvision_models(), name)(weights=None, **kwargs)


def _segmentation(name):
    return lambda: SegmentationOutput(
        getattr(torchvision_models().segmentation, name)(
            weights=None, weights_backbone=None, num_classes=6, **({"aux_loss": False} if "deeplab" in name else {})
        )
    )


ULTRALYTICS_EXPORT = {
    "opset_version": 17,
    "input_names": ["images"],
    "output_names": ["output0"],
    "dynamic_axes": {"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch", 2: "anchors"}},
}

CORPUS = (
    CorpusModel(
        "mobilenet_v3_small",
        _tv("mobilenet_v3_small", num_classes=100),
        (1, 3, 128, 128),
        note="hard-swish / hard-sigmoid",
    ),
    CorpusModel("mobilenet_v3_large", _tv("mobilenet_v3_large", num_classes=100), (1, 3, 128, 128)),
    CorpusModel(
        "shufflenet_v2_x0_5", _tv("shufflenet_v2_x0_5", num_classes=100), (1, 3, 128, 128), note="channel shuffle"
    ),
    CorpusModel(
        "efficientnet_b0", _tv("efficientnet_b0", num_classes=100), (1, 3, 128, 128), note="SiLU, squeeze-excite"
    ),
    CorpusModel("regnet_x_400mf", _tv("regnet_x_400mf", num_classes=100), (1, 3, 128, 128), note="grouped convs"),
    CorpusModel("mnasnet0_5", _tv("mnasnet0_5", num_classes=100), (1, 3, 128, 128)),
    CorpusModel("squeezenet1_1", _tv("squeezenet1_1", num_classes=100), (1, 3, 128, 128)),
    CorpusModel("resnet18", _tv("resnet18", num_classes=100), (1, 3, 128, 128)),
    CorpusModel(
        "lraspp_mobilenet_v3_large", _segmentation("lraspp_mobilenet_v3_large"), (1, 3, 128, 128), note="segmentation"
    ),
    CorpusModel(
        "deeplabv3_mobilenet_v3_large",
        _segmentation("deeplabv3_mobilenet_v3_large"),
        (1, 3, 128, 128),
        note="segmentation, ASPP",
    ),
    CorpusModel(
        "yolov8_style",
        YOLOv8Style,
        (1, 3, 160, 160),
        kind="onnx",
        onnx_export=ULTRALYTICS_EXPORT,
        flags=ULTRALYTICS,
        note="ultralytics export: opset 17, dynamic axes, Split/Softmax DFL head",
    ),
    CorpusModel("tiny_vit", TinyViT, (1, 3, 64, 64), note="attention (scaled_dot_product_attention), LayerNorm"),
    CorpusModel(
        "tiny_vit_opset17_onnx",
        TinyViT,
        (1, 3, 64, 64),
        kind="onnx",
        onnx_export={"opset_version": 17, "input_names": ["pixels"], "output_names": ["logits"]},
        note="ONNX LayerNormalization (opset 17)",
    ),
)

BY_NAME = {model.name: model for model in CORPUS}


def shape_flag(model: CorpusModel) -> str:
    return "[" + ", ".join(str(d) for d in model.shape) + "]"


if __name__ == "__main__":  # python tests/corpus.py DIR: write every corpus file into DIR
    import sys

    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for m in CORPUS:
        if len(sys.argv) > 2 and m.name not in sys.argv[2:]:
            continue
        print(m.save(out), math.prod(m.shape))
