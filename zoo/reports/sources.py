"""The one place reports read run folders and bundles (as files: no torch, no ONNX Runtime).

File names come from :mod:`zoo.run_layout` (run folders) and ``zoo.bundles.manifest`` (bundles), neither of which
imports torch; a bundle's manifest and parity report
are read as the typed :class:`~zoo.bundles.Manifest` and :class:`~zoo.bundles.ParityReport`.

Every reader here returns a record and never raises on a broken folder: a half-written or garbage
run is a record with status ``unreadable`` and the reason, so a table over many runs cannot crash.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.bundles.manifest import CARD, MANIFEST, PARITY, Manifest, ParityReport, parse_manifest
from zoo.errors import ZooError
from zoo.locks import is_locked
from zoo.run_layout import CHECKPOINT_STATE, CHECKPOINTS, CONFIG, LAST, METRICS, SUMMARY, WEIGHTS

__all__ = ["BENCH", "BundleRecord", "RunRecord", "bundles_of", "load_for_report", "read_bundle",
           "read_metrics", "read_run", "scan_bundles", "scan_runs"]

#: Latency measured by ``zoo bench BUNDLE --save`` (not part of the manifest: it is machine-specific).
BENCH = "bench.json"
#: State-dict entries that are statistics, not parameters.
_NOT_PARAMETERS = ("running_mean", "running_var", "num_batches_tracked")

FINISHED, STOPPED, FAILED, UNREADABLE = "finished", "stopped", "failed", "unreadable"
#: A run whose lock a live process holds right now (``zoo.locks.is_locked``): it is training.
RUNNING = "running"


@dataclass
class RunRecord:
    """What a run folder says about itself; ``status`` is running, finished, stopped, failed or unreadable."""

    path: Path
    status: str
    detail: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    step: int | None = None
    epoch: int | None = None
    params: int | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model(self) -> str | None:
        return self.config.get("model") or (self.summary or {}).get("model")

    @property
    def family(self) -> str | None:
        return self.config.get("family") or (self.summary or {}).get("family")

    @property
    def plugin(self) -> str | None:
        """The plugin whose model the run trained (runs before it was recorded: unknown)."""
        return self.config.get("plugin")

    @property
    def dataset(self) -> str | None:
        return self.config.get("dataset") or (self.summary or {}).get("dataset")

    @property
    def planned_epochs(self) -> int | None:
        """Epochs the run trains for: the summary's, else what the config resolved (``--smoke`` included)."""
        for value in ((self.summary or {}).get("epochs"), planned_epochs(self.config)):
            if _count(value):
                return int(value)
        return None

    @property
    def seconds(self) -> float | None:
        value = (self.summary or {}).get("seconds")
        return float(value) if _number(value) else None  # a forged summary ("soon") shows as unknown

    def final_metrics(self) -> dict[str, float]:
        """The summary's metrics (finished runs), else the last logged epoch's."""
        if self.summary and isinstance(self.summary.get("metrics"), dict):
            return {k: v for k, v in self.summary["metrics"].items() if _number(v)}
        last = self.metrics[-1] if self.metrics else {}
        return {k: v for k, v in last.items() if _number(v) and k not in ("epoch", "step")}


@dataclass
class BundleRecord:
    """A bundle's typed manifest and parity report, card and saved benchmark; ``error`` when it cannot be read
    (then ``manifest`` is None)."""

    path: Path
    manifest: Manifest | None = None
    parity: ParityReport | None = None
    card: str | None = None
    bench: dict[str, Any] | None = None
    error: str | None = None

    @property
    def run_id(self) -> str | None:
        return self.manifest.run.get("id") if self.manifest else None

    @property
    def run_dir(self) -> Path | None:
        where = self.manifest.run.get("dir") if self.manifest else None
        return Path(where) if where else None

    @property
    def parity_passed(self) -> bool | None:
        return self.manifest.parity_passed if self.manifest else None

    @property
    def dataset(self) -> str | None:
        return self.manifest.data.get("dataset") if self.manifest else None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


#: Epochs of a ``--smoke`` run (``zoo.engine``'s smoke mode), whatever the model's default says.
SMOKE_EPOCHS = 2


def is_smoke(config: dict[str, Any]) -> bool:
    """Was the run a ``--smoke`` run (3 batches an epoch: its metrics say nothing about the model)?"""
    options = config.get("options") if isinstance(config.get("options"), dict) else {}
    return bool(options.get("smoke") or config.get("smoke"))


def planned_epochs(config: dict[str, Any]) -> int | None:
    """Epochs a run's config asks for: ``--smoke`` runs train 2, whatever the hyperparameters' default."""
    if is_smoke(config):
        return SMOKE_EPOCHS
    epochs = (config.get("hyperparameters") or {}).get("epochs")
    return int(epochs) if _count(epochs) else None


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Rows of ``metrics.jsonl``; a torn last line (a killed write) is dropped, other garbage raises ValueError."""
    if not path.exists():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    rows = []
    for index, line in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if index == len(lines) - 1:
                break
            raise ValueError(f"{path.name} line {index + 1} is not JSON") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path.name} line {index + 1} is not a JSON object")
        rows.append(row)
    return rows


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (tensor names, shapes and the metadata), read without torch."""
    with path.open("rb") as handle:
        size_bytes = handle.read(8)
        if len(size_bytes) != 8:
            raise ValueError(f"{path.name} is truncated")
        (size,) = struct.unpack("<Q", size_bytes)
        if size > 100_000_000 or size > path.stat().st_size:
            raise ValueError(f"{path.name} has a header of impossible size")
        header = json.loads(handle.read(size))
    if not isinstance(header, dict):
        raise ValueError(f"{path.name} has no header")
    return header


