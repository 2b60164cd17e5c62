"""Models the tests build in code. Importable as `models` (tests/ is put on PYTHONPATH) for --model-class."""

import torch
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class TwoInputs(nn.Module):
    """RGB plus a depth map, two outputs."""

    def __init__(self):
        super().__init__()
        self.rgb = nn.Conv2d(3, 4, 3, padding=1)
        self.depth = nn.Conv2d(1, 4, 3, padding=1)

    def forward(self, rgb, depth):
        fused = torch.relu(self.rgb(rgb) + self.depth(depth))
        return fused, fused.mean(dim=(2, 3))


class SignNet(nn.Module):
    """torch.sign exports to ONNX Sign, which Model Optimizer converts but the Myriad plugin cannot run."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return torch.sign(self.conv(x))


class IsNanNet(nn.Module):
    """torch.isnan exports to ONNX IsNaN, which Model Optimizer 2021.4 has no converter for."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return torch.where(torch.isnan(y), torch.zeros_like(y), y)


class NeedsArguments(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3)


class HugeWeights(nn.Module):
    """A weight far beyond FP16's range (65504): the FP16 IR cannot hold it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 6)
        with torch.no_grad():
            self.head.weight[0, 0] = 3.0e6

    def forward(self, x):
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(self.conv(x), 1), 1))
