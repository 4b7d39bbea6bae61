"""Datasets as arrays: the split, the shape and the preprocessing, recorded so they travel with a run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.specs import resolve


@dataclass(frozen=True)
class DataInfo:
    """What a model needs to know about the data, and how raw pixels become model input.

    Model input = ``(raw * scale - mean[c]) / std[c]`` per channel ``c``.
    """

    name: str
    channels: int
    height: int
    width: int
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    scale: float = 1.0
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataInfo:
        return cls(**data)


@dataclass(frozen=True)
class DataSplits:
    """Train and validation arrays, already preprocessed: float32 N×C×H×W images, int64 labels."""

    info: DataInfo
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def split_and_normalise(
    name: str, images: np.ndarray, labels: np.ndarray, *, seed: int, val_fraction: float, scale: float,
    class_names: list[str],
) -> DataSplits:
    """Deterministic split by ``seed``, then per-channel normalisation with training-split statistics."""
    if not 0.0 < val_fraction < 1.0:
        raise ZooError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    if images.ndim != 4:
        raise ZooError(f"dataset {name!r}: images must be N×C×H×W, got shape {images.shape}")
    order = np.random.default_rng(seed).permutation(len(images))
    n_val = max(1, round(len(images) * val_fraction))
    val_idx, train_idx = order[:n_val], order[n_val:]
    scaled = images.astype(np.float32) * np.float32(scale)
    mean = scaled[train_idx].mean(axis=(0, 2, 3))
    std = scaled[train_idx].std(axis=(0, 2, 3)) + 1e-8
    normalised = ((scaled - mean[None, :, None, None]) / std[None, :, None, None]).astype(np.float32)
    info = DataInfo(
        name=name,
        channels=images.shape[1],
        height=images.shape[2],
        width=images.shape[3],
        num_classes=len(class_names),
        class_names=class_names,
        scale=float(scale),
        mean=[float(m) for m in mean],
        std=[float(s) for s in std],
    )
    labels = labels.astype(np.int64)
    return DataSplits(info, normalised[train_idx], labels[train_idx], normalised[val_idx], labels[val_idx])


def load_dataset(name: str, *, seed: int = 0, val_fraction: float = 0.2) -> DataSplits:
    """Load a registered dataset by name, split deterministically by ``seed``."""
    from zoo.registry import get_dataset_spec

    spec = get_dataset_spec(name)
    loader = resolve(spec.loader, owner=spec.plugin)
    splits = loader(seed=seed, val_fraction=val_fraction)
    if not isinstance(splits, DataSplits):
        raise ZooError(f"dataset {name!r} from plugin {spec.plugin!r} returned {type(splits).__name__}, not DataSplits")
    return splits
