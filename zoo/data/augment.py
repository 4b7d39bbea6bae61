"""Light training-time augmentation: random shifts of a few pixels, the same for a given seed and step.

Each batch's shifts come from a generator seeded with (seed, epoch, batch), so a resumed run sees
exactly the augmentation the uninterrupted one saw.
"""

from __future__ import annotations

from typing import Any

#: Largest shift, as a fraction of the image side (at least one pixel).
MAX_SHIFT_FRACTION = 0.125


def random_shift(images: Any, *, seed: int, epoch: int, batch: int) -> Any:
    """Shift each image of an N×C×H×W batch by up to 1/8 of its size, edges replicated."""
    import torch
    import torch.nn.functional as F

    n, c, h, w = images.shape
    pad = max(1, round(min(h, w) * MAX_SHIFT_FRACTION))
    generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 100_003 + batch)
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n), generator=generator).to(images.device)
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, None, :]
    samples = torch.arange(n, device=images.device)[:, None, None, None]
    channels = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[samples, channels, rows, cols]


def augment_batch(batch: Any, *, seed: int, epoch: int, index: int) -> Any:
    """``(images, labels, ...)`` with the images shifted; anything that is not an image batch is left alone."""
    images = batch[0]
    if getattr(images, "ndim", 0) != 4:
        return batch
    return (random_shift(images, seed=seed, epoch=epoch, batch=index), *batch[1:])
