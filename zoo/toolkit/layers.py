"""Building blocks the generative families share: image-size plans and the pixel ↔ model-input map."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

#: A convolutional generator starts from a base grid this small and doubles it to the image size.
MIN_BASE, MAX_BASE = 3, 7


def doubling_plan(image_size: Sequence[int] | int) -> tuple[int, int, int]:
    """``(base_height, base_width, doublings)`` such that ``base × 2**doublings`` is the image size.

    8 → (4, 1), 16 → (4, 2), 28 → (7, 2), 32 → (4, 3), 64 → (4, 4). A size that no base of 3 to 7
    pixels reaches by doubling at least once (e.g. 5, 10 × 12, 100) raises ValueError.
    """
    height, width = (image_size, image_size) if isinstance(image_size, int) else (int(v) for v in image_size)
    plans = []
    for side in (height, width):
        doublings = 0
        while side % 2 == 0 and side // 2 >= MIN_BASE and (side > MAX_BASE or doublings == 0):
            side //= 2
            doublings += 1
        plans.append((side, doublings))
    (base_h, n_h), (base_w, n_w) = plans
    if n_h != n_w or n_h == 0 or not (MIN_BASE <= base_h <= MAX_BASE and MIN_BASE <= base_w <= MAX_BASE):
        raise ValueError(
            f"image size {height}×{width} cannot be reached by doubling a {MIN_BASE}–{MAX_BASE} pixel base "
            "the same number of times on both sides; use a size like 8, 16, 28, 32 or 64"
        )
    return base_h, base_w, n_h


def check_latent(latent_dim: int) -> int:
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim <= 0:
        raise ValueError(f"latent_dim must be a positive whole number, got {latent_dim!r}")
    return latent_dim


class PixelsToInput(nn.Module):
    """Maps pixels in [0, 1] to the model-input space ``(pixel - mean[c]) / std[c]`` of the data.

    Generators and decoders end with it, so what they produce is what the data loader, the
    discriminator and the quality classifier see.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f"pixel mean {list(mean)} and std {list(std)} must have one positive std per channel")
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels - self.mean) / self.std

    def inverse(self, inputs: torch.Tensor) -> torch.Tensor:
        """Model input back to pixels (not clipped)."""
        return inputs * self.std + self.mean
