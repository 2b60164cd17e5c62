"""The head the camera decodes: ultralytics' model cut before its box decode.

depthai's YOLO decoding (the DetectionNetwork's parser on the device, `subtype` yolov8, its
"TLBR" family; depthai-nodes' YOLOExtendedParser on the host) takes one output per scale, NCHW,
named `*_yolo*` and sorted by name from the smallest stride up. Each holds per grid cell:
4 box distances (left, top, right, bottom, in grid cells, the DFL distribution already reduced
to its expectation), 1 confidence (the best class score, which the device compares with its
threshold first) and the n class scores (after sigmoid). The parser then adds the cell's centre,
multiplies by the stride and runs NMS. This is the layout Luxonis's own converters give
YOLOv5u/v8/11 (output1_yolov6r2, ...): the anchors and the decode stay on the device, so the
blob ends in convolutions, a softmax for the DFL and a sigmoid.
"""

from __future__ import annotations

import torch
from torch import nn


def output_names(levels: int) -> list[str]:
    """What depthai's parser finds (`_yolo`) and sorts into stride order (1 < 2 < 3)."""
    return [f"output{i + 1}_yolov6r2" for i in range(levels)]


class CameraDetect(nn.Module):
    """Replaces ultralytics' Detect as the model's last layer: per scale, [box(4), conf(1), classes(nc)]."""

    def __init__(self, detect: nn.Module):
        super().__init__()
        self.nc, self.nl, self.reg_max = detect.nc, detect.nl, detect.reg_max
        self.register_buffer("stride", detect.stride.clone())
        heads = detect.one2many if hasattr(detect, "one2many") else {"box_head": detect.cv2, "cls_head": detect.cv3}
        self.box_head, self.cls_head = heads["box_head"], heads["cls_head"]
        # The DetectionModel's forward loop routes its inputs through these.
        self.f, self.i, self.type = detect.f, detect.i, "CameraDetect"
        self.np = getattr(detect, "np", 0)
        # The DFL's expectation as a 1x1 convolution over the bins (weights 0..reg_max-1), as ultralytics' DFL.
        self.project = nn.Conv2d(self.reg_max, 1, 1, bias=False).requires_grad_(False)
        self.project.weight.data[:] = torch.arange(self.reg_max, dtype=torch.float).view(1, self.reg_max, 1, 1)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs = []
        for level in range(self.nl):
            box = self.box_head[level](features[level])
            batch, _, height, width = box.shape
            if self.reg_max > 1:  # the DFL: a softmax over each side's bins, then their expectation
                box = box.view(batch, 4, self.reg_max, height * width).transpose(1, 2)
                box = self.project(box.softmax(1)).view(batch, 4, height, width)
            scores = self.cls_head[level](features[level]).sigmoid()
            confidence = scores.amax(1, keepdim=True)
            outputs.append(torch.cat([box, confidence, scores], 1))
        return outputs


def camera_model(model: nn.Module) -> nn.Module:
    """The DetectionModel with its Detect head replaced (a copy; the original stays for the comparison)."""
    import copy

    cut = copy.deepcopy(model)
    detect = cut.model[-1]
    if getattr(detect, "end2end", False):  # YOLO26 and the like: the one-to-many branch, decoded with NMS
        detect.end2end = False
    cut.model[-1] = CameraDetect(detect)
    return cut.eval()


def full_model(model: nn.Module) -> nn.Module:
    """The model as ultralytics exports it: the decoded (1, 4 + nc, anchors) output, for a host decode."""
    import copy

    full = copy.deepcopy(model)
    for module in full.modules():
        if hasattr(module, "export"):
            module.export = True
        if hasattr(module, "format"):
            module.format = "onnx"
    return full.eval()
