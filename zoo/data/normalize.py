"""Which per-channel mean and std a run normalises with: the training split's (the default), ImageNet's, given
numbers, or the ones the starting weights were trained with (timm's ``pretrained_cfg``, a Hugging Face image
processor's ``image_mean``/``image_std``). Statistics are in scaled pixel units ([0, 1] for 8-bit images)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from zoo.errors import ZooError

#: ImageNet's statistics, as torchvision's and most timm weights were trained with.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Normalization:
    """A fixed per-channel mean and std (one value each is broadcast over the channels) and where they came from."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str  # "imagenet", "given", or "weights: ORIGIN"

    def for_channels(self, channels: int) -> tuple[list[float], list[float]]:
        """Mean and std with one value per channel (a single value repeated; a colour triple averaged for grey)."""
        def fit(values: tuple[float, ...]) -> list[float]:
            if len(values) == channels:
                return [float(v) for v in values]
            if len(values) == 1:
                return [float(values[0])] * channels
            if channels == 1:
                return [float(sum(values) / len(values))]
            raise ZooError(f"--normalize gives {len(values)} values per statistic but the images have {channels} "
                           "channels; give one value or one per channel")
        return fit(self.mean), fit(self.std)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Normalization | None:
        if not data:
            return None
        return cls(tuple(data["mean"]), tuple(data["std"]), str(data.get("source", "given")))


def parse_normalize(text: str | None) -> Normalization | None:
    """``--normalize``: ``data`` (or nothing) → None (the training split's statistics); ``imagenet``; ``MEAN/STD``
    with comma-separated values (``0.5/0.5`` or ``0.48,0.46,0.41/0.23,0.22,0.23``)."""
    if text is None or text.strip().lower() == "data":
        return None
    if text.strip().lower() == "imagenet":
        return Normalization(IMAGENET_MEAN, IMAGENET_STD, "imagenet")
    mean_text, slash, std_text = text.partition("/")
    try:
        mean = tuple(float(v) for v in mean_text.split(","))
        std = tuple(float(v) for v in std_text.split(","))
    except ValueError:
        mean = std = ()
    if not slash or not mean or len(mean) != len(std) or any(s <= 0 for s in std):
        raise ZooError(f"--normalize {text!r} is not understood; use data, imagenet, or MEAN/STD with comma-separated "
                       "values and positive std (e.g. 0.5/0.5 or 0.485,0.456,0.406/0.229,0.224,0.225)")
    return Normalization(mean, std, "given")


@dataclass(frozen=True)
class WeightsPreprocessing:
    """What starting weights say about their inputs (from the ``config.json`` beside them)."""

    normalization: Normalization | None
    input_size: tuple[int, int] | None
    crop_pct: float | None = None
    interpolation: str | None = None


def weights_preprocessing(config_json: str | None, origin: str) -> WeightsPreprocessing | None:
    """timm's ``pretrained_cfg`` (mean, std, input_size, crop_pct, interpolation) or a Hugging Face image processor's
    ``image_mean``/``image_std``/``size`` in a model folder's JSON; None when it says nothing about them."""
    if not config_json:
        return None
    try:
        config = json.loads(config_json)
    except ValueError:
        return None
    if not isinstance(config, dict):
        return None
    cfg = config.get("pretrained_cfg") if isinstance(config.get("pretrained_cfg"), dict) else config
    mean, std = cfg.get("mean", cfg.get("image_mean")), cfg.get("std", cfg.get("image_std"))
    normalization = None
    if isinstance(mean, list) and isinstance(std, list) and mean and len(mean) == len(std):
        normalization = Normalization(tuple(map(float, mean)), tuple(map(float, std)), f"weights: {origin}")
    size = cfg.get("input_size")
    input_size = (int(size[-2]), int(size[-1])) if isinstance(size, list) and len(size) >= 2 else None
    crop = cfg.get("crop_pct")
    if normalization is None and input_size is None:
        return None
    return WeightsPreprocessing(normalization, input_size, float(crop) if isinstance(crop, (int, float)) else None,
                                cfg.get("interpolation") if isinstance(cfg.get("interpolation"), str) else None)
