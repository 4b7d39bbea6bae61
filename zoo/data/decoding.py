"""One image, one decoding: the rule that turns any PNG/JPEG into the 8-bit pixels a model takes.

Training (``imagefolder``), ``zoo predict`` and every ``zoo deploy`` program (python, node, the browser)
apply the same rule, so one file gives the graph the same uint8 input everywhere:

1. **Bit depth**: 16-bit samples keep their high byte (``value >> 8``: what libpng's ``strip_16`` and
   Pillow's own 16-bit colour PNG reading do); 1/2/4-bit grey is scaled to 0–255.
2. **Palette** images are looked up (their transparency too); **CMYK** (JPEG) becomes RGB as
   ``(255 − C)(255 − K)/255`` rounded (ink amounts; Pillow's conversion).
3. **Alpha** is composited over **black**, ``c·a/255`` rounded: a transparent pixel is the background of the
   training images (0: the digits, MNIST and zoo's samples are light strokes on black).
4. **Channels**: 1 = grey, a colour pixel by ITU-R 601-2 luma in integers,
   ``(19595 R + 38470 G + 7471 B + 32768) >> 16`` (Pillow's ``L``); 3 = RGB, grey repeated.

EXIF orientation and colour profiles are not applied (no target can apply them identically).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: ITU-R 601-2 luma weights in 16-bit fixed point (they sum to 65536: a grey pixel stays itself).
LUMA = (19595, 38470, 7471)


def decode(image: Any, channels: int) -> np.ndarray:
    """A loaded Pillow image as the H×W×``channels`` uint8 pixels the model takes, by the whole rule."""
    if image.mode == ("L" if channels == 1 else "RGB") and "transparency" not in image.info:
        pixels = np.asarray(image, dtype=np.uint8)  # already what the rule gives (opaque, same channels)
        return pixels[..., None] if pixels.ndim == 2 else pixels
    return model_pixels(rgba8(image), channels)


def rgba8(image: Any) -> np.ndarray:
    """A decoded Pillow image as H×W×4 uint8 RGBA by steps 1–2 of the rule (alpha not applied yet)."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "I;16N"):  # 16-bit grey (Pillow keeps all 16 bits)
        raw = np.asarray(image).astype(np.int64)
        grey = (np.clip(raw, 0, 65535) >> 8).astype(np.uint8)
        alpha = _transparent_value(image, raw)
        return np.dstack([grey, grey, grey, alpha])
    if mode == "CMYK":
        cmyk = np.asarray(image).astype(np.int32)
        keep = 255 - cmyk[..., 3:4]
        rgb = ((255 - cmyk[..., :3]) * keep + 127) // 255
        return np.dstack([rgb.astype(np.uint8), np.full(rgb.shape[:2], 255, np.uint8)])
    if mode == "1":  # bilevel: 0 or 255
        image, mode = image.convert("L"), "L"
    if mode in ("L", "RGB") and "transparency" not in image.info:
        pixels = np.asarray(image, dtype=np.uint8)
        pixels = np.dstack([pixels] * 3) if pixels.ndim == 2 else pixels
        return np.dstack([pixels, np.full(pixels.shape[:2], 255, np.uint8)])
    # 16-bit colour is read by Pillow as its high byte already; palette, LA, RGBA and tRNS through RGBA
    return np.asarray(image.convert("RGBA"), dtype=np.uint8)


def model_pixels(rgba: np.ndarray, channels: int) -> np.ndarray:
    """H×W×4 RGBA -> H×W×``channels`` uint8 by steps 3–4 of the rule."""
    rgb = rgba[..., :3].astype(np.int32)
    a = rgba[..., 3:4].astype(np.int32)
    if (a != 255).any():
        rgb = (rgb * a + 127) // 255  # over black, rounded (255 is odd: no ties)
    if channels == 3:
        return rgb.astype(np.uint8)
    grey = (LUMA[0] * rgb[..., 0] + LUMA[1] * rgb[..., 1] + LUMA[2] * rgb[..., 2] + 32768) >> 16
    return grey.astype(np.uint8)[..., None]


def _transparent_value(image: Any, raw: np.ndarray) -> np.ndarray:
    """Alpha of a 16-bit grey image: 0 where the pixel equals its tRNS value, else 255."""
    value = image.info.get("transparency")
    alpha = np.full(raw.shape, 255, np.uint8)
    if isinstance(value, int):
        alpha[raw == value] = 0
    return alpha
