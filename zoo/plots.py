"""The loss-curve picture every run gets, whatever its family (Pillow only: no display, no matplotlib)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def loss_series(metrics_log: Path) -> tuple[list[int], dict[str, list[float]]]:
    """Epochs and, per metric whose name contains "loss", its value each epoch (NaN where absent)."""
    epochs: list[int] = []
    rows: list[dict[str, float]] = []
    if not metrics_log.exists():  # stopped before its first epoch ended
        return epochs, {}
    for line in metrics_log.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            epochs.append(int(row["epoch"]))
            rows.append(row)
    names = sorted({k for row in rows for k in row if "loss" in k and isinstance(row[k], (int, float))})
    return epochs, {name: [float(row.get(name, float("nan"))) for row in rows] for name in names}


#: Line colours, one per loss (matplotlib's first "tab" colours).
COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75))
SIZE = (600, 400)
MARGIN = (60, 30, 20, 40)  # left, top, right, bottom


def write_loss_curve(metrics_log: Path, out: Path) -> None:
    """Plot every loss in ``metrics_log`` (one line an epoch) against the epoch into ``out`` (PNG, atomic).

    Drawn with Pillow (a few milliseconds; matplotlib's import alone took 0.4 s of every run).
    Nothing is written before the first epoch has ended.
    """
    epochs, series = loss_series(metrics_log)
    if not epochs:
        return
    from zoo.atomic import atomic_write

    lines = {name: list(zip(epochs, values, strict=True)) for name, values in series.items()}
    image = line_chart(f"{metrics_log.parent.name}: loss", lines)
    atomic_write(out, lambda tmp: image.save(tmp, format="PNG"))


def line_chart(title: str, lines: dict[str, list[tuple[float, float]]], size: tuple[int, int] = SIZE,
               x_label: str = "epoch") -> Any:
    """A PIL image: one line per name through its (x, value) points (non-finite values left out)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    # Pillow's small bitmap font: loading the default TrueType font would cost more than the whole drawing.
    bitmap = getattr(ImageFont, "load_default_imagefont", None)
    draw.font = bitmap() if bitmap else ImageFont.load_default()
    left, top, right, bottom = MARGIN[0], MARGIN[1], size[0] - MARGIN[2], size[1] - MARGIN[3]
    finite = [v for points in lines.values() for _, v in points if math.isfinite(v)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    xs = [x for points in lines.values() for x, _ in points] or [1]
    first = math.floor(min(xs))
    last = max(math.ceil(max(xs)), first + 1)

    def point(x: float, value: float) -> tuple[float, float]:
        return (left + (x - first) / (last - first) * (right - left),
                bottom - (value - low) / (high - low) * (bottom - top))

    draw.rectangle((left, top, right, bottom), outline="black")
    for k in range(5):  # y ticks and grid
        value = low + (high - low) * k / 4
        _, y = point(first, value)
        draw.line((left, y, right, y), fill=(225, 225, 225))
        draw.text((4, y - 6), f"{value:.3g}", fill="black")
    step = max(1, math.ceil((last - first) / 10))
    for epoch in range(first, last + 1, step):  # whole numbers on x
        x, _ = point(epoch, low)
        draw.line((x, bottom, x, bottom + 4), fill="black")
        draw.text((x - 4, bottom + 6), str(epoch), fill="black")
    draw.text(((left + right) // 2 - 15, size[1] - 16), x_label, fill="black")
    draw.text((left, 8), title, fill="black")
    for index, (name, points) in enumerate(lines.items()):
        colour = COLOURS[index % len(COLOURS)]
        xy = [point(x, v) for x, v in points if math.isfinite(v)]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        if len(xy) < 20:
            for x, y in xy:
                draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
        draw.line((right - 150, top + 10 + 14 * index, right - 130, top + 10 + 14 * index), fill=colour, width=2)
        draw.text((right - 125, top + 4 + 14 * index), name, fill="black")
    return image
