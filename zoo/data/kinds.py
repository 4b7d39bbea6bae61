"""What a sample is and what a target is: the typed data kinds, their wording and their checks.

A :class:`zoo.data.DataInfo` names a *sample kind* (``image``, ``text`` token sequences, ``features`` rows,
``audio`` waveforms, or a plugin's own ``"plugin:kind"``) and carries a :class:`TargetInfo` (``class``
indices, ``real`` values with their statistics, ``tokens``, ``none``). Families declare the kinds they accept
on their :class:`zoo.specs.FamilySpec` (a model's :class:`zoo.specs.ModelSpec` may narrow them); a mismatch is
refused by :func:`check_accepts` before a run folder exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zoo.errors import ZooError


class SampleKind:
    """What one sample is (``DataInfo.kind``); a plugin's own kind is ``"plugin:kind"``."""

    IMAGE = "image"  #: C×H×W pixels (``channels``, ``height``, ``width``)
    TEXT = "text"  #: a token sequence (raw UTF-8 bytes until a family tokenises it; then ``DataInfo.text``)
    FEATURES = "features"  #: a row of real-valued features (``DataInfo.features``)
    AUDIO = "audio"  #: a mono waveform (``DataInfo.audio``: sample rate, samples per clip)

    BUILT_IN = (IMAGE, TEXT, FEATURES, AUDIO)


class TargetKind:
    """What one target is (``DataInfo.target.kind``)."""

    CLASS = "class"  #: an int64 class index in [0, num_classes)
    REAL = "real"  #: float32 values (one per target column) in their own units; statistics in ``TargetInfo``
    TOKENS = "tokens"  #: the next tokens of a token sequence
    NONE = "none"  #: no target (the labels are empty or ignored)

    ALL = (CLASS, REAL, TOKENS, NONE)


#: The unit one forward pass of a model handles, per sample kind (``zoo info --flops``, the card).
SAMPLE_UNITS = {SampleKind.IMAGE: "image", SampleKind.TEXT: "token sequence", SampleKind.FEATURES: "row",
                SampleKind.AUDIO: "clip"}


def sample_unit(kind: str) -> str:
    """``"image"``, ``"row"``, ``"clip"``, ``"token sequence"``; ``"sample"`` for a plugin's own kind."""
    return SAMPLE_UNITS.get(kind, "sample")


@dataclass(frozen=True)
class TargetInfo:
    """What a target is. For ``real`` targets: one ``names`` entry per column and the training split's
    ``mean`` and ``std`` per column (in the target's own units), so a family can standardise its loss and
    report errors in the target's units, and a bundle carries them."""

    kind: str = TargetKind.CLASS
    names: list[str] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in TargetKind.ALL:
            raise ZooError(f"target kind {self.kind!r} is not one of {list(TargetKind.ALL)}")
        if self.kind == TargetKind.REAL and not (len(self.names) == len(self.mean) == len(self.std) >= 1):
            raise ZooError(f"real targets need one name, mean and std per column, got {len(self.names)} names, "
                           f"{len(self.mean)} means, {len(self.std)} stds; build them with real_targets()")

    @property
    def columns(self) -> int:
        """How many values one target holds (1 for class indices and tokens, the columns for real values)."""
        return len(self.names) if self.kind == TargetKind.REAL else 1


@dataclass(frozen=True)
class FeatureInfo:
    """Rows of real-valued features (``kind == "features"``): model input = ``(x - mean[i]) / std[i]`` with the
    training split's statistics, in the order of ``names``."""

    names: list[str]
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class AudioInfo:
    """Mono waveforms (``kind == "audio"``): ``num_samples`` float32 samples per clip in [-1, 1] at
    ``sample_rate`` Hz (samples are N×``num_samples``)."""

    sample_rate: int
    num_samples: int

    def __post_init__(self) -> None:
        if not (isinstance(self.sample_rate, int) and self.sample_rate > 0):
            raise ZooError(f"audio sample_rate must be a positive whole number of Hz, got {self.sample_rate!r}")
        if not (isinstance(self.num_samples, int) and self.num_samples > 0):
            raise ZooError(f"audio num_samples must be a positive whole number, got {self.num_samples!r}")

    @property
    def seconds(self) -> float:
        return self.num_samples / self.sample_rate


def default_target(kind: str, num_classes: int) -> TargetInfo:
    """The target of a ``DataInfo`` that names none (every run before targets were typed): tokens for text,
    class indices when there are classes, else none."""
    if kind == SampleKind.TEXT:
        return TargetInfo(TargetKind.TOKENS)
    return TargetInfo(TargetKind.CLASS if num_classes else TargetKind.NONE)


def class_targets(labels: np.ndarray, count: int, num_classes: int | None, *, source: str) -> np.ndarray:
    """Class indices as int64, one per sample, each in [0, num_classes); whole-valued floats are accepted,
    any other float is refused (never truncated)."""
    from zoo.data.preprocess import check_labels

    return check_labels(labels, count, num_classes, source=source)


