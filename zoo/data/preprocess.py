"""Turning images of any layout into the model's input layout: channels, size, dtype."""

from __future__ import annotations

import numpy as np

from zoo.data.readers import DataError


def to_nchw(images: np.ndarray, *, source: str) -> np.ndarray:
    """N×H×W, N×H×W×C or N×C×H×W (C = 1 or 3) as N×C×H×W, contiguous in that order.

    (A transposed view would stay N×H×W×C in memory through every later step: the engine's batches would
    then reach the model channels-last without ``--channels-last``, on other kernels than a user's own loop.)
    """
    if images.ndim == 3:
        return images[:, None, :, :]
    if images.ndim == 4 and images.shape[1] in (1, 3):
        return images
    if images.ndim == 4 and images.shape[3] in (1, 3):
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    raise DataError(f"{source}: images must be N×H×W, N×H×W×C or N×C×H×W with 1 or 3 channels, got {images.shape}")


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """Grayscale ↔ RGB on N×C×H×W arrays (RGB → gray with the ITU-R 601-2 weights Pillow uses)."""
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return np.repeat(images, 3, axis=1)
    if have == 3 and channels == 1:
        weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)[None, :, None, None]
        gray = (images.astype(np.float32) * weights).sum(axis=1, keepdims=True)
        return gray.round().astype(images.dtype) if images.dtype == np.uint8 else gray.astype(images.dtype)
    raise DataError(f"cannot convert {have}-channel images to {channels} channels; use 1 or 3")


def resize(images: np.ndarray, size: tuple[int, int], resample: str = "bilinear") -> np.ndarray:
    """Resize N×C×H×W images to ``size`` (height, width) with Pillow's bilinear (or ``"bicubic"``) filter."""
    from PIL import Image

    height, width = size
    if images.shape[2:] == (height, width):
        return images
    method = Image.BICUBIC if resample == "bicubic" else Image.BILINEAR
    out = np.empty((*images.shape[:2], height, width), dtype=np.float32)
    for i, image in enumerate(images):
        for c, plane in enumerate(image):
            resized = Image.fromarray(plane.astype(np.float32), mode="F").resize((width, height), method)
            out[i, c] = np.asarray(resized)
    return out.round().clip(0, 255).astype(np.uint8) if images.dtype == np.uint8 else out.astype(images.dtype)


def check_labels(labels: np.ndarray, count: int, num_classes: int | None, *, source: str) -> np.ndarray:
    """Labels as int64, one per image, each in [0, num_classes)."""
    if labels.ndim != 1 or len(labels) != count:
        raise DataError(f"{source}: {count} images but {labels.size} labels (shape {labels.shape})")
    whole_floats = (np.issubdtype(labels.dtype, np.floating) and bool(np.all(np.isfinite(labels)))
                    and bool(np.all(labels == np.round(labels))))
    if not np.issubdtype(labels.dtype, np.integer) and not whole_floats:
        raise DataError(f"{source}: labels must be whole numbers, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if count and labels.min() < 0:
        raise DataError(f"{source}: label {int(labels.min())} is negative; labels must be 0 … classes-1")
    if num_classes is not None and count and labels.max() >= num_classes:
        raise DataError(f"{source}: label {int(labels.max())} is outside the {num_classes} classes")
    return labels


def check_pixels(images: np.ndarray, source: str) -> None:
    """N×C×H×W images that hold pixels: no empty (0×0) images, no NaN or infinite values."""
    if images.shape[2] == 0 or images.shape[3] == 0:
        raise DataError(f"{source}: the images are empty ({images.shape[2]}×{images.shape[3]}); give real images")
    if np.issubdtype(images.dtype, np.floating) and not np.isfinite(images).all():
        raise DataError(f"{source} holds non-finite pixels (NaN or infinity); fix or regenerate the data")
