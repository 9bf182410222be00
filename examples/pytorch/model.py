"""A small convolutional network for scikit-learn's 8x8 digits, shared by training and scoring."""

from __future__ import annotations

import torch
from torch import nn


class DigitsCNN(nn.Module):
    """Two 3x3 convolutions and a linear layer: 8x8 grey images to 10 classes."""

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels * 2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
        )
        self.classify = nn.Linear(channels * 2 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x).flatten(1))


def as_images(rows: torch.Tensor) -> torch.Tensor:
    """Rows of 64 pixel values (0-16, as the data set has them) as 1x8x8 images in 0-1."""
    return (rows / 16.0).reshape(-1, 1, 8, 8)


def device() -> torch.device:
    """A GPU when one is visible to this process, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
