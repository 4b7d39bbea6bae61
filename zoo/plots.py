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


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]: steps of 1, 2 or 5 × 10^k, about ``count`` of them."""
    span = high - low
    raw = span / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step + 1e-9) * step
    ticks = [round(first, 12)]
    while ticks[-1] < high - step * 1e-9 or len(ticks) < 2:  # the last tick at or above the highest value
        ticks.append(round(first + step * len(ticks), 12))
    return ticks


def tick_label(value: float, ticks: list[float]) -> str:
    """A tick value with just the decimals its step needs (0.5, 1, 1.5; 0.02, 0.04)."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) + (1 if round(step / 10 ** math.floor(
        math.log10(step) + 1e-9), 6) == 2.5 else 0)
    if abs(value) >= 1e5 or (value and abs(value) < 1e-4):
        return f"{value:.2g}"
    return f"{value:.{decimals}f}"


LEGEND_ROW = 14


def line_chart(title: str, lines: dict[str, list[tuple[float, float]]], size: tuple[int, int] = SIZE,
               x_label: str = "epoch") -> Any:
    """A PIL image: one line per name through its (x, value) points (non-finite values left out).

    Ticks are round numbers; the legend sits under the plot, never over the data, each name shortened with "..."
    only where a row cannot hold it."""
    from PIL import Image, ImageDraw, ImageFont

    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    bitmap = getattr(ImageFont, "load_default_imagefont", None)
    font = bitmap() if bitmap else ImageFont.load_default()
    probe.font = font
    entries = legend_rows(probe, list(lines), size[0] - 20)
    width, height = size[0], size[1] + LEGEND_ROW * len(entries)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    # Pillow's small bitmap font: loading the default TrueType font would cost more than the whole drawing.
    draw.font = font
    left, top, right, bottom = MARGIN[0], MARGIN[1], width - MARGIN[2], size[1] - MARGIN[3]
    finite = [v for points in lines.values() for _, v in points if math.isfinite(v)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    ticks = nice_ticks(low, high)
    low, high = ticks[0], ticks[-1]
    xs = [x for points in lines.values() for x, _ in points] or [1]
    first = math.floor(min(xs))
    last = max(math.ceil(max(xs)), first + 1)

    def point(x: float, value: float) -> tuple[float, float]:
        return (left + (x - first) / (last - first) * (right - left),
                bottom - (value - low) / (high - low) * (bottom - top))

    draw.rectangle((left, top, right, bottom), outline="black")
    for value in ticks:  # y ticks and grid, round values
        _, y = point(first, value)
        draw.line((left, y, right, y), fill=(225, 225, 225))
        label = tick_label(value, ticks)
        draw.text((left - 6 - draw.textlength(label), y - 6), label, fill="black")
    step = max(1, math.ceil((last - first) / 10))
    for epoch in range(first, last + 1, step):  # whole numbers on x
        x, _ = point(epoch, low)
        draw.line((x, bottom, x, bottom + 4), fill="black")
        draw.text((x - 4, bottom + 6), str(epoch), fill="black")
    draw.text(((left + right) // 2 - 15, bottom + 20), x_label, fill="black")
    draw.text((left, 8), title, fill="black")
    colours = {name: COLOURS[index % len(COLOURS)] for index, name in enumerate(lines)}
    for name, points in lines.items():
        xy = [point(x, v) for x, v in points if math.isfinite(v)]
        if len(xy) > 1:
            draw.line(xy, fill=colours[name], width=2)
        if len(xy) < 20:
            for x, y in xy:
                draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colours[name])
    for row, items in enumerate(entries):  # the legend, under the plot
        y = size[1] - 4 + LEGEND_ROW * row
        for x, name, shown in items:
            draw.line((x, y + 6, x + 20, y + 6), fill=colours[name], width=2)
            draw.text((x + 24, y), shown, fill="black")
    return image


def legend_rows(draw: Any, names: list[str], width: int) -> list[list[tuple[int, str, str]]]:
    """Legend entries laid out in rows of ``width`` pixels: (x, name, shown text) per entry."""
    rows: list[list[tuple[int, str, str]]] = []
    x = width + 1
    for name in names:
        shown = name
        while draw.textlength(shown) + 24 > width - 10 and len(shown) > 2:
            shown = shown[:-4] + "..."  # the bitmap font has no ellipsis character
        need = int(draw.textlength(shown)) + 24 + 16
        if x + need > width:
            rows.append([])
            x = 10
        rows[-1].append((x, name, shown))
        x += need
    return rows
