"""CNN classifier architectures."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ArticleCNN(nn.Module):
    """The article's CNN, made correct for any channel count, image size and class count.

    Two 3×3 convolutions (32 then 64 channels), each followed by ReLU and 2×2 max-pooling, then
    fc 128 and fc ``num_classes``. The flatten size is derived from ``image_size`` instead of the
    article's hard-coded ``64 * 7 * 7``, which did not fit its own 32×32 input.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: Sequence[int] = (8, 8)) -> None:
        super().__init__()
        height, width = _size(image_size)
        if height < 4 or width < 4:
            raise ValueError(f"image size {height}×{width} is too small: two 2×2 poolings need at least 4×4")
        if in_channels <= 0 or num_classes < 2:
            raise ValueError("in_channels must be positive and num_classes at least 2")
        self.conv1 = nn.Conv2d(in_channels, 32, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(64 * (height // 4) * (width // 4), 128)
        self.fc2 = nn.Linear(128, num_classes)

    def gradcam_layer(self) -> nn.Module:
        """Where ``zoo explain --method gradcam`` reads feature maps: the second convolution."""
        return self.conv2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))


class BasicBlock(nn.Module):
    """Two 3×3 conv + batch-norm layers with an identity (or 1×1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """A small ResNet: a 3×3 stem, three stages (width, 2×width, 4×width), global average pooling.

    Stages after the first halve the resolution; global pooling makes it work for any image size.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16, blocks_per_stage: int = 1) -> None:
        super().__init__()
        if width <= 0 or blocks_per_stage <= 0:
            raise ValueError("width and blocks_per_stage must be positive")
        if in_channels <= 0 or num_classes < 2:
            raise ValueError("in_channels must be positive and num_classes at least 2")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU())
        layers: list[nn.Module] = []
        cin = width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for block in range(blocks_per_stage):
                layers.append(BasicBlock(cin, cout, stride=2 if stage > 0 and block == 0 else 1))
                cin = cout
        self.stages = nn.Sequential(*layers)
        self.head = nn.Linear(cin, num_classes)

    def gradcam_layer(self) -> nn.Module:
        """Where ``zoo explain --method gradcam`` reads feature maps: the last residual block."""
        return self.stages[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _size(image_size: Sequence[int] | int) -> tuple[int, int]:
    if isinstance(image_size, int):
        return image_size, image_size
    height, width = (int(v) for v in image_size)
    return height, width
