"""Image files read on access: a dataset of any size in bounded memory.

:class:`LazyImages` behaves like a read-only N×C×H×W float32 array (``len``, ``shape``, indexing by
int, slice or index list), so families and verification use it like the in-memory arrays; the engine
reads it through a DataLoader with worker processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from zoo.data.crop import EvalCrop, resize_crop
from zoo.data.preprocess import resize
from zoo.data.readers import load_image


class LazyImages:
    """Files → ``(pixel × scale − mean) / std`` after conversion to ``mode`` and resizing to ``size`` (squashed, or
    through the evaluation transform ``crop``: :mod:`zoo.data.crop`)."""

    dtype = np.dtype(np.float32)

    def __init__(self, files: list[Path], *, mode: str, size: tuple[int, int], scale: float,
                 mean: list[float], std: list[float], crop: EvalCrop | None = None) -> None:
        self.files = list(files)
        self.crop = crop
        self.mode = mode
        self.size = size
        self.scale = np.float32(scale)
        self.mean = np.asarray(mean, dtype=np.float32)[:, None, None]
        self.std = np.asarray(std, dtype=np.float32)[:, None, None]

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.files), self.channels, *self.size)

    @property
    def ndim(self) -> int:
        return 4

    def __len__(self) -> int:
        return len(self.files)

    def pixels(self, index: int) -> np.ndarray:
        """Image ``index`` converted and resized, scaled to [0, 1], not yet normalised (C×H×W float32)."""
        array = load_image(self.files[index], mode=self.mode).transpose(2, 0, 1)[None]
        sized = resize(array, self.size) if self.crop is None else resize_crop(array, self.size, self.crop)
        return sized[0].astype(np.float32) * self.scale

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return ((self.pixels(int(key)) - self.mean) / self.std).astype(np.float32)
        indices = range(len(self))[key] if isinstance(key, slice) else np.asarray(key).reshape(-1).tolist()
        if len(indices) == 0:
            return np.empty((0, *self.shape[1:]), dtype=np.float32)
        return np.stack([self[int(i)] for i in indices])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = self[:]
        return array if dtype is None else array.astype(dtype)

    def subset(self, indices: np.ndarray) -> LazyImages:
        return LazyImages([self.files[i] for i in indices], mode=self.mode, size=self.size,
                          scale=float(self.scale), mean=self.mean.ravel().tolist(), std=self.std.ravel().tolist(),
                          crop=self.crop)


def channel_statistics(images: LazyImages, indices: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the (scaled) pixels of ``indices``, in one streaming pass."""
    total = np.zeros(images.channels)
    total_sq = np.zeros(images.channels)
    count = 0
    for i in indices:
        pixels = images.pixels(int(i)).astype(np.float64)
        total += pixels.sum(axis=(1, 2))
        total_sq += (pixels**2).sum(axis=(1, 2))
        count += pixels.shape[1] * pixels.shape[2]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0)) + 1e-8
    return mean.tolist(), std.tolist()
