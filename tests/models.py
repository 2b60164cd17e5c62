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


class AtanNet(nn.Module):
    """torch.atan exports to ONNX Atan, which the Myriad compiler cannot run (no rewrite covers it; the
    Sin of an unbounded value that stood here converts since #28)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return torch.atan(self.conv(x))


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


class _Fp16RangeNet(nn.Module):
    """conv (1x1, every weight `gain`) -> ReLU -> conv (every weight `shrink`) -> mean -> head.
    On camera-like U8 input (0..255, three channels) the first conv peaks near 765 * gain."""

    def __init__(self, gain: float, shrink: float):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 1))
        self.head = nn.Linear(4, 5)
        with torch.no_grad():
            self.features[0].weight.fill_(gain)
            self.features[0].bias.zero_()
            self.features[2].weight.fill_(shrink)
            self.features[2].bias.zero_()
            self.head.weight.copy_(torch.linspace(-0.1, 0.2, 20).reshape(5, 4) * torch.tensor([1.0, 0.5, 2.0, 1.5]))
            self.head.bias.zero_()

    def forward(self, x):
        x = self.features(x)
        return self.head(x.mean(dim=(2, 3)))


class MiddleOverflow(_Fp16RangeNet):
    """FP16 overflows only in the middle: features.0 reaches ~3e6 (FP16's maximum is 65504), the
    next conv scales it back to ~1200 and the output stays in the hundreds, so FP32 sees nothing."""

    def __init__(self):
        super().__init__(gain=4000.0, shrink=1e-4)


class MiddleTame(_Fp16RangeNet):
    """MiddleOverflow's twin with the same output: features.0 peaks near 3000, far from 65504."""

    def __init__(self):
        super().__init__(gain=4.0, shrink=0.1)


class OutputOverflow(nn.Module):
    """The output itself leaves FP16's range (~3e6), although FP32 computes it exactly."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([4000.0, 3000.0]).reshape(2, 1, 1, 1).expand(2, 3, 1, 1))
            self.conv.bias.zero_()

    def forward(self, x):
        return self.conv(x)


class StereoWithState(nn.Module):
    """Two camera images (U8 pixels) and a recurrent state (floats): a 4-channel map and the next state.
    Returns a dict, so the outputs are named `disparity` and `state_out`."""

    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Conv2d(16, 4, 1)
        self.update = nn.Linear(16 + 4, 16)

    def forward(self, left, right, state):
        left, right = torch.relu(self.features(left / 255)), torch.relu(self.features(right / 255))
        disparity = self.head(torch.cat([left, right], 1))
        pooled = disparity.mean(dim=(2, 3))
        return {"disparity": disparity, "state_out": torch.tanh(self.update(torch.cat([state, pooled], 1)))}
