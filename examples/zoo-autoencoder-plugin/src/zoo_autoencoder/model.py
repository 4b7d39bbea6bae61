"""The model: an MLP encoder to a tanh-bounded latent code, an MLP decoder back to model input."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Decoder(nn.Module):
    """Latent code → pixels in [0, 1] → model input, ``(pixel - mean[c]) / std[c]`` (what the data loader gives)."""

    def __init__(self, latent_dim: int, hidden: int, shape: tuple[int, int, int], mean: Sequence[float],
                 std: Sequence[float]) -> None:
        super().__init__()
        self.shape = shape
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(),
                                 nn.Linear(hidden, shape[0] * shape[1] * shape[2]))
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        pixels = torch.sigmoid(self.net(latent)).view(-1, *self.shape)
        return (pixels - self.mean) / self.std


class DenoisingAutoencoder(nn.Module):
    """``encoder`` (image → latent in [-1, 1]^latent_dim) and ``decoder`` (latent → image)."""

    def __init__(self, in_channels: int = 1, image_size: Sequence[int] = (8, 8), hidden: int = 64,
                 latent_dim: int = 8, mean: Sequence[float] = (0.0,), std: Sequence[float] = (1.0,)) -> None:
        super().__init__()
        shape = (in_channels, int(image_size[0]), int(image_size[1]))
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(shape[0] * shape[1] * shape[2], hidden), nn.ReLU(),
                                     nn.Linear(hidden, latent_dim), nn.Tanh())
        self.decoder = Decoder(latent_dim, hidden, shape, mean, std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(images))
