"""ResNet-18/34/50 with torchvision's architecture and parameter names (written here, not imported).

The layout follows ``torchvision.models.resnet`` (ResNet v1.5: the stride of a bottleneck sits on its 3×3
convolution), so a torchvision state dict loads as is. ``stem="small"`` swaps the 7×7/2 convolution and the
max-pooling for one 3×3/1 convolution (the CIFAR recipe): same names, a smaller ``conv1.weight``.
``norm="group"`` swaps every batch norm for a group norm (32 groups, same parameter names, no running statistics):
what DP-SGD can train, since it normalises each sample on its own (the family chooses it under ``--dp-epsilon``;
docs/privacy.md). That variant's ReLUs work out of place: Opacus' per-sample hooks forbid changing their outputs.
"""

from __future__ import annotations

import torch
from torch import nn

STEMS = ("standard", "small")
NORMS = ("batch", "group")
#: Groups of a group norm (every ResNet width, 64 to 2048, is a multiple of it).
GROUPS = 32


def _norm(kind: str, channels: int) -> nn.Module:
    """The normalisation layer ``norm`` names: batch norm (torchvision's) or group norm."""
    return nn.GroupNorm(GROUPS, channels) if kind == "group" else nn.BatchNorm2d(channels)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with batch norm and a shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 norm: str = "batch") -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = _norm(norm, planes)
        self.relu = nn.ReLU(inplace=norm != "group")
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = _norm(norm, planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (carrying the stride), 1×1 expand ×4, with a shortcut (ResNet-50)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 norm: str = "batch") -> None:
        super().__init__()
        self.conv1 = _conv1x1(cin, planes)
        self.bn1 = _norm(norm, planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = _norm(norm, planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = _norm(norm, planes * self.expansion)
        self.relu = nn.ReLU(inplace=norm != "group")
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


_BLOCKS: dict[str, type[nn.Module]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    """torchvision's ResNet: stem, four stages (64, 128, 256, 512 planes), global average pooling, ``fc``."""

    #: What ``--init`` reads, for its error line.
    init_layouts = "torchvision's layout (torchvision.models.resnet*'s state_dict), with the same stem"

    def __init__(self, layers: list[int], block: str = "basic", in_channels: int = 3, num_classes: int = 1000,
                 stem: str = "standard", norm: str = "batch") -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
        self.norm = norm
        if block not in _BLOCKS:
            raise ValueError(f"block must be one of {', '.join(_BLOCKS)}, got {block!r}")
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {', '.join(STEMS)}, got {stem!r}")
        if len(layers) != 4 or any(int(n) <= 0 for n in layers):
            raise ValueError(f"layers must be four positive block counts, got {layers!r}")
        if in_channels <= 0 or num_classes < 2:
            raise ValueError("in_channels must be positive and num_classes at least 2")
        block_type = _BLOCKS[block]
        self.inplanes = 64
        if stem == "small":
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = _norm(norm, 64)
        self.relu = nn.ReLU(inplace=norm != "group")
        self.layer1 = self._make_layer(block_type, 64, int(layers[0]))
        self.layer2 = self._make_layer(block_type, 128, int(layers[1]), stride=2)
        self.layer3 = self._make_layer(block_type, 256, int(layers[2]), stride=2)
        self.layer4 = self._make_layer(block_type, 512, int(layers[3]), stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block_type.expansion, num_classes)  # type: ignore[attr-defined]
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d | nn.GroupNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _make_layer(self, block: type[nn.Module], planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        expansion = block.expansion  # type: ignore[attr-defined]
        downsample = None
        if stride != 1 or self.inplanes != planes * expansion:
            downsample = nn.Sequential(_conv1x1(self.inplanes, planes * expansion, stride),
                                       _norm(self.norm, planes * expansion))
        layers = [block(self.inplanes, planes, stride, downsample, self.norm)]
        self.inplanes = planes * expansion
        layers += [block(self.inplanes, planes, norm=self.norm) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def gradcam_layer(self) -> nn.Module:
        """Where ``zoo explain --method gradcam`` reads feature maps: the last stage (``layer4``)."""
        return self.layer4

    def lr_layer_groups(self) -> list[tuple[str, ...]]:
        """Layers from input to output for ``--hp layer_decay``: the stem, the four stages, the head."""
        return [("conv1", "bn1"), ("layer1",), ("layer2",), ("layer3",), ("layer4",), ("fc",)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(in_channels: int = 3, num_classes: int = 1000, stem: str = "standard",
             norm: str = "batch") -> ResNet:
    """ResNet-18 (torchvision layout): 11,689,512 parameters at 1000 classes."""
    return ResNet([2, 2, 2, 2], "basic", in_channels, num_classes, stem, norm)


def resnet34(in_channels: int = 3, num_classes: int = 1000, stem: str = "standard",
             norm: str = "batch") -> ResNet:
    """ResNet-34 (torchvision layout): 21,797,672 parameters at 1000 classes."""
    return ResNet([3, 4, 6, 3], "basic", in_channels, num_classes, stem, norm)


def resnet50(in_channels: int = 3, num_classes: int = 1000, stem: str = "standard",
             norm: str = "batch") -> ResNet:
    """ResNet-50 (torchvision layout, v1.5): 25,557,032 parameters at 1000 classes."""
    return ResNet([3, 4, 6, 3], "bottleneck", in_channels, num_classes, stem, norm)
