"""Progress: a live bar in a terminal, one plain line per epoch elsewhere (CI logs, files)."""

from __future__ import annotations

import sys
from typing import Any, TextIO


def _format(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in metrics.items())


class Progress:
    """Reports training progress to ``stream`` (stderr by default)."""

    def __init__(self, total_epochs: int, steps_per_epoch: int, *, enabled: bool = True,
                 stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.total_epochs = total_epochs
        self.steps_per_epoch = steps_per_epoch
        self.live = enabled and self.stream.isatty()
        self._bar: Any = None

    def start_epoch(self, epoch: int) -> None:
        if self.live:
            from tqdm import tqdm

            self._bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {epoch}/{self.total_epochs}",
                             file=self.stream, leave=False, dynamic_ncols=True)

    def step(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def end_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.enabled:
            print(f"epoch {epoch}/{self.total_epochs} {_format(metrics)}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
