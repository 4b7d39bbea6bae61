"""DCGAN and class-conditional DCGAN, with layer sizes that follow the image size."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoo.toolkit.layers import PixelsToInput, check_latent, doubling_plan


def dcgan_init(module: nn.Module) -> None:
    """The DCGAN recipe: conv weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
            m.reset_running_stats()


class Generator(nn.Module):
    """noise (and a class label) → image in the data's model-input space.

    Projects to ``features·2^n`` channels on a small base grid, doubles it ``n`` times with
    stride-2 transposed convolutions (halving the channels), then a 3×3 convolution and tanh give
    pixels in [0, 1], which :class:`PixelsToInput` normalises like the data.
    """

    def __init__(self, latent_dim: int, channels: int, image_size: Sequence[int], features: int,
                 num_classes: int, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        base_h, base_w, doublings = doubling_plan(image_size)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        width = features * 2**doublings
        self.base = (width, base_h, base_w)
        self.label_embedding = nn.Embedding(num_classes, latent_dim) if num_classes else None
        self.project = nn.Linear(latent_dim * (2 if num_classes else 1), width * base_h * base_w, bias=False)
        layers: list[nn.Module] = [nn.BatchNorm2d(width), nn.ReLU(True)]
        for _ in range(doublings):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.Conv2d(width, channels, 3, padding=1), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        self.to_input = PixelsToInput(mean, std)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_embedding is not None:
            if labels is None:
                raise ValueError("a conditional generator needs class labels")
            noise = torch.cat([noise, self.label_embedding(labels)], dim=1)
        x = self.project(noise).view(-1, *self.base)
        return self.to_input((self.body(x) + 1) / 2)


class Discriminator(nn.Module):
    """image (and a class label) → one logit, "real"; the generator mirrored.

    A label is given to the discriminator as one extra image channel (a learned map per class).
    """

    def __init__(self, channels: int, image_size: Sequence[int], features: int, num_classes: int) -> None:
        super().__init__()
        base_h, base_w, doublings = doubling_plan(image_size)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.label_map = nn.Embedding(num_classes, self.image_size[0] * self.image_size[1]) if num_classes else None
        width = features
        layers: list[nn.Module] = [nn.Conv2d(channels + (1 if num_classes else 0), width, 3, padding=1),
                                   nn.LeakyReLU(0.2, True)]
        for _ in range(doublings):
            layers += [nn.Conv2d(width, width * 2, 4, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(width * 2), nn.LeakyReLU(0.2, True)]
            width *= 2
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width * base_h * base_w, 1)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_map is not None:
            if labels is None:
                raise ValueError("a conditional discriminator needs class labels")
            images = torch.cat([images, self.label_map(labels).view(-1, 1, *self.image_size)], dim=1)
        return self.head(torch.flatten(self.body(images), 1))


class GAN(nn.Module):
    """The pair the engine trains as one module: ``.generator`` and ``.discriminator``."""

    def __init__(self, in_channels: int = 1, image_size: Sequence[int] = (8, 8), latent_dim: int = 100,
                 features: int = 64, num_classes: int = 0, mean: Sequence[float] = (0.5,),
                 std: Sequence[float] = (0.5,)) -> None:
        super().__init__()
        check_latent(latent_dim)
        if in_channels <= 0 or features <= 0 or num_classes < 0:
            raise ValueError("in_channels and features must be positive, num_classes at least 0")
        if len(mean) != in_channels:
            raise ValueError(f"mean and std need one value per channel ({in_channels})")
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(int(v) for v in image_size)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.generator = Generator(latent_dim, in_channels, size, features, num_classes, mean, std)
        self.discriminator = Discriminator(in_channels, size, features, num_classes)
        dcgan_init(self)


def dcgan(in_channels: int = 1, image_size: Sequence[int] = (8, 8), latent_dim: int = 100, features: int = 64,
          mean: Sequence[float] = (0.5,), std: Sequence[float] = (0.5,)) -> GAN:
    """Unconditional DCGAN."""
    return GAN(in_channels, image_size, latent_dim, features, 0, mean, std)


def conditional_dcgan(in_channels: int = 1, image_size: Sequence[int] = (8, 8), latent_dim: int = 100,
                      features: int = 64, num_classes: int = 10, mean: Sequence[float] = (0.5,),
                      std: Sequence[float] = (0.5,)) -> GAN:
    """Class-conditional DCGAN: the generator and the discriminator both see the class label."""
    if num_classes < 2:
        raise ValueError(f"a conditional GAN needs at least 2 classes, got {num_classes}")
    return GAN(in_channels, image_size, latent_dim, features, num_classes, mean, std)
