"""Loads scikit-learn's bundled digits: 8×8 images with pixel values 0–16."""

from __future__ import annotations

from zoo.data import RawData


def load_digits(*, seed: int, val_fraction: float) -> RawData:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    return RawData(
        images=bunch.images[:, None, :, :],  # N×1×8×8
        labels=bunch.target,
        class_names=[str(int(c)) for c in bunch.target_names],
        scale=1.0 / 16.0,
        source="scikit-learn digits",
        pixel_max=16.0,  # 0–16 grey levels: 16 is white, i.e. 255 in an 8-bit image
    )
