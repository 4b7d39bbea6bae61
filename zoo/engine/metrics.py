"""Metrics on disk: one JSON line and one CSV row per epoch; TensorBoard and MLflow too when asked for."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.runs import METRICS

METRICS_CSV = "metrics.csv"


class MetricsLog:
    """Appends epoch rows to ``metrics.jsonl`` and ``metrics.csv`` (and TensorBoard scalars)."""

    def __init__(self, run_dir: Path, tensorboard: bool = False, mlflow: bool = False) -> None:
        self.jsonl = run_dir / METRICS
        self.csv = run_dir / METRICS_CSV
        self.writer: Any = None
        if tensorboard:
            self.writer = tensorboard_writer()(str(run_dir / "tensorboard"))
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
