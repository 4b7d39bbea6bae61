"""Datasets as arrays: the split, the shape and the preprocessing, recorded so they travel with a run."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.specs import resolve


@dataclass(frozen=True)
class TextInfo:
    """How text became token ids (``DataInfo.kind == "text"``): filled in by the family that tokenised it.

    ``tokenizer`` is ``"bytes"`` or ``"bpe:N"``; ``tokenizer_json`` the ``tokenizers``-library JSON (so a run
    and its bundle carry the exact tokenizer); ``context`` the window length; ``bytes_per_token`` the
    validation text's UTF-8 bytes per token (bits per byte = nats per token / ln 2 / bytes per token).
    """

    tokenizer: str = ""
    vocab_size: int = 0
    context: int = 0
    tokenizer_json: str = ""
    bytes_per_token: float = 1.0
    train_tokens: int = 0
    val_tokens: int = 0


@dataclass(frozen=True)
class DataInfo:
    """What a model needs to know about the data, and how raw pixels become model input.

    Model input = ``(raw * scale - mean[c]) / std[c]`` per channel ``c``, after the raw images were
    converted to ``channels`` channels (1 = grayscale, 3 = RGB, in that order) and resized to
    ``height``×``width`` (bilinear). ``source_shape`` is what the files held before that.
    ``pixel_max`` is the raw value that stands for white (255 in an 8-bit image): 16 for the digits;
    ``None`` (runs from before it was recorded) means ``1 / scale`` (see :mod:`zoo.data.units`).
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
    #: ``"image"``, or ``"text"``: then ``x_*`` hold UTF-8 bytes (uint8, one row) until a family tokenises
    #: them into token windows and records how in ``text``.
    kind: str = "image"
    text: TextInfo | None = None
    pixel_max: float | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataInfo:
        text = data.get("text")
        return cls(**{**data, "text": TextInfo(**text) if isinstance(text, dict) else text})


@dataclass(frozen=True)
class RawData:
    """What a dataset loader returns: images as stored (any layout :func:`to_nchw` takes) and labels.

    ``scale`` maps the stored values to [0, 1] (1/255 for 8-bit images); ``pixel_max`` is the stored
    value that means white, 255 grey in an 8-bit image (255 for 8-bit data, 16 for the digits, 1.0 for
    floats in [0, 1]); ``None`` means ``1 / scale``.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    scale: float
    source: str
    pixel_max: float | None = None


@dataclass(frozen=True)
class RawFiles:
    """Image files a loader found but did not read: zoo reads them lazily, in bounded memory.

    ``mode`` is the Pillow mode to read them in ("L" or "RGB"), ``size`` (height, width) the size
    they are brought to.
    """

    files: list[Any]
    labels: np.ndarray
    class_names: list[str]
    mode: str
    size: tuple[int, int]
    scale: float
    source: str
    pixel_max: float | None = None


@dataclass(frozen=True)
class RawText:
    """What a text dataset loader returns: the whole text (zoo splits it into train/validation blocks)."""

    text: str
    source: str


#: Text is cut into this many contiguous blocks; the seed picks which become validation.
TEXT_BLOCKS = 10


@dataclass(frozen=True)
class DataOptions:
    """Preprocessing a user asks for: a size to resize to and a channel count to convert to."""

    image_size: tuple[int, int] | None = None
    channels: int | None = None


@dataclass(frozen=True)
class DataSplits:
    """Train and validation sets, already preprocessed: float32 N×C×H×W images, int64 labels.

    The images are numpy arrays, or :class:`zoo.data.lazy.LazyImages` (read from files on access) for
    datasets too large to hold in memory; both index the same way.
    """

    info: DataInfo
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def split_indices(count: int, *, seed: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (train, validation) index arrays for ``count`` samples."""
    if not 0.0 < val_fraction < 1.0:
        raise ZooError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    order = np.random.default_rng(seed).permutation(count)
    n_val = max(1, round(count * val_fraction))
    return order[n_val:], order[:n_val]


def prepare_text(name: str, raw: RawText, *, seed: int, val_fraction: float) -> DataSplits:
    """Text → :data:`TEXT_BLOCKS` contiguous byte blocks; ``round(blocks × val_fraction)`` (at least one),
    picked by ``seed``, are the validation text, the others (in order) the training text.

    ``x_train`` / ``x_val`` are 1×N uint8 arrays of UTF-8 bytes (each block cut at a character boundary);
    the labels are empty. A family (``lm``) tokenises them.
    """
    data = raw.text.encode("utf-8")
    if not data.strip():
        raise ZooError(f"{raw.source}: the text is empty; give a UTF-8 text file with some content")
    if not 0.0 < val_fraction < 1.0:
        raise ZooError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    cuts = [0]
    for k in range(1, TEXT_BLOCKS):
        at = len(data) * k // TEXT_BLOCKS
        while at < len(data) and (data[at] & 0xC0) == 0x80:  # never split a character
            at += 1
        cuts.append(max(at, cuts[-1]))
    cuts.append(len(data))
    blocks = [data[a:b] for a, b in itertools.pairwise(cuts)]
    n_val = max(1, round(TEXT_BLOCKS * val_fraction))
    val_ids = set(np.random.default_rng(seed).permutation(TEXT_BLOCKS)[:n_val].tolist())
    train = b"".join(b for i, b in enumerate(blocks) if i not in val_ids)
    val = b"".join(b for i, b in enumerate(blocks) if i in val_ids)
    info = DataInfo(name=name, channels=1, height=1, width=1, num_classes=0, kind="text",
                    source_shape=[len(data)])
    empty = np.zeros(0, np.int64)
    as_row = lambda b: np.frombuffer(b, np.uint8)[None, :]  # noqa: E731
    return DataSplits(info, as_row(train), empty, as_row(val), empty)


