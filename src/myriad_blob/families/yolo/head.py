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

import functools


def output_names(levels: int, task: str = "detect") -> list[str]:
    """What depthai's parser finds and sorts into stride order (1 < 2 < 3): `_yolo` for the boxes,
    `_masks` and `proto` for segmentation, `kpt_output` for keypoints (Luxonis's converters' names)."""
    if task == "detect":
        return [f"output{i + 1}_yolov6r2" for i in range(levels)]
    boxes = [f"output{i + 1}_yolov8" for i in range(levels)]
    if task == "segment":
        return boxes + [f"output{i + 1}_masks" for i in range(levels)] + ["protos_output"]
    if task == "pose":
        return boxes + [f"kpt_output{i + 1}" for i in range(levels)]
    raise ValueError(task)


@functools.cache
def _head_classes() -> dict:
    """The camera heads by task. nn.Module subclasses need torch when they are defined: built on first
    use, so importing the family (every conversion does) does not import torch."""
    import torch
    from torch import nn

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

    class CameraSegment(CameraDetect):
        """Segment: the boxes as Detect, then per scale the mask coefficients (nm × h × w), then the
        prototypes (nm × H/4 × W/4); the camera multiplies the two for each kept box."""

        def __init__(self, segment: nn.Module):
            super().__init__(segment)
            self.mask_head, self.proto = segment.cv4, segment.proto

        def forward(self, features):
            boxes = super().forward(features)
            masks = [self.mask_head[level](features[level]) for level in range(self.nl)]
            return boxes + masks + [self.proto(features[0])]

    class CameraPose(CameraDetect):
        """Pose: the boxes as Detect, then per scale the keypoints, decoded to pixels as ultralytics
        decodes them ((2·k + cell) × stride), visibility left as a logit (the camera applies the
        sigmoid): 1 × (3·keypoints) × (h·w)."""

        def __init__(self, pose: nn.Module):
            super().__init__(pose)
            self.kpt_head, self.kpt_shape = pose.cv4, tuple(pose.kpt_shape)

        def forward(self, features):
            boxes = super().forward(features)
            keypoints = []
            for level in range(self.nl):
                raw = self.kpt_head[level](features[level])
                batch, _, height, width = raw.shape
                stride = float(self.stride[level])
                ys, xs = torch.meshgrid(
                    torch.arange(height, dtype=raw.dtype), torch.arange(width, dtype=raw.dtype), indexing="ij"
                )
                cells = torch.stack((xs, ys)).view(1, 1, 2, height * width)
                points = raw.view(batch, self.kpt_shape[0], self.kpt_shape[1], height * width)
                xy = (points[:, :, :2] * 2.0 + cells) * stride
                keypoints.append(torch.cat((xy, points[:, :, 2:3]), 2).view(batch, -1, height * width))
            return boxes + keypoints

    return {"detect": CameraDetect, "segment": CameraSegment, "pose": CameraPose}


def camera_head(head, task: str):
    """ultralytics' head (torch nn.Module) -> the camera's head for task."""
    return _head_classes()[task](head)


def camera_model(model, task: str = "detect"):
    """The DetectionModel with its Detect head replaced (a copy; the original stays for the comparison)."""
    import copy

    cut = copy.deepcopy(model)
    detect = cut.model[-1]
    if getattr(detect, "end2end", False):  # YOLO26 and the like: the one-to-many branch, decoded with NMS
        detect.end2end = False
    cut.model[-1] = camera_head(detect, task)
    return cut.eval()


def full_model(model):
    """The model as ultralytics exports it: the decoded (1, 4 + nc, anchors) output, for a host decode."""
    import copy

    full = copy.deepcopy(model)
    for module in full.modules():
        if hasattr(module, "export"):
            module.export = True
        if hasattr(module, "format"):
            module.format = "onnx"
    return full.eval()
