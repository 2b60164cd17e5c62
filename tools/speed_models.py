"""The calibration architectures of the speed estimate, rebuilt at their published input sizes.

Each published RVC2 row (/work/shared/speed/myriad_fps_published.csv, Luxonis' RVC2 table) names an
architecture; this module builds a PyTorch module of the same architecture with fresh weights (the
speed of a blob does not depend on its weights' values). The YOLOs end in the head the camera
decodes (myriad_blob.families.yolo.head.camera_model), as Luxonis' converters cut them.

Approximations (stated in the calibration's provenance):
- YOLOv6n/t/m R2: ultralytics' yolov6.yaml (plain 3x3 conv + ReLU blocks, the deployed RepVGG
  form), with a DFL head where YOLOv6 R2 has none; YOLOv6t is its scale (0.33, 0.375).
- DeepLabV3 (MNv2): torchvision's MobileNetV2 at output stride 8 (dilated, as TF's
  mobilenetv2_coco_voc_trainaug) with an image-pooling + 1x1 head and a bilinear upsample.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

# Published row name -> builder key and how the input is given (square inputs).
ARCHITECTURES = {
    "ResNet-50": "resnet50",
    "ResNet18": "resnet18",
    "DeepLabV3 (MNv2)": "deeplabv3_mnv2",
    "YOLOv6n R2": "yolov6n",
    "YOLOv6t R2": "yolov6t",
    "YOLOv6m R2": "yolov6m",
    "YOLOv8n": "yolov8n",
    "YOLOv8s": "yolov8s",
    "YOLOv8m": "yolov8m",
    "YOLOv9t": "yolov9t",
    "YOLOv9s": "yolov9s",
    "YOLOv9m": "yolov9m",
}
# Held out, never fitted: model zoo rows (input stated, SHAVEs not: taken as 6, blobconverter's
# default), a check on architectures the fit never saw. Row name -> builder key.
HOLDOUT = {
    "ShuffleNetV2": "shufflenet_v2_x1_0",
    "MobileNetV2 embedder": "mobilenet_v2",
    "YOLOv3": "yolov3",
}
HOLDOUT_SHAVES = 6
# Published rows not rebuilt, and why.
NOT_REBUILT = {
    "YOLOv7-tiny": "no YAML ships with ultralytics (YOLOv7 is WongKinYiu's own code base)",
}


def _torchvision():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from corpus import torchvision_models  # declares torchvision's C++ ops that PyPI's wheel cannot load

    return torchvision_models()


def _yolo(key: str) -> nn.Module:
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load

    from myriad_blob.families.yolo.head import camera_model

    if key == "yolov6t":  # not one of ultralytics' scales: YOLOv6 R2's own tiny (depth 0.33, width 0.375)
        cfg = yaml_model_load("yolov6n.yaml")
        cfg["scales"]["t"], cfg["scale"] = [0.33, 0.375, 1024], "t"
    else:
        cfg = yaml_model_load(f"{key}.yaml")
    model = DetectionModel(copy.deepcopy(cfg), ch=3, nc=80, verbose=False)
    model.fuse(verbose=False)  # the deployed form: batch norms folded, RepConv branches merged
    return camera_model(model.eval())


class _DeepLabMNv2(nn.Module):
    def __init__(self):
        super().__init__()
        backbone = _torchvision().mobilenet_v2().features[:-1]  # up to the 320-channel block
        # Output stride 8: the stride-2 blocks of the 16x and 32x stages become dilated.
        for index in (7, 14):
            depthwise = backbone[index].conv[1][0]
            depthwise.stride = (1, 1)
        for index, block in enumerate(backbone):
            if index >= 7 and hasattr(block, "conv"):
                depthwise = block.conv[1][0]
                rate = 2 if index < 14 else 4
                depthwise.dilation, depthwise.padding = (rate, rate), (rate, rate)
        self.backbone = backbone
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(320, 256, 1), nn.ReLU())
        self.aspp0 = nn.Sequential(nn.Conv2d(320, 256, 1), nn.BatchNorm2d(256), nn.ReLU())
        self.project = nn.Sequential(nn.Conv2d(512, 256, 1), nn.BatchNorm2d(256), nn.ReLU())
        self.classifier = nn.Conv2d(256, 21, 1)

    def forward(self, x):
        size = x.shape[-2:]
        features = self.backbone(x)
        pooled = nn.functional.interpolate(self.pool(features), size=features.shape[-2:], mode="nearest")
        y = self.classifier(self.project(torch.cat([self.aspp0(features), pooled], 1)))
        return nn.functional.interpolate(y, size=size, mode="bilinear", align_corners=False)


def build(key: str) -> nn.Module:
    """A fresh-weight module of the architecture (eval mode)."""
    if key.startswith("yolo"):
        return _yolo(key)
    if key == "deeplabv3_mnv2":
        return _DeepLabMNv2().eval()
    return getattr(_torchvision(), key)().eval()
