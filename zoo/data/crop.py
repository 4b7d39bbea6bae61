"""The evaluation transform as timm and torchvision users know it: resize so the image covers the *scale size*
(``floor(side / crop_pct)``; for a square target, the shorter side becomes that and the longer side keeps the aspect
ratio, truncated as torchvision's ``Resize(int)`` does), then take the centre ``height``×``width`` (the offset rounded
half to even, as torchvision's ``CenterCrop``). A bicubic resize is done as Pillow does it on an 8-bit image: one
axis, clipped to [0, 255], then the other (:func:`vertical_first` says which first). Without it zoo squashes every
image to the target size.

:class:`EvalCrop` is the one description, recorded in the run's ``config.json``, ``DataInfo``, every graph's
``preprocessing`` metadata and the manifest; training's data preparation, ``zoo predict`` and the deployed pregraph
(:mod:`zoo.bundles.pregraph`, the same arithmetic as ONNX nodes) all follow it. No torch here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from zoo.errors import ZooError

#: The resampling filters the transform offers (Pillow's, and ONNX ``Resize`` modes that match them).
INTERPOLATIONS = ("bilinear", "bicubic")


@dataclass(frozen=True)
class EvalCrop:
    """Resize to cover ``floor(size / crop_pct)`` keeping the aspect ratio, then the centre crop at ``size``."""

    crop_pct: float
    interpolation: str = "bilinear"  # one of INTERPOLATIONS
    source: str = "given"  # "given" (--crop-pct) or "weights: ORIGIN"

    def scale_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The size the image is brought to cover before the crop: ``floor(side / crop_pct)`` per side."""
        return math.floor(size[0] / self.crop_pct), math.floor(size[1] / self.crop_pct)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> EvalCrop | None:
        if not data:
            return None
        return cls(float(data["crop_pct"]), str(data.get("interpolation", "bilinear")),
                   str(data.get("source", "given")))

    def describe(self) -> str:
        """In words, for the card and ``zoo info``."""
        return (f"resize ({self.interpolation}) so the image covers size / {self.crop_pct:g} keeping its aspect ratio "
                f"(the shorter side, for a square size), then centre-crop (crop_pct {self.crop_pct:g}, {self.source})")


def parse_crop_pct(text: str | None, interpolation: str = "bilinear") -> EvalCrop | None:
    """``--crop-pct``: a fraction in (0, 1] → :class:`EvalCrop`; ``none`` (or nothing) → None, the squash."""
    if text is None or str(text).strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value <= 1.0:
        raise ZooError(f"--crop-pct {text!r} is not understood; give a fraction in (0, 1] such as 0.875 (resize to "
                       "size / 0.875, then centre-crop), or none to squash the images to the size")
    return EvalCrop(value, interpolation if interpolation in INTERPOLATIONS else "bilinear", "given")


def covering_size(height: int, width: int, scale: tuple[int, int]) -> tuple[int, int]:
    """The size an ``height``×``width`` image is resized to: the smallest one with its aspect ratio that covers
    ``scale`` (one side equal to it, the other ``floor``-ed, in whole-number arithmetic as the graph does it)."""
    scale_h, scale_w = scale
    if height * scale_w >= width * scale_h:  # relatively taller than the scale size: the width decides
        return (scale_w * height) // width, scale_w
    return scale_h, (scale_h * width) // height


def centre_offset(have: int, want: int) -> int:
    """Where a centred crop of ``want`` starts in ``have``: ``round((have - want) / 2)``, halves to even."""
    return round((have - want) / 2.0)


def resize_crop(images: np.ndarray, size: tuple[int, int], crop: EvalCrop) -> np.ndarray:
    """N×C×H×W images through the evaluation transform to N×C×``size`` (8-bit in, 8-bit out, rounded)."""
    from zoo.data.preprocess import resize

    height, width = size
    covered = covering_size(images.shape[2], images.shape[3], crop.scale_size(size))
    if crop.interpolation == "bicubic":
        resized = _bicubic_two_pass(images, covered)
    else:
        resized = resize(images, covered, resample=crop.interpolation)
    top, left = centre_offset(covered[0], height), centre_offset(covered[1], width)
    return np.ascontiguousarray(resized[:, :, top:top + height, left:left + width])


def vertical_first(before: tuple[int, int], after: tuple[int, int]) -> bool:
    """Whether Pillow resizes the height before the width: when the height shrinks by more than twice what the width
    shrinks (Pillow ≥ 11's rule; the order decides which overshoot is clipped between the passes)."""
    shrink_h, shrink_w = before[0] - after[0], before[1] - after[1]
    return shrink_h > 0 and shrink_h > 2 * shrink_w


def _bicubic_two_pass(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pillow's bicubic resize of an 8-bit image: one axis, its overshoot clipped to [0, 255] (worth several grey
    levels next to saturated pixels), then the other, rounded to 8-bit; float images unclipped."""
    from zoo.data.preprocess import resize

    eight_bit = images.dtype == np.uint8
    height, width = images.shape[2:]
    first = (size[0], width) if vertical_first((height, width), size) else (height, size[1])
    half = resize(images.astype(np.float32), first, resample="bicubic")
    whole = resize(np.clip(half, 0, 255) if eight_bit else half, size, resample="bicubic")
    return whole.round().clip(0, 255).astype(np.uint8) if eight_bit else whole.astype(images.dtype)


def pad_to_scale(images: np.ndarray, crop: EvalCrop) -> np.ndarray:
    """N×H×W×C images (already at the target size) edge-padded to the scale size, so that the transform gives
    them back unchanged: the test vectors of a deployed graph that crops."""
    height, width = images.shape[1:3]
    scale_h, scale_w = crop.scale_size((height, width))
    top, left = centre_offset(scale_h, height), centre_offset(scale_w, width)
    pads = ((0, 0), (top, scale_h - height - top), (left, scale_w - width - left), (0, 0))
    return np.pad(images, pads, mode="edge")


def graph_crop(metadata: dict[str, str]) -> EvalCrop | None:
    """The evaluation transform a graph's ``preprocessing`` metadata records (None: squashed, or not an image graph)."""
    import json

    try:
        preprocessing = json.loads(metadata.get("preprocessing") or "{}")
    except ValueError:
        return None
    return EvalCrop.from_dict(preprocessing.get("crop")) if isinstance(preprocessing, dict) else None
