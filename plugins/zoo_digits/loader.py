"""Loads scikit-learn's bundled digits: pixel values 0–16, scaled to [0, 1] then normalised."""

from __future__ import annotations

from zoo.data import DataSplits, split_and_normalise


def load_digits(*, seed: int, val_fraction: float) -> DataSplits:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = bunch.images[:, None, :, :]  # N×1×8×8
    return split_and_normalise(
        "digits",
        images,
        bunch.target,
        seed=seed,
        val_fraction=val_fraction,
        scale=1.0 / 16.0,
        class_names=[str(int(c)) for c in bunch.target_names],
    )