def real_targets(values: np.ndarray, count: int, *, names: list[str] | None = None,
                 source: str) -> tuple[np.ndarray, list[str]]:
    """Real-valued targets as float32 N×T (a 1-d array is one column), finite; returns them and the column
    names (``target`` / ``target_0``… when not given). Integers are widened to float32, never the reverse."""
    values = np.asarray(values)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or len(values) != count:
        raise ZooError(f"{source}: {count} samples but targets of shape {values.shape}; give one row of "
                       "target values per sample")
    if not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)):
        raise ZooError(f"{source}: targets must be numbers, got dtype {values.dtype}")
    values = values.astype(np.float32)
    if not np.isfinite(values).all():
        raise ZooError(f"{source}: targets hold NaN or infinite values; drop or fix those rows")
    columns = values.shape[1]
    if names is None:
        names = ["target"] if columns == 1 else [f"target_{i}" for i in range(columns)]
    if len(names) != columns:
        raise ZooError(f"{source}: {columns} target columns but {len(names)} target names")
    return values, list(names)


def target_statistics(values: np.ndarray, names: list[str]) -> TargetInfo:
    """A ``real`` :class:`TargetInfo` from N×T training targets (std never 0: a constant column gets 1)."""
    mean = values.mean(axis=0, dtype=np.float64)
    std = values.std(axis=0, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    return TargetInfo(TargetKind.REAL, list(names), [float(m) for m in mean], [float(s) for s in std])


def describe_samples(info: Any) -> str:
    """The samples in words: ``8×8 grayscale images``, ``rows of 10 features``, ``1.00 s audio clips``…"""
    if info.kind == SampleKind.IMAGE:
        color = {1: "grayscale ", 3: "RGB "}.get(info.channels, f"{info.channels}-channel ")
        return f"{info.height}×{info.width} {color}images"
    if info.kind == SampleKind.FEATURES and info.features is not None:
        return f"rows of {info.features.count} features"
    if info.kind == SampleKind.AUDIO and info.audio is not None:
        return (f"{info.audio.seconds:.2f} s audio clips ({info.audio.num_samples} samples at "
                f"{info.audio.sample_rate} Hz)")
    if info.kind == SampleKind.TEXT:
        text = info.text
        return f"token sequences of {text.context} tokens ({text.tokenizer})" if text else "text"
    return f"samples of kind {info.kind!r}"


def describe_targets(info: Any) -> str:
    """The targets in words: ``10 classes (0, 1, …)``, ``real values of 'y' (mean 152, std 77.1)``…"""
    target = info.target
    if target.kind == TargetKind.CLASS:
        names = f" ({', '.join(map(str, info.class_names))})" if info.class_names else ""
        return f"{info.num_classes} classes{names}"
    if target.kind == TargetKind.REAL:
        parts = [f"{n!r} (mean {m:.4g}, std {s:.4g})" for n, m, s in zip(target.names, target.mean, target.std,
                                                                          strict=True)]
        return "real values of " + ", ".join(parts)
    if target.kind == TargetKind.TOKENS:
        return "the next token"
    return "no targets"


def check_accepts(model: str, plugin: str, data_kinds: tuple[str, ...], target_kinds: tuple[str, ...],
                  info: Any, dataset: str) -> None:
    """Refuse, in one line, data whose sample or target kind the model's family (or spec) does not take."""
    if info.kind not in data_kinds:
        raise ZooError(f"model {model!r} (plugin {plugin!r}) trains on {' or '.join(data_kinds)} data but "
                       f"dataset {dataset!r} holds {describe_samples(info)} (kind {info.kind!r}); pick a dataset of "
                       f"kind {' or '.join(data_kinds)} (zoo datasets) or a model for {info.kind!r} data (zoo list)")
    if info.target.kind not in target_kinds:
        raise ZooError(f"model {model!r} (plugin {plugin!r}) learns {' or '.join(target_kinds)} targets but "
                       f"dataset {dataset!r} has {describe_targets(info)} (target kind {info.target.kind!r}); "
                       "pick a dataset with matching targets or another model (zoo list)")


def accepted_kinds(spec: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The (sample kinds, target kinds) a model takes: its spec's when it names them, else its family's."""
    from zoo.registry import get_family_spec

    family = get_family_spec(spec.family)
    return (spec.data_kinds or family.data_kinds, spec.target_kinds or family.target_kinds)


#: Training options that only make sense for images (flag → ``TrainOptions`` field).
IMAGE_OPTIONS = {"--augment": "augment", "--crop-flip": "crop_flip", "--channels-last": "channels_last"}


def check_image_options(options: Any, info: Any, dataset: str) -> None:
    """Refuse, in one line, image-only training options for data that is not images."""
    if info.kind == SampleKind.IMAGE:
        return
    used = [flag for flag, name in IMAGE_OPTIONS.items() if getattr(options, name, False)]
    if used:
        verb = "is" if len(used) == 1 else "are"
        raise ZooError(f"{' and '.join(used)} {verb} for images only, but dataset {dataset!r} holds "
                       f"{describe_samples(info)}; drop {' and '.join(used)}")