def count_parameters(header: dict[str, Any], prefix: str = "") -> int:
    """Sum of the element counts of the weights in a safetensors header (statistics left out)."""
    total = 0
    for name, entry in header.items():
        if name == "__metadata__" or not name.startswith(prefix) or name.endswith(_NOT_PARAMETERS):
            continue
        count = 1
        for dim in entry.get("shape", []):
            count *= int(dim)
        total += count
    return total


def read_run(path: str | Path) -> RunRecord:
    """Everything the run folder ``path`` tells about itself; never raises."""
    path = Path(path)
    try:
        return _read_run(path)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        return RunRecord(path, UNREADABLE, f"{type(exc).__name__}: {exc}")


def _read_run(path: Path) -> RunRecord:
    if not (path / CONFIG).exists():
        return RunRecord(path, UNREADABLE, f"no {CONFIG} (not a run, or killed before it started)")
    config = _json(path / CONFIG)
    if not isinstance(config, dict):
        raise ValueError(f"{CONFIG} is not a JSON object")
    metrics = read_metrics(path / METRICS)
    record = RunRecord(path, FAILED, config=config, metrics=metrics)
    if metrics:
        record.epoch, record.step = metrics[-1].get("epoch"), metrics[-1].get("step")
    last = path / CHECKPOINTS / LAST
    if (path / SUMMARY).exists() and (path / WEIGHTS).exists():
        record.summary = _json(path / SUMMARY)
        record.status = FINISHED
        record.step = record.summary.get("steps", record.step)
        stopped = record.summary.get("stopped", "completed")
        record.detail = "" if stopped == "completed" else f"ended by {stopped}"
        record.params = count_parameters(safetensors_header(path / WEIGHTS))
        if not isinstance(record.summary, dict):
            raise ValueError(f"{SUMMARY} is not a JSON object")
    elif last.exists():
        header = safetensors_header(last)
        state = json.loads((header.get("__metadata__") or {}).get(CHECKPOINT_STATE, "{}"))
        record.status, record.step, record.epoch = STOPPED, state.get("step"), state.get("epoch")
        record.detail = f"stopped at step {record.step}, resumable: zoo train --resume {path}"
        record.params = count_parameters(header, "model/")
    else:
        record.detail = "no checkpoint and no weights: it failed or was killed before its first checkpoint"
    if record.status != FINISHED and is_locked(path):  # a live process holds the run's lock: it is training
        record.status = RUNNING
        record.detail = f"training right now (a live zoo process holds its lock), at step {record.step or 0}"
    return record


def is_run_dir(path: Path) -> bool:
    """Every visible folder under the runs root counts (a folder without a config is listed as unreadable)."""
    return path.is_dir() and not path.name.startswith(".")


def scan_runs(root: str | Path) -> list[RunRecord]:
    """Every folder directly under ``root`` as a run record (sorted by name)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [read_run(p) for p in sorted(root.iterdir(), key=lambda p: p.name) if is_run_dir(p)]


def read_bundle(path: str | Path) -> BundleRecord:
    """A bundle's files as records; never raises. The manifest is parsed and checked as ``Bundle.open`` does,
    but file hashes are not computed (listing many bundles stays cheap): ``zoo verify`` checks them."""
    path = Path(path)
    record = BundleRecord(path)
    try:
        record.manifest = parse_manifest(_json(path / MANIFEST), path / MANIFEST)
        if (path / PARITY).exists():
            record.parity = ParityReport.from_dict(_json(path / PARITY))
        if (path / CARD).exists():
            record.card = (path / CARD).read_text()
        if (path / BENCH).exists():
            record.bench = _json(path / BENCH)
    except (OSError, ValueError, TypeError, ZooError) as exc:
        record.manifest, record.parity = None, None
        record.error = str(exc) if isinstance(exc, ZooError) else f"{type(exc).__name__}: {exc}"
    return record


def scan_bundles(exports: str | Path) -> list[BundleRecord]:
    """Every bundle (a folder with a manifest) directly under ``exports``."""
    exports = Path(exports)
    if not exports.is_dir():
        return []
    return [read_bundle(p) for p in sorted(exports.iterdir(), key=lambda p: p.name)
            if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).exists()]


def bundles_of(run: RunRecord, bundles: list[BundleRecord]) -> list[BundleRecord]:
    """The bundles whose manifest names this run (by folder, or by run id when the run moved)."""
    mine = []
    for bundle in bundles:
        if bundle.error:
            continue
        same_dir = bundle.run_dir is not None and _same(bundle.run_dir, run.path)
        if same_dir or (bundle.run_id == run.name and bundle.run_id):
            mine.append(bundle)
    return mine


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def load_for_report(run_dir: Path) -> tuple[Any, Any]:
    """The trained model (eval mode, CPU) and the run's data splits, for family report sections (imports torch)."""
    from zoo.data import load_run_data
    from zoo.runs import Run

    run = Run.open(run_dir)
    return run.model.cpu().eval(), load_run_data(run.config)
