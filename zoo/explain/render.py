"""Explanations people look at: PNG overlays for images, highlighted tokens for text (terminal and HTML).

Numpy and Pillow only (no torch). Image maps show the magnitude of the attributions summed over channels,
scaled by their 99th percentile; tokens are shaded by their signed share of the largest magnitude
(red: pushed towards the explained token, blue: away from it).
"""

from __future__ import annotations

import html
import io
from typing import Any

import numpy as np

from zoo.toolkit.images import to_pixels

#: Images smaller than this (on their longer side) are enlarged by a whole factor for the PNG.
MIN_SIDE = 160


def heat(values: np.ndarray) -> np.ndarray:
    """An H×W map in [0, 1] from C×H×W (or 1×H×W) attributions: |sum over channels| over its 99th percentile."""
    magnitude = np.abs(np.asarray(values, np.float64).reshape(-1, *values.shape[-2:]).sum(axis=0))
    top = float(np.percentile(magnitude, 99)) or float(magnitude.max()) or 1.0
    return np.clip(magnitude / top, 0.0, 1.0)


def colour_ramp(level: np.ndarray) -> np.ndarray:
    """A black → red → yellow → white colour ramp for levels in [0, 1] (H×W → H×W×3, floats)."""
    return np.stack([np.clip(3 * level, 0, 1), np.clip(3 * level - 1, 0, 1), np.clip(3 * level - 2, 0, 1)], axis=-1)


def overlay_png(image: np.ndarray, values: np.ndarray, mean: Any, std: Any, caption: str = "") -> bytes:
    """One PNG: the input as the model saw it, the attribution map, and the map laid over the input."""
    from PIL import Image, ImageDraw

    pixels = to_pixels(image[None], mean, std)[0]
    grey = pixels.mean(axis=0) if pixels.shape[0] != 3 else None
    base = np.repeat(grey[..., None], 3, axis=-1) if grey is not None else pixels.transpose(1, 2, 0)
    level = heat(values)
    colour = colour_ramp(level)
    blended = np.clip(0.45 * base + 0.55 * colour * level[..., None] + 0.55 * base * (1 - level[..., None]), 0, 1)
    panels = np.concatenate([base, np.ones((base.shape[0], 1, 3)), colour, np.ones((base.shape[0], 1, 3)),
                             blended], axis=1)
    picture = Image.fromarray((panels * 255).round().astype(np.uint8))
    zoom = max(1, -(-MIN_SIDE // max(base.shape[:2])))
    picture = picture.resize((picture.width * zoom, picture.height * zoom), Image.NEAREST)
    if caption:
        framed = Image.new("RGB", (picture.width, picture.height + 16), "white")
        framed.paste(picture, (0, 16))
        ImageDraw.Draw(framed).text((2, 2), caption, fill="black")
        picture = framed
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def feature_lines(names: list[str], shown: list[float], values: np.ndarray) -> str:
    """One line per named input element (a CSV column): its value, its attribution and a bar of its share of the
    largest magnitude (``+`` towards the output, ``-`` away from it), largest magnitude first."""
    shares = _shares(np.ravel(values))
    width = max(len(name) for name in names)
    order = np.argsort(-np.abs(np.ravel(values)), kind="stable")
    lines = []
    for i in order:
        bar = ("+" if shares[i] >= 0 else "-") * round(20 * abs(float(shares[i])))
        lines.append(f"  {names[i]:<{width}}  {shown[i]:>12.6g}  {float(np.ravel(values)[i]):+12.5g}  {bar}")
    return "\n".join(lines)


def _shares(values: np.ndarray) -> np.ndarray:
    top = float(np.abs(values).max()) or 1.0
    return np.asarray(values, np.float64) / top


def tokens_terminal(tokens: list[str], values: np.ndarray, color: bool = True) -> str:
    """The prompt with each token's background shaded by its attribution (ANSI 24-bit colour), or, without
    colour, each token followed by its share in brackets."""
    parts = []
    for token, share in zip(tokens, _shares(values), strict=True):
        shown = token.replace("\n", "\\n")
        if not color:
            parts.append(f"{shown}[{share:+.2f}]")
            continue
        strength = int(255 * (1 - min(1.0, abs(share))))
        rgb = (255, strength, strength) if share >= 0 else (strength, strength, 255)
        parts.append(f"\x1b[48;2;{rgb[0]};{rgb[1]};{rgb[2]}m\x1b[30m{shown}\x1b[0m")
    return "".join(parts)


def tokens_html(explanations: list[Any]) -> str:
    """A self-contained HTML page of text explanations: each prompt's tokens shaded, the share on hover."""
    rows = []
    for item in explanations:
        spans = []
        for token, value, share in zip(item.tokens, item.values, _shares(item.values), strict=True):
            alpha = min(1.0, abs(float(share)))
            colour = f"rgba(220,40,40,{alpha:.2f})" if share >= 0 else f"rgba(40,80,220,{alpha:.2f})"
            spans.append(f'<span title="{float(value):+.4f}" style="background:{colour}">'
                         f"{html.escape(token).replace(chr(10), '&#8629;<br>')}</span>")
        checks = "; ".join(html.escape(c.detail) for c in item.checks)
        rows.append(f"<h2>{html.escape(item.method)}: next token {html.escape(repr(item.target_name))} "
                    f"(p = {item.probability:.3f}; predicted {html.escape(repr(item.predicted_name))})</h2>"
                    f'<p style="font-family:monospace;white-space:pre-wrap">{"".join(spans)}</p>'
                    + (f"<p><small>{checks}</small></p>" if checks else ""))
    return ("<!doctype html><meta charset=utf-8><title>zoo explain</title>"
            "<body style='font-family:sans-serif;max-width:60em;margin:auto'>"
            "<p>Red: the token pushed the model towards the explained token; blue: away from it.</p>"
            + "".join(rows) + "</body>")
