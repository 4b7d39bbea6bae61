"""Readers for dataset files users already have: IDX (MNIST layout), CIFAR-10 python batches, npz, image files.

Every reader either returns well-formed arrays or raises :class:`DataError` naming the file and what is
wrong with it; nothing here trusts its input (the tests feed these readers random bytes).
"""

from __future__ import annotations

import gzip
import io
import math
import pickle
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError


class DataError(ZooError):
    """A data file is missing, unreadable or malformed."""


# IDX type codes (the MNIST file format): code -> numpy big-endian dtype.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    """File contents, gunzipped when the name ends in .gz."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"{path} does not exist") from exc
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc.strerror or exc})") from exc
    if path.suffix == ".gz":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path} is not a valid gzip file ({exc}); download it again") from exc
    return raw


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (raw or ``.gz``) as a numpy array of its declared shape."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    code, ndim = data[2], data[3]
    if code not in _IDX_TYPES or ndim == 0:
        raise DataError(f"{path} is not an IDX file (unknown type code {code:#x} or no dimensions)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated (its header is incomplete)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[code])
    expected = header + math.prod(shape) * dtype.itemsize  # Python ints: a huge header cannot overflow
    if len(data) != expected:
        raise DataError(f"{path} is truncated or has trailing bytes ({len(data)} bytes, header says {expected})")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def idx_pixels(images: np.ndarray, path: Path) -> tuple[np.ndarray, float]:
    """IDX images as pixels and their scale to [0, 1]: whole numbers 0-255 as uint8 (scale 1/255),
    floats as they are (scale 1, they must be finite); anything else is refused, naming the file."""
    if images.dtype == np.uint8:
        return images, 1 / 255
    if np.issubdtype(images.dtype, np.integer):
        if images.size and (images.min() < 0 or images.max() > 255):
            raise DataError(f"{path}: integer pixels must lie in 0-255, found {images.min()}..{images.max()}")
        return images.astype(np.uint8), 1 / 255
    if not np.isfinite(images).all():
        raise DataError(f"{path} holds non-finite pixels (NaN or infinity); fix or regenerate the file")
    return images.astype(np.float32), 1.0


class _ArraysOnly(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a CIFAR batch needs nothing else, and nothing
    else gets to run code."""

    _ALLOWED: frozenset[tuple[str, str]] = frozenset({
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
    })

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python-format batch: images N×3×32×32 uint8 and labels N (int64)."""
    path = Path(path)
    data = _read_bytes(path)
    try:
        batch = _ArraysOnly(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # any unpickling failure means "not a CIFAR batch"
        raise DataError(f"{path} is not a CIFAR-10 python batch ({type(exc).__name__}: {exc})") from exc
    if not isinstance(batch, dict):
        raise DataError(f"{path} is not a CIFAR-10 python batch (no dictionary inside)")
    images, labels = batch.get(b"data", batch.get("data")), batch.get(b"labels", batch.get("labels"))
    if not isinstance(images, np.ndarray) or labels is None:
        raise DataError(f"{path} is not a CIFAR-10 python batch (needs 'data' and 'labels')")
    if images.ndim != 2 or images.shape[1] != 3 * 32 * 32 or images.dtype != np.uint8:
        raise DataError(f"{path}: 'data' must be N×3072 uint8, got {images.shape} {images.dtype}")
    try:
        label_array = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"{path}: 'labels' are not integers") from exc
    if label_array.shape != (len(images),):
        raise DataError(f"{path}: {len(images)} images but {label_array.size} labels")
    return images.reshape(-1, 3, 32, 32), label_array


def read_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Images, labels and (if stored) class names from an ``.npz`` (keys ``images``/``labels`` or
    ``x``/``y``, optional ``class_names``); object arrays are refused (no pickle)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist; give an .npz file with 'images' and 'labels' arrays")
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            image_key = next((k for k in ("images", "x", "x_train") if k in keys), None)
            label_key = next((k for k in ("labels", "y", "y_train") if k in keys), None)
            if image_key is None or label_key is None:
                raise DataError(
                    f"{path} has arrays {sorted(keys)}; it needs 'images' and 'labels' (or 'x' and 'y')"
                )
            images, labels = archive[image_key], archive[label_key]
            names = [str(n) for n in archive["class_names"].tolist()] if "class_names" in keys else None
    except DataError:
        raise
    except Exception as exc:  # zipfile, pickle-refusal and format errors all mean "not a usable npz"
        raise DataError(f"{path} is not a readable .npz file ({type(exc).__name__}: {exc})") from exc
    return images, labels, names


def load_image(path: Path, *, mode: str) -> np.ndarray:
    """One PNG/JPEG as an H×W×C uint8 array in ``mode`` ("L" grayscale or "RGB"), by zoo's one decoding rule
    (:mod:`zoo.data.decoding`: 16-bit to its high byte, alpha over black, palette/CMYK to RGB, 601-2 luma)."""
    from PIL import Image, UnidentifiedImageError

    from zoo.data.decoding import decode

    try:
        with Image.open(path) as image:
            image.load()
            pixels = decode(image, 1 if mode == "L" else 3)
    except FileNotFoundError as exc:
        raise DataError(f"{path} does not exist") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path} is not a readable image ({exc}); remove or replace it") from exc
    if pixels.size == 0:
        raise DataError(f"{path} is an empty ({pixels.shape[1]}×{pixels.shape[0]}) image; remove or replace it")
    return pixels
