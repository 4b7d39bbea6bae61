"""Datasets as arrays: the split, the shape and the preprocessing, recorded so they travel with a run."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from zoo.data.crop import EvalCrop
from zoo.data.kinds import (  # noqa: F401 - the kinds' helpers are re-exported as part of zoo.data
    AudioInfo,
    FeatureInfo,
    SampleKind,
    TargetInfo,
    TargetKind,
    class_targets,
    describe_samples,
    describe_targets,
    real_targets,
    sample_unit,
    target_statistics,
)
from zoo.data.kinds import default_target as _default_target
from zoo.data.normalize import Normalization
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
    """What a model needs to know about the data: what a sample is (``kind``), what a target is (``target``)
    and how raw values become model input.

    ``kind`` (a :class:`zoo.data.kinds.SampleKind`) says what one sample is:

    - ``"image"``: model input = ``(raw * scale - mean[c]) / std[c]`` per channel ``c``, after the raw images
      were converted to ``channels`` channels (1 = grayscale, 3 = RGB, in that order) and resized to
      ``height``×``width`` (bilinear). ``source_shape`` is what the files held before that. ``pixel_max`` is
      the raw value that stands for white (255 in an 8-bit image): 16 for the digits; ``None`` (runs from
      before it was recorded) means ``1 / scale`` (see :mod:`zoo.data.units`).
    - ``"text"``: ``x_*`` hold UTF-8 bytes (uint8, one row) until a family tokenises them into token windows
      and records how in ``text``.
    - ``"features"``: rows of real values, standardised with the training split's statistics (``features``).
    - ``"audio"``: mono waveforms (``audio``: sample rate and samples per clip).
    - ``"plugin:kind"``: a plugin's own kind; zoo checks only lengths.

    ``channels``, ``height`` and ``width`` describe images (0 for other kinds). ``target`` (a
    :class:`zoo.data.kinds.TargetInfo`) defaults from the rest: tokens for text, class indices when there are
    classes, else none, so ``config.json`` files of older runs load unchanged.
    """

    name: str
    channels: int = 0
    height: int = 0
    width: int = 0
    num_classes: int = 0
    class_names: list[str] = field(default_factory=list)
    scale: float = 1.0
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    source_shape: list[int] = field(default_factory=list)
    kind: str = "image"
    text: TextInfo | None = None
    pixel_max: float | None = None
    target: TargetInfo | None = None
    features: FeatureInfo | None = None
    audio: AudioInfo | None = None
    #: The evaluation transform images went through instead of the squash (``--crop-pct``, or the weights' own).
    crop: EvalCrop | None = None

    def __post_init__(self) -> None:
        if self.target is None:
            object.__setattr__(self, "target", _default_target(self.kind, self.num_classes))

    @property
    def shape(self) -> tuple[int, int, int]:
        """An image's channels × height × width."""
        return (self.channels, self.height, self.width)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """One sample's shape as the model gets it: C×H×W, (features,), (samples,), (tokens,); ``()`` when
        the kind does not fix it (raw text, a plugin's own kind)."""
        if self.kind == SampleKind.IMAGE:
            return self.shape
        if self.kind == SampleKind.FEATURES and self.features is not None:
            return (self.features.count,)
        if self.kind == SampleKind.AUDIO and self.audio is not None:
            return (self.audio.num_samples,)
        if self.kind == SampleKind.TEXT and self.text is not None:
            return (self.text.context,)
        return ()

    def to_dict(self) -> dict[str, Any]:
        """As a JSON-ready dict; ``crop`` only when there is one (a run without it records what it always did)."""
        data = asdict(self)
        if self.crop is None:
            del data["crop"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataInfo:
        """Back from :meth:`to_dict` (or a ``config.json`` of any older run: missing keys take defaults)."""
        nested = {"text": TextInfo, "target": TargetInfo, "features": FeatureInfo, "audio": AudioInfo,
                  "crop": EvalCrop}
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key, kind in nested.items():
            if isinstance(values.get(key), dict):
                values[key] = kind(**values[key])
        return cls(**values)


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


@dataclass(frozen=True)
class RawTable:
    """What a tabular dataset loader returns: N×F feature values and N×T (or N) real target values, with
    the names of both (zoo splits the rows and standardises the features with training statistics)."""

    features: np.ndarray
    targets: np.ndarray
    feature_names: list[str]
    target_names: list[str]
    source: str


@dataclass(frozen=True)
class RawAudio:
    """What an audio dataset loader returns: N×S mono float waveforms in [-1, 1] at ``sample_rate`` Hz (all
    clips the same length) and their class labels (an empty ``class_names`` and labels: no targets)."""

    waveforms: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    sample_rate: int
    source: str


#: Text is cut into this many contiguous blocks; the seed picks which become validation.
TEXT_BLOCKS = 10


@dataclass(frozen=True)
class DataOptions:
    """Preprocessing a user asks for: a size to resize to and a channel count to convert to (images only),
    and ``args``, the dataset's own options (``--data-arg KEY=VALUE``: a CSV's target column, say)."""

    image_size: tuple[int, int] | None = None
    channels: int | None = None
    args: dict[str, str] = field(default_factory=dict)
    #: A fixed mean/std instead of the training split's (``--normalize``, or the starting weights' own).
    normalize: Normalization | None = None
    #: Keep only this many training samples, drawn by the seed (``--train-samples``); the validation split stays.
    train_samples: int | None = None
    #: Resize keeping the aspect ratio + centre crop instead of the squash (``--crop-pct``, or the weights' own).
    crop: EvalCrop | None = None

    def image_flags(self) -> list[str]:
        """The image-only flags these options set (``--channels``, ``--image-size``, ``--normalize``,
        ``--crop-pct``)."""
        return [flag for flag, value in (("--channels", self.channels), ("--image-size", self.image_size),
                                         ("--normalize", self.normalize), ("--crop-pct", self.crop))
                if value is not None]


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
    info = DataInfo(name=name, num_classes=0, kind=SampleKind.TEXT, source_shape=[len(data)],
                    target=TargetInfo(TargetKind.TOKENS))
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
    if options.normalize is not None:
        mean, std = options.normalize.for_channels(channels)
    else:
        unscaled = LazyImages(raw.files, mode=mode, size=size, scale=raw.scale, mean=[0.0] * channels,
                              std=[1.0] * channels, crop=options.crop)
        mean, std = channel_statistics(unscaled, train_idx)
    images = LazyImages(raw.files, mode=mode, size=size, scale=raw.scale, mean=mean, std=std, crop=options.crop)
    info = DataInfo(name=name, channels=channels, height=size[0], width=size[1], num_classes=len(raw.class_names),
                    class_names=raw.class_names, scale=float(raw.scale), mean=mean, std=std,
                    source_shape=[1 if raw.mode == "L" else 3, *raw.size],
                    pixel_max=white_value(raw.pixel_max, raw.scale), crop=options.crop)
    return DataSplits(info, images.subset(train_idx), labels[train_idx], images.subset(val_idx), labels[val_idx])


def prepare(name: str, raw: RawData, *, seed: int, val_fraction: float, options: DataOptions) -> DataSplits:
    """Raw images → N×C×H×W in the asked channels and size → split → normalised splits."""
    from zoo.data.crop import resize_crop
    from zoo.data.preprocess import check_labels, check_pixels, convert_channels, resize, to_nchw

    images = to_nchw(np.asarray(raw.images), source=raw.source)
    if len(images) < 2:
        raise ZooError(f"{raw.source}: needs at least 2 images to split into training and validation")
    labels = check_labels(np.asarray(raw.labels), len(images), len(raw.class_names), source=raw.source)
    check_pixels(images, raw.source)
    source_shape = [int(d) for d in images.shape[1:]]
    if options.channels is not None:
        images = convert_channels(images, options.channels)
    if options.crop is not None:  # every split alike: the model trains on what it is evaluated on
        images = resize_crop(images, options.image_size or images.shape[2:], options.crop)
    elif options.image_size is not None:
        images = resize(images, options.image_size)
    splits = split_and_normalise(name, images, labels, seed=seed, val_fraction=val_fraction, scale=raw.scale,
                                 class_names=raw.class_names, source_shape=source_shape, pixel_max=raw.pixel_max,
                                 normalize=options.normalize)
    return replace(splits, info=replace(splits.info, crop=options.crop)) if options.crop else splits


def split_and_normalise(
    name: str, images: np.ndarray, labels: np.ndarray, *, seed: int, val_fraction: float, scale: float,
    class_names: list[str], source_shape: list[int] | None = None, pixel_max: float | None = None,
    target_names: list[str] | None = None, normalize: Normalization | None = None,
) -> DataSplits:
    """Deterministic split by ``seed``, then per-channel normalisation with training-split statistics (or the fixed
    ones ``normalize`` gives).

    The targets keep what they are, never cast silently: integer labels, or whole-valued floats when
    ``class_names`` are given, are class indices (int64, checked against the classes); float targets with no
    ``class_names`` are real values (float32 N×T, ``target_names`` naming the columns, their training-split
    statistics in ``DataInfo.target``); float class labels that are not whole numbers are refused.
    """
    from zoo.data.preprocess import check_labels
    from zoo.data.units import white_value

    if images.ndim != 4:
        raise ZooError(f"dataset {name!r}: images must be N×C×H×W, got shape {images.shape}")
    labels = np.asarray(labels)
    train_idx, val_idx = split_indices(len(images), seed=seed, val_fraction=val_fraction)
    if np.issubdtype(labels.dtype, np.floating) and not class_names:
        from zoo.data.kinds import real_targets, target_statistics

        labels, names = real_targets(labels, len(images), names=target_names, source=f"dataset {name!r}")
        target = target_statistics(labels[train_idx], names)
    else:
        labels = check_labels(labels, len(images), len(class_names) or None, source=f"dataset {name!r}")
        target = TargetInfo(TargetKind.CLASS)
    scaled = images.astype(np.float32) * np.float32(scale)
    if normalize is not None:
        fixed = normalize.for_channels(images.shape[1])
        mean, std = np.asarray(fixed[0]), np.asarray(fixed[1])  # float64: recorded exactly as given
    else:
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
        target=target,
    )
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
    options = options or DataOptions()
    loader = resolve(spec.loader, owner=spec.plugin)
    kwargs: dict[str, Any] = {"seed": seed, "val_fraction": val_fraction, **_dataset_args(spec, options.args)}
    if path:
        kwargs["path"] = path
    return training_subset(_load_splits(base, spec, loader(**kwargs), seed, val_fraction, options),
                           options.train_samples, seed)


