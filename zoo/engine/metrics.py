"""Metrics on disk: one JSON line and one CSV row per epoch; TensorBoard too when asked for."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.runs import METRICS

METRICS_CSV = "metrics.csv"


class MetricsLog:
    """Appends epoch rows to ``metrics.jsonl`` and ``metrics.csv`` (and TensorBoard scalars)."""

    def __init__(self, run_dir: Path, tensorboard: bool = False) -> None:
        self.jsonl = run_dir / METRICS
        self.csv = run_dir / METRICS_CSV
        self.writer: Any = None
        if tensorboard:
            self.writer = tensorboard_writer()(str(run_dir / "tensorboard"))

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


def truncate_after(run_dir: Path, step: int) -> None:
    """Drop rows logged after ``step`` (written after the checkpoint a run resumes from)."""
    from zoo.atomic import write_bytes

    jsonl = run_dir / METRICS
    if not jsonl.exists():
        return
    rows = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    kept = [row for row in rows if row.get("step", 0) <= step]
    if len(kept) == len(rows):
        return
    write_bytes(jsonl, "".join(json.dumps(row) + "\n" for row in kept).encode())
    buffer = io.StringIO()
    if kept:
        writer = csv.DictWriter(buffer, fieldnames=list(kept[0]), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
    write_bytes(run_dir / METRICS_CSV, buffer.getvalue().encode())
