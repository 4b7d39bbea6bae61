"""What a run folder needs after a crash or a ``kill -9``: metrics repaired, and no empty run left behind."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.engine.checkpoint import FOLDER
from zoo.runs import METRICS


def repair_metrics(run_dir: Path, step: int) -> None:
    """Make ``metrics.jsonl`` and ``metrics.csv`` hold exactly the epochs up to ``step`` (the checkpoint's).

    A torn last line (the process died while appending), rows logged after the checkpoint and
    repeated epochs are dropped; the CSV is rewritten from the JSON lines whenever they differ.
    """
    from zoo.atomic import write_bytes
    from zoo.engine.metrics import METRICS_CSV

    jsonl = run_dir / METRICS
    if not jsonl.exists():
        (run_dir / METRICS_CSV).unlink(missing_ok=True)  # rows without their JSON lines: none can be trusted
        return
    lines = jsonl.read_bytes().split(b"\n")
    kept: list[dict[str, Any]] = []
    seen: set[Any] = set()
    for line in lines:
        row = _row(line)
        if row is None or row.get("step", 0) > step or row.get("epoch") in seen:
            continue
        seen.add(row.get("epoch"))
        kept.append(row)
    text = "".join(json.dumps(row) + "\n" for row in kept)
    if text.encode() != jsonl.read_bytes():
        write_bytes(jsonl, text.encode())
    buffer = io.StringIO()
    if kept:
        writer = csv.DictWriter(buffer, fieldnames=list(kept[0]), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
    csv_path = run_dir / METRICS_CSV
    if not csv_path.exists() or csv_path.read_bytes() != buffer.getvalue().encode():
        write_bytes(csv_path, buffer.getvalue().encode())


def _row(line: bytes) -> dict[str, Any] | None:
    if not line.strip():
        return None
    try:
        row = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return row if isinstance(row, dict) else None


def discard_if_unsaved(run_dir: Path, finished: Callable[[], bool]) -> None:
    """A new run that stopped on an error before its first checkpoint is removed: nothing could resume it."""
    if finished() or any((run_dir / FOLDER).glob("*.safetensors")):
        return
    shutil.rmtree(run_dir, ignore_errors=True)
