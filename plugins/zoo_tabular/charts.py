"""The regressor's report pictures, drawn with Pillow: predicted against true, and the residuals' histogram."""

from __future__ import annotations

import io

import numpy as np

SIZE, MARGIN = 320, 36


def scatter(truth: np.ndarray, predicted: np.ndarray) -> bytes:
    """A PNG of one point per row at (true, predicted), with the diagonal of perfect predictions."""
    from PIL import Image, ImageDraw

    low = float(min(truth.min(), predicted.min()))
    high = float(max(truth.max(), predicted.max()))
    span = high - low or 1.0
    image = Image.new("RGB", (SIZE, SIZE), "white")
    draw = ImageDraw.Draw(image)
    inner = SIZE - 2 * MARGIN

    def at(x: float, y: float) -> tuple[float, float]:
        return MARGIN + (x - low) / span * inner, SIZE - MARGIN - (y - low) / span * inner

    draw.rectangle([MARGIN, MARGIN, SIZE - MARGIN, SIZE - MARGIN], outline="#888")
    draw.line([at(low, low), at(high, high)], fill="#c33", width=1)
    for x, y in zip(truth.tolist(), predicted.tolist(), strict=True):
        px, py = at(x, y)
        draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill="#2a6fbb")
    draw.text((MARGIN, SIZE - MARGIN + 8), f"true {low:.4g} … {high:.4g}", fill="black")
    draw.text((4, 4), "predicted", fill="black")
    return _png(image)


def residual_histogram(residuals: np.ndarray, bins: int = 20) -> bytes:
    """A PNG histogram of the residuals (predicted − true), zero marked."""
    from PIL import Image, ImageDraw

    counts, edges = np.histogram(residuals, bins=bins)
    image = Image.new("RGB", (SIZE, SIZE), "white")
    draw = ImageDraw.Draw(image)
    inner = SIZE - 2 * MARGIN
    width = inner / bins
    top = max(int(counts.max()), 1)
    for i, count in enumerate(counts.tolist()):
        x0 = MARGIN + i * width
        draw.rectangle([x0, SIZE - MARGIN - count / top * inner, x0 + width - 1, SIZE - MARGIN], fill="#2a6fbb")
    low, high = float(edges[0]), float(edges[-1])
    if low < 0 < high:
        zero = MARGIN + (0 - low) / (high - low) * inner
        draw.line([(zero, MARGIN), (zero, SIZE - MARGIN)], fill="#c33")
    draw.text((MARGIN, SIZE - MARGIN + 8), f"residual {low:.4g} … {high:.4g}", fill="black")
    draw.text((4, 4), f"rows (max {top})", fill="black")
    return _png(image)


def _png(image: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")  # type: ignore[attr-defined]
    return buffer.getvalue()


def attribution_bars(names: list[str], values: np.ndarray, shown: list[float], caption: str) -> bytes:
    """A PNG of one horizontal bar per column, its attribution to the right (red, towards a larger output) or
    left (blue) of zero, the column's value and the attribution written beside it."""
    from PIL import Image, ImageDraw

    row, label, half = 18, 170, 140
    image = Image.new("RGB", (label + 2 * half + 90, 28 + row * len(names)), "white")
    draw = ImageDraw.Draw(image)
    draw.text((4, 4), caption, fill="black")
    top = float(np.abs(values).max()) or 1.0
    zero = label + half
    for i, (name, value) in enumerate(zip(names, values.tolist(), strict=True)):
        y = 24 + i * row
        text = f"{name} = {shown[i]:.4g}" if i < len(shown) else name
        draw.text((4, y + 2), text[:26], fill="black")
        end = zero + value / top * half
        draw.rectangle([min(zero, end), y + 3, max(zero, end), y + row - 3],
                       fill="#c33" if value >= 0 else "#2a6fbb")
        draw.text((label + 2 * half + 4, y + 2), f"{value:+.4g}", fill="black")
    draw.line([(zero, 22), (zero, image.height - 2)], fill="#888")
    return _png(image)
