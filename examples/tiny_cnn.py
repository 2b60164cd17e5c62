"""The bundled example: a small image classifier, the shape of what OAK users convert.

`python examples/tiny_cnn.py` rewrites examples/tiny_cnn.pt (TorchScript, fixed seed).
"""

import torch
from torch import nn


class TinyCNN(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(64, classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


if __name__ == "__main__":
    from pathlib import Path

    torch.manual_seed(0)
    model = TinyCNN().eval()
    traced = torch.jit.trace(model, torch.zeros(1, 3, 240, 320))
    torch.jit.save(traced, str(Path(__file__).with_name("tiny_cnn.pt")))
