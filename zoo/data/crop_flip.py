"""ImageNet-style training augmentation on a batch: random-resized crop and horizontal flip.

The crop of each image (area 8–100 % of the image, aspect ratio 3/4–4/3, anywhere inside it) and its
flip (probability 1/2) are drawn from a generator seeded with (seed, epoch, batch), so a resumed run
sees exactly what the uninterrupted one saw. The crop is resized back to the batch's size with one
bilinear ``grid_sample`` for the whole batch, on the batch's device.
"""

from __future__ import annotations

import math
from typing import Any

SCALE = (0.08, 1.0)
RATIO = (3 / 4, 4 / 3)


def random_resized_crop_flip(images: Any, *, seed: int, epoch: int, batch: int) -> Any:
    """Each image of an N×C×H×W batch cropped at random, resized back to H×W, flipped half the time."""
    import torch
    import torch.nn.functional as F

    n = images.shape[0]
    generator = torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * 100_003 + batch) * 7 + 1)
    draws = torch.rand((5, n), generator=generator, dtype=torch.float64)
    area = SCALE[0] + (SCALE[1] - SCALE[0]) * draws[0]
    log_ratio = math.log(RATIO[0]) + (math.log(RATIO[1]) - math.log(RATIO[0])) * draws[1]
    ratio = torch.exp(log_ratio)
    width = torch.sqrt(area * ratio).clamp(max=1.0)  # fractions of the image side
    height = torch.sqrt(area / ratio).clamp(max=1.0)
    # centre in [-1, 1] coordinates, so that the crop stays inside the image
    cx = (1 - width) * (2 * draws[2] - 1)
    cy = (1 - height) * (2 * draws[3] - 1)
    flip = torch.where(draws[4] < 0.5, -1.0, 1.0)
    theta = torch.zeros((n, 2, 3), dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 2] = width * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = height, cy
    theta = theta.to(device=images.device, dtype=images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def crop_flip_batch(batch: Any, *, seed: int, epoch: int, index: int) -> Any:
    """``(images, labels, ...)`` with the images cropped and flipped; a batch of non-images is left alone."""
    images = batch[0]
    if getattr(images, "ndim", 0) != 4:
        return batch
    return (random_resized_crop_flip(images, seed=seed, epoch=epoch, batch=index), *batch[1:])