def prepare_files(name: str, raw: RawFiles, *, seed: int, val_fraction: float, options: DataOptions) -> DataSplits:
    """Files → lazily read, converted, resized and normalised splits (statistics from the training split)."""
    from zoo.data.lazy import LazyImages, channel_statistics
    from zoo.data.preprocess import check_labels
    from zoo.data.units import white_value

    if len(raw.files) < 2:
        raise ZooError(f"{raw.source}: needs at least 2 images to split into training and validation")
    labels = check_labels(np.asarray(raw.labels), len(raw.files), len(raw.class_names), source=raw.source)
    mode = {1: "L", 3: "RGB"}.get(options.channels or 0, raw.mode)
    size = tuple(options.image_size or raw.size)
    train_idx, val_idx = split_indices(len(raw.files), seed=seed, val_fraction=val_fraction)
    channels = 1 if mode == "L" else 3
    unscaled = LazyImages(raw.files, mode=mode, size=size, scale=raw.scale, mean=[0.0] * channels,
                          std=[1.0] * channels)
    mean, std = channel_statistics(unscaled, train_idx)
    images = LazyImages(raw.files, mode=mode, size=size, scale=raw.scale, mean=mean, std=std)
    info = DataInfo(name=name, channels=channels, height=size[0], width=size[1], num_classes=len(raw.class_names),
                    class_names=raw.class_names, scale=float(raw.scale), mean=mean, std=std,
                    source_shape=[1 if raw.mode == "L" else 3, *raw.size],
                    pixel_max=white_value(raw.pixel_max, raw.scale))
    return DataSplits(info, images.subset(train_idx), labels[train_idx], images.subset(val_idx), labels[val_idx])


def prepare(name: str, raw: RawData, *, seed: int, val_fraction: float, options: DataOptions) -> DataSplits:
    """Raw images → N×C×H×W in the asked channels and size → split → normalised splits."""
    from zoo.data.preprocess import check_labels, check_pixels, convert_channels, resize, to_nchw

    images = to_nchw(np.asarray(raw.images), source=raw.source)
    if len(images) < 2:
        raise ZooError(f"{raw.source}: needs at least 2 images to split into training and validation")
    labels = check_labels(np.asarray(raw.labels), len(images), len(raw.class_names), source=raw.source)
    check_pixels(images, raw.source)
    source_shape = [int(d) for d in images.shape[1:]]
    if options.channels is not None:
        images = convert_channels(images, options.channels)
    if options.image_size is not None:
        images = resize(images, options.image_size)
    return split_and_normalise(name, images, labels, seed=seed, val_fraction=val_fraction, scale=raw.scale,
                               class_names=raw.class_names, source_shape=source_shape, pixel_max=raw.pixel_max)


def split_and_normalise(
    name: str, images: np.ndarray, labels: np.ndarray, *, seed: int, val_fraction: float, scale: float,
    class_names: list[str], source_shape: list[int] | None = None, pixel_max: float | None = None,
) -> DataSplits:
    """Deterministic split by ``seed``, then per-channel normalisation with training-split statistics."""
    from zoo.data.units import white_value

    if images.ndim != 4:
        raise ZooError(f"dataset {name!r}: images must be N×C×H×W, got shape {images.shape}")
    train_idx, val_idx = split_indices(len(images), seed=seed, val_fraction=val_fraction)
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
        pixel_max=white_value(pixel_max, scale),
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
    if isinstance(loaded, RawText):
        return prepare_text(base, loaded, seed=seed, val_fraction=val_fraction)
    if isinstance(loaded, RawFiles):
        return prepare_files(base, loaded, seed=seed, val_fraction=val_fraction, options=options or DataOptions())
    if not isinstance(loaded, DataSplits):
        raise ZooError(f"dataset {base!r} from plugin {spec.plugin!r} returned {type(loaded).__name__}, "
                       "not RawData, RawFiles, RawText or DataSplits")
    return loaded


def load_run_data(config: dict[str, Any]) -> DataSplits:
    """The dataset a run was trained on, prepared exactly as it was (same split, size, channels)."""
    options = config.get("data_options") or {}
    size = options.get("image_size")
    return load_dataset(
        config["dataset"], seed=config["seed"],
        options=DataOptions(image_size=tuple(size) if size else None, channels=options.get("channels")),
    )
