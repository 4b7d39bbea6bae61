"""Image grids as PNG files (numpy and Pillow only: ``zoo sample`` uses this without torch)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: Tiles are enlarged (nearest neighbour) to at least this many pixels a side: 8×8 digits stay visible.
MIN_TILE = 32


def to_pixels(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Model-input images (N×C×H×W, ``(pixel - mean) / std``) back to pixels in [0, 1]."""
    m = np.asarray(mean, dtype=np.float32)[None, :, None, None]
    s = np.asarray(std, dtype=np.float32)[None, :, None, None]
    return np.clip(images.astype(np.float32) * s + m, 0.0, 1.0)


def grid(pixels: np.ndarray, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """Tile N×C×H×W pixels in [0, 1] into one H'×W'(×3) uint8 picture, a row at a time."""
    if pixels.ndim != 4 or pixels.shape[1] not in (1, 3):
        raise ValueError(f"a grid needs N×C×H×W images with 1 or 3 channels, got shape {pixels.shape}")
    n, channels, height, width = pixels.shape
    zoom = max(1, math.ceil(MIN_TILE / max(height, width)))
    tiles = np.repeat(np.repeat(pixels, zoom, axis=2), zoom, axis=3)
    height, width = height * zoom, width * zoom
    columns = columns or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / columns))
    canvas = np.ones((channels, rows * (height + padding) + padding, columns * (width + padding) + padding),
                     dtype=np.float32)
    for i, tile in enumerate(tiles):
        top = padding + (i // columns) * (height + padding)
        left = padding + (i % columns) * (width + padding)
        canvas[:, top:top + height, left:left + width] = tile
    picture = np.round(canvas * 255).astype(np.uint8)
    return picture[0] if channels == 1 else picture.transpose(1, 2, 0)


def save_grid(pixels: np.ndarray, path: str | Path, columns: int | None = None) -> Path:
    """Write a grid of N×C×H×W pixels in [0, 1] to ``path`` as PNG, atomically; returns the path."""
    from PIL import Image

    from zoo.atomic import atomic_write

    path = Path(path)
    image = Image.fromarray(grid(pixels, columns))
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
    return path
