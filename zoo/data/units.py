"""The unit of raw pixels: which stored value means white, so 8-bit images can be mapped onto it.

Datasets store pixels in their own unit (the digits run 0–16, MNIST 0–255, an npz of floats 0–1).
Training sees ``raw × scale``; an image file holds 8-bit values 0–255. ``pixel_max`` (the raw value of
white) is what connects the two: an 8-bit value ``v`` is the raw value ``v × pixel_max / 255``.
"""

from __future__ import annotations

from typing import Any

from zoo.errors import ZooError


def white_value(pixel_max: float | None, scale: float) -> float:
    """The raw value of white: the declared ``pixel_max``, else ``1 / scale`` (scale maps raw to [0, 1])."""
    if pixel_max is not None:
        if not pixel_max > 0:
            raise ZooError(f"pixel_max must be a positive number (the raw value of white), got {pixel_max!r}")
        return float(pixel_max)
    if not scale > 0:
        raise ZooError(f"scale must be positive to derive the raw value of white, got {scale!r}; declare pixel_max")
    return float(1.0 / scale)


def unit_metadata(pixel_max: float) -> dict[str, Any]:
    """What a bundle records about the unit of raw pixels."""
    return {"pixel_max": pixel_max, "from_8bit": pixel_max / 255.0,
            "meaning": f"raw pixels run 0 … {pixel_max:g}; {pixel_max:g} is white (255 in an 8-bit image), "
                       f"so an 8-bit value v is the raw value v × {pixel_max:g} / 255"}


def from_8bit_factor(normalization: dict[str, Any]) -> float:
    """The factor taking 8-bit pixel values to the raw unit, from a bundle's ``normalization`` metadata.

    Bundles written before the unit was recorded hold only ``scale``; their raw unit is ``1 / scale``.
    """
    return white_value(normalization.get("pixel_max"), float(normalization["scale"])) / 255.0
