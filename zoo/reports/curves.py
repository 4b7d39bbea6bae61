"""Metric curves as PNG bytes for the HTML report: losses in one chart, every other metric in its own."""

from __future__ import annotations

import io
from typing import Any

from zoo.reports.sections import ReportImage


def metric_series(rows: list[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """Per metric logged (numbers only), its (epoch, value) points."""
    series: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        for key, value in row.items():
            if key in ("epoch", "step") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            series.setdefault(key, []).append((int(row.get("epoch", len(series.get(key, [])) + 1)), float(value)))
    return series


def _chart(title: str, lines: dict[str, list[tuple[int, float]]]) -> bytes:
    from zoo.plots import line_chart

    buffer = io.BytesIO()
    line_chart(title, lines, size=(420, 280)).save(buffer, format="PNG")
    return buffer.getvalue()


def curve_images(rows: list[dict[str, Any]]) -> list[ReportImage]:
    """One chart of every loss, then one chart per other metric (``skipped_steps`` only if any were skipped)."""
    series = metric_series(rows)
    if series.get("skipped_steps") and not any(v for _, v in series["skipped_steps"]):
        del series["skipped_steps"]
    losses = {k: v for k, v in series.items() if "loss" in k}
    images = [ReportImage(_chart("losses", losses), "curve: losses")] if losses else []
    for name, points in series.items():
        if name not in losses:
            images.append(ReportImage(_chart(name, {name: points}), f"curve: {name}"))
    return images
