"""What a report is made of: typed sections that families (built-in or third-party) contribute.

These types are part of the plugin contract; plugins import them from :mod:`zoo.family`. A section is
data (text, tables, PNG images); the HTML writer escapes and lays it out, so a family never writes HTML.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np


@dataclass
class ReportTable:
    """A table: column names and rows of cells (numbers are formatted, the rest shown as text)."""

    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    caption: str = ""
    #: Rows whose index is here are highlighted (for example the options that differ between runs).
    highlight: Sequence[int] = ()
    #: One key per row: clicking a column sorts the rows within their key, keys kept in order (the leaderboard
    #: sorts accuracy among accuracies, never against a loss). Empty: the whole table sorts as one.
    groups: Sequence[str] = ()


@dataclass
class ReportImage:
    """A PNG picture, embedded in the page as base64."""

    png: bytes
    caption: str = ""

    @classmethod
    def from_file(cls, path: str | Path, caption: str = "") -> ReportImage:
        """A PNG file (a run's sample grid, say)."""
        return cls(Path(path).read_bytes(), caption)

    @classmethod
    def from_pixels(cls, pixels: np.ndarray, caption: str = "", columns: int | None = None) -> ReportImage:
        """A grid of N×C×H×W images with pixels in [0, 1] (see :func:`zoo.toolkit.images.grid`)."""
        from PIL import Image

        from zoo.toolkit.images import grid

        buffer = io.BytesIO()
        Image.fromarray(grid(pixels, columns)).save(buffer, format="PNG")
        return cls(buffer.getvalue(), caption)

    @classmethod
    def series(cls, folder: str | Path, label: str, limit: int = 6) -> list[ReportImage]:
        """Up to ``limit`` PNGs of ``folder`` (``epoch-NNN.png``), evenly spread from first to last."""
        files = sorted(Path(folder).glob("*.png")) if Path(folder).is_dir() else []
        if len(files) > limit:
            files = [files[round(i * (len(files) - 1) / (limit - 1))] for i in range(limit)]
        return [cls.from_file(f, f"{label}: {f.stem}") for f in files]


@dataclass
class ReportSection:
    """One titled part of a report: paragraphs of text, then tables, then images."""

    title: str
    text: str = ""
    tables: list[ReportTable] = field(default_factory=list)
    images: list[ReportImage] = field(default_factory=list)


@dataclass(frozen=True)
class ReportContext:
    """What :meth:`zoo.family.Family.report_sections` gets: the run's folder and files as read, and
    :meth:`model_and_data` to load the trained model (eval mode, CPU) and its data when a section needs them.

    Frozen like :class:`zoo.family.RunContext`, but its own type: a report is written after training, in
    another process, often for a run that stopped or broke, so there is no device, world or position, and the
    model and data are loaded only if a section asks for them.
    """

    run_dir: Path
    config: Mapping[str, Any]
    summary: Mapping[str, Any] | None
    metrics: Sequence[Mapping[str, Any]]
    loader: Callable[[], tuple[Any, Any]] | None = field(default=None, repr=False)
    _loaded: list[tuple[Any, Any]] = field(default_factory=list, init=False, repr=False, compare=False)

    @property
    def hyperparameters(self) -> Mapping[str, Any]:
        """The run's resolved hyperparameters (``config.json``), as ``RunContext.hyperparameters`` had them."""
        return MappingProxyType(dict(self.config.get("hyperparameters") or {}))

    def model_and_data(self) -> tuple[Any, Any]:
        """``(model, DataSplits)``; raises ``zoo.errors.ZooError`` when the run has no trained weights."""
        from zoo.errors import ZooError

        if not self._loaded:
            if self.loader is None:
                raise ZooError(f"{self.run_dir} has no trained weights (the run did not finish); "
                               f"zoo train --resume {self.run_dir} finishes it")
            self._loaded.append(self.loader())
        return self._loaded[0]
