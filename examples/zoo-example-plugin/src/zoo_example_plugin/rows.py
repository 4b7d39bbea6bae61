"""The ``digit-rows`` dataset: zoo's digits, each image turned into a sequence of its 8 rows."""

from __future__ import annotations

from dataclasses import replace

from zoo.data import DataSplits, load_dataset


def load_digit_rows(*, seed: int, val_fraction: float) -> DataSplits:
    """N × 8 steps × 8 features, with the digits' split and normalisation (recorded in ``info``)."""
    digits = load_dataset("digits", seed=seed, val_fraction=val_fraction)
    return DataSplits(
        info=replace(digits.info, name="digit-rows"),
        x_train=digits.x_train[:, 0],  # N×1×8×8 → N×8×8: one channel, so rows are steps
        y_train=digits.y_train,
        x_val=digits.x_val[:, 0],
        y_val=digits.y_val,
    )
