"""Reporting a run as it trains: metrics files (JSONL, CSV, TensorBoard, MLflow) and the progress display.

Metrics on disk: one JSON line and one CSV row per epoch; TensorBoard and MLflow too when asked for.

Progress: a live bar in a terminal, plain lines elsewhere (CI logs, files): no carriage returns.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from zoo.errors import ZooError
from zoo.run_layout import METRICS, METRICS_CSV, TENSORBOARD

# === metrics files ===================================================================================================



class MetricsLog:
    """Appends epoch rows to ``metrics.jsonl`` and ``metrics.csv`` (and TensorBoard scalars)."""

    def __init__(self, run_dir: Path, tensorboard: bool = False, mlflow: bool = False) -> None:
        self.jsonl = run_dir / METRICS
        self.csv = run_dir / METRICS_CSV
        self.writer: Any = None
        if tensorboard:
            self.writer = tensorboard_writer()(str(run_dir / TENSORBOARD))
        self.mlflow: Any = None
        if mlflow:
            from zoo.trackers import MlflowTracker

            self.mlflow = MlflowTracker(run_dir)

    def write(self, row: dict[str, Any]) -> None:
        with self.jsonl.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        new = not self.csv.exists() or self.csv.stat().st_size == 0
        with self.csv.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row), extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
        if self.writer is not None:
            for key, value in row.items():
                if key not in ("epoch", "step") and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, row["step"])
            self.writer.flush()
        if self.mlflow is not None:
            self.mlflow.log(row)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def tensorboard_writer() -> Any:
    """TensorBoard's ``SummaryWriter``; a clear error when tensorboard is not installed (it is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ZooError("--tensorboard needs the tensorboard package: pip install tensorboard") from exc
    return SummaryWriter


# === progress display ================================================================================================

def _format(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in metrics.items())


class Progress:
    """Reports training progress to ``stream`` (stderr by default).

    In a terminal: a tqdm bar per epoch. Elsewhere: one line per epoch, plus one every
    ``log_every`` steps when that is set.
    """

    def __init__(self, total_epochs: int, steps_per_epoch: int, *, enabled: bool = True,
                 stream: TextIO | None = None, log_every: int | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.total_epochs = total_epochs
        self.steps_per_epoch = steps_per_epoch
        self.live = enabled and self.stream.isatty()
        self.log_every = log_every if enabled and not self.live else None
        self._bar: Any = None
        self._epoch = 0

    def start_epoch(self, epoch: int, done: int = 0) -> None:
        """Epoch ``epoch`` begins, ``done`` batches in (non-zero when resuming mid-epoch)."""
        self._epoch = epoch
        if self.live:
            from tqdm import tqdm

            self._bar = tqdm(total=self.steps_per_epoch, initial=done, desc=f"epoch {epoch}/{self.total_epochs}",
                             file=self.stream, leave=False, dynamic_ncols=True)

    def step(self, step: int) -> None:
        """One more optimizer step; ``step`` is the run's step count."""
        if self._bar is not None:
            self._bar.update(1)
        elif self.log_every and step % self.log_every == 0:
            print(f"epoch {self._epoch}/{self.total_epochs} step {step}", file=self.stream, flush=True)

    def end_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.enabled:
            print(f"epoch {epoch}/{self.total_epochs} {_format(metrics)}", file=self.stream, flush=True)

    def message(self, text: str) -> None:
        if self.enabled:
            self.close()
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
