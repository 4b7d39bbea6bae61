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

    Model input = ``(raw * scale - mean[c]) / std[c]`` per channel ``c``, after the raw images were
    converted to ``channels`` channels (1 = grayscale, 3 = RGB, in that order) and resized to
    ``height``×``width`` (bilinear). ``source_shape`` is what the files held before that.
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
    source_shape: list[int] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataInfo:
        return cls(**data)


@dataclass(frozen=True)
class RawData:
    """What a dataset loader returns: images as stored (any layout :func:`to_nchw` takes) and labels.

    ``scale`` maps the stored values to [0, 1] (1/255 for 8-bit images).
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    scale: float
    source: str


@dataclass(frozen=True)
class DataOptions:
    """Preprocessing a user asks for: a size to resize to and a channel count to convert to."""

    image_size: tuple[int, int] | None = None
    channels: int | None = None


@dataclass(frozen=True)
class DataSplits:
    """Train and validation arrays, already preprocessed: float32 N×C×H×W images, int64 labels."""

    info: DataInfo
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def prepare(name: str, raw: RawData, *, seed: int, val_fraction: float, options: DataOptions) -> DataSplits:
    """Raw images → N×C×H×W in the asked channels and size → split → normalised splits."""
    from zoo.data.preprocess import check_labels, convert_channels, resize, to_nchw

    images = to_nchw(np.asarray(raw.images), source=raw.source)
    if len(images) < 2:
        raise ZooError(f"{raw.source}: needs at least 2 images to split into training and validation")
    labels = check_labels(np.asarray(raw.labels), len(images), len(raw.class_names), source=raw.source)
    source_shape = [int(d) for d in images.shape[1:]]
    if options.channels is not None:
        images = convert_channels(images, options.channels)
    if options.image_size is not None:
        images = resize(images, options.image_size)
    return split_and_normalise(name, images, labels, seed=seed, val_fraction=val_fraction, scale=raw.scale,
                               class_names=raw.class_names, source_shape=source_shape)


def split_and_normalise(
    name: str, images: np.ndarray, labels: np.ndarray, *, seed: int, val_fraction: float, scale: float,
    class_names: list[str], source_shape: list[int] | None = None,
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
        source_shape=source_shape or [int(d) for d in images.shape[1:]],
    )
    labels = labels.astype(np.int64)
    return DataSplits(info, normalised[train_idx], labels[train_idx], normalised[val_idx], labels[val_idx])


def parse_dataset(name: str) -> tuple[str, str]:
    """``"imagefolder:/data/pets"`` → ``("imagefolder", "/data/pets")``; ``"digits"`` → ``("digits", "")``."""
    base, _, path = name.partition(":")
    return base, path


def load_dataset(
    name: str, *, seed: int = 0, val_fraction: float = 0.2, options: DataOptions | None = None
) -> DataSplits:
    """Load a registered dataset (``NAME`` or ``NAME:PATH``), split deterministically by ``seed``."""
    from zoo.registry import get_dataset_spec

    base, path = parse_dataset(name)
    spec = get_dataset_spec(base)
    if spec.needs_path and not path:
        raise ZooError(f"dataset {base!r} reads local files: use --data {base}:PATH ({spec.summary})")
    if path and not spec.needs_path:
        raise ZooError(f"dataset {base!r} takes no path; use --data {base}")
    loader = resolve(spec.loader, owner=spec.plugin)
    kwargs: dict[str, Any] = {"seed": seed, "val_fraction": val_fraction}
    if path:
        kwargs["path"] = path
    loaded = loader(**kwargs)
    if isinstance(loaded, RawData):
        return prepare(base, loaded, seed=seed, val_fraction=val_fraction, options=options or DataOptions())
    if not isinstance(loaded, DataSplits):
        raise ZooError(f"dataset {base!r} from plugin {spec.plugin!r} returned {type(loaded).__name__}, "
                       "not RawData or DataSplits")
    return loaded


def load_run_data(config: dict[str, Any]) -> DataSplits:
    """The dataset a run was trained on, prepared exactly as it was (same split, size, channels)."""
    options = config.get("data_options") or {}
    size = options.get("image_size")
    return load_dataset(
        config["dataset"], seed=config["seed"],
        options=DataOptions(image_size=tuple(size) if size else None, channels=options.get("channels")),
    )
