"""Loads scikit-learn's bundled digits: 8×8 images with pixel values 0–16.

The arrays are cached in ``$ZOO_CACHE_DIR`` (see :mod:`zoo.cache`), keyed by the installed
scikit-learn version, so a run does not import scikit-learn (about a second) just to read them.
"""

from __future__ import annotations

from importlib import metadata

import numpy as np

from zoo.cache import cached_arrays
from zoo.data import RawData

CACHE_NAME = "digits"


def load_digits(*, seed: int, val_fraction: float) -> RawData:
    arrays = cached_arrays(CACHE_NAME, f"scikit-learn {sklearn_version()}", _from_sklearn)
    return RawData(
        images=arrays["images"][:, None, :, :],  # N×1×8×8
        labels=arrays["labels"],
        class_names=[str(int(c)) for c in arrays["class_names"]],
        scale=1.0 / 16.0,
        source="scikit-learn digits",
        pixel_max=16.0,  # 0–16 grey levels: 16 is white, i.e. 255 in an 8-bit image
    )


def sklearn_version() -> str:
    """The installed scikit-learn's version, read from its metadata (without importing it)."""
    try:
        return metadata.version("scikit-learn")
    except metadata.PackageNotFoundError:
        return "not installed"


def _from_sklearn() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    return {"images": np.asarray(bunch.images), "labels": np.asarray(bunch.target),
            "class_names": np.asarray(bunch.target_names)}