def _load_splits(base: str, spec: Any, loaded: Any, seed: int, val_fraction: float,
                 options: DataOptions) -> DataSplits:
    """What a loader returned, prepared into train and validation splits."""
    if isinstance(loaded, RawData):
        return prepare(base, loaded, seed=seed, val_fraction=val_fraction, options=options)
    if isinstance(loaded, RawFiles):
        return prepare_files(base, loaded, seed=seed, val_fraction=val_fraction, options=options)
    if options.image_flags():
        what = {RawText: "text", RawTable: "a table", RawAudio: "audio"}.get(type(loaded), "data it prepares itself")
        flags = " and ".join(options.image_flags())
        raise ZooError(f"{flags} convert images zoo prepares (RawData, RawFiles), but dataset {base!r} (plugin "
                       f"{spec.plugin!r}) gives {what}, which they cannot apply to; drop {flags}")
    if isinstance(loaded, RawText):
        return prepare_text(base, loaded, seed=seed, val_fraction=val_fraction)
    if isinstance(loaded, RawTable):
        from zoo.data.tabular import prepare_table

        return prepare_table(base, loaded, seed=seed, val_fraction=val_fraction)
    if isinstance(loaded, RawAudio):
        from zoo.data.audio import prepare_audio

        return prepare_audio(base, loaded, seed=seed, val_fraction=val_fraction)
    if not isinstance(loaded, DataSplits):
        raise ZooError(f"dataset {base!r} from plugin {spec.plugin!r} returned {type(loaded).__name__}, "
                       "not RawData, RawFiles, RawText, RawTable, RawAudio or DataSplits")
    return loaded


