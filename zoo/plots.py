"""The loss-curve picture every run gets, whatever its family (matplotlib, Agg backend, no display)."""

from __future__ import annotations

import json
from pathlib import Path

LOSS_CURVE = "loss_curve.png"


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


def write_loss_curve(metrics_log: Path, out: Path) -> None:
    """Plot every loss in ``metrics_log`` (one line an epoch) against the epoch into ``out`` (PNG, atomic).

    Nothing is written before the first epoch has ended.
    """
    epochs, series = loss_series(metrics_log)
    if not epochs:
        return
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from zoo.atomic import atomic_write

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    try:
        for name, values in series.items():
            ax.plot(epochs, values, marker="o" if len(epochs) < 20 else None, markersize=3, label=name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_title(metrics_log.parent.name, fontsize=9)
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize=7)
        fig.tight_layout()
        atomic_write(out, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)