def subset_indices(available: int, count: int, seed: int) -> np.ndarray:
    """The (sorted) indices of the training samples ``--train-samples count`` keeps, a pure function of the seed."""
    return np.sort(np.random.default_rng([seed, 0x7A15EED]).choice(available, count, replace=False))


def training_subset(splits: DataSplits, count: int | None, seed: int) -> DataSplits:
    """The splits with only ``count`` training samples, drawn without replacement by ``seed`` (kept in their
    order; ``None``: all of them). The samples left out are in neither split; the validation split is unchanged."""
    if count is None:
        return splits
    available = len(splits.y_train)
    if available == 0 or len(splits.x_train) != available:
        raise ZooError(f"--train-samples picks labelled samples, and dataset {splits.info.name!r} has none one by one "
                       "(text is cut into blocks); drop --train-samples")
    if not 1 <= count <= available:
        raise ZooError(f"--train-samples must be between 1 and the {available} training samples of "
                       f"{splits.info.name!r}, got {count}")
    chosen = subset_indices(available, count, seed)
    x_train = splits.x_train.subset(chosen) if hasattr(splits.x_train, "subset") else splits.x_train[chosen]
    return replace(splits, x_train=x_train, y_train=splits.y_train[chosen])


def _dataset_args(spec: Any, args: dict[str, str]) -> dict[str, str]:
    """``--data-arg`` values, each one the dataset declares (``DatasetSpec.args``)."""
    for key in args:
        if key not in spec.args:
            offered = ", ".join(sorted(spec.args)) or "none"
            raise ZooError(f"dataset {spec.name!r} takes no --data-arg {key}= (it takes: {offered})")
    return dict(args)


def load_run_data(config: dict[str, Any]) -> DataSplits:
    """The dataset a run was trained on, prepared exactly as it was (same split, size, channels)."""
    options = config.get("data_options") or {}
    size = options.get("image_size")
    return load_dataset(
        config["dataset"], seed=config["seed"],
        options=DataOptions(image_size=tuple(size) if size else None, channels=options.get("channels"),
                            args=dict(options.get("args") or {}),
                            normalize=Normalization.from_dict(options.get("normalize")),
                            train_samples=options.get("train_samples"),
                            crop=EvalCrop.from_dict(options.get("crop"))),
    )
