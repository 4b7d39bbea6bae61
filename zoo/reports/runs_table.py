"""`zoo runs`: one row per run folder, the comparison of a few runs, and a plot of their curves (no torch)."""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.reports.sources import (
    BundleRecord,
    RunRecord,
    bundles_of,
    planned_epochs,
    read_run,
    scan_bundles,
    scan_runs,
)

#: Metric names that are better when smaller: ``--sort`` puts the smallest first for these.
_LOWER_IS_BETTER = ("loss", "nll", "nelbo", "_fd", "fd_", "mse", "mae", "kl", "seconds", "time", "step")
#: Monitored metric of the built-in families, for runs that stopped before writing their summary.
_FALLBACK_MONITORS = ("val_accuracy", "sample_confident", "val_nelbo", "val_loss")


@dataclass
class RunRow:
    """One line of `zoo runs` (and of `--json`)."""

    run: str
    path: str
    status: str
    detail: str
    model: str | None
    family: str | None
    dataset: str | None
    epochs: str
    steps: int | None
    monitor: str | None
    value: float | None
    params: int | None
    seconds: float | None
    exports: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    plugin: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lower_is_better(metric: str) -> bool:
    return any(part in metric.lower() for part in _LOWER_IS_BETTER)


def monitor_of(run: RunRecord) -> str | None:
    """The family's monitored metric: from the summary, else the first known one the run logged."""
    if run.summary and run.summary.get("monitor"):
        return str(run.summary["monitor"])
    metrics = run.final_metrics()
    return next((m for m in _FALLBACK_MONITORS if m in metrics), None)


def run_row(run: RunRecord, bundles: list[BundleRecord]) -> RunRow:
    """The table row of ``run``, with the bundles (from ``bundles``) that name it."""
    metrics = run.final_metrics()
    monitor = monitor_of(run)
    planned = run.planned_epochs
    epochs = f"{run.epoch or 0}/{planned}" if run.status != "finished" and planned else str(planned or "-")
    exports = [{"bundle": str(b.path), "verified": b.parity_passed} for b in bundles_of(run, bundles)]
    return RunRow(run.name, str(run.path), run.status, run.detail, run.model, run.family, run.dataset, epochs,
                  run.step, monitor, metrics.get(monitor) if monitor else None, run.params, run.seconds,
                  exports, metrics, run.plugin)


def list_runs(root: str | Path = "runs", pattern: str = "*", exports: str | Path = "exports",
              sort: str | None = None) -> list[RunRow]:
    """Rows for the runs under ``root`` whose folder name or model matches ``pattern``."""
    bundles = scan_bundles(exports)
    rows = [run_row(r, bundles) for r in scan_runs(root)
            if fnmatch.fnmatch(r.name, pattern) or fnmatch.fnmatch(r.model or "", pattern)]
    return sort_rows(rows, sort) if sort else rows


def sort_rows(rows: list[RunRow], metric: str) -> list[RunRow]:
    """Best first by ``metric`` (a metric, or ``value``, ``params``, ``seconds``, ``steps``); runs without it last."""
    columns = ("value", "params", "seconds", "steps")

    def value(row: RunRow) -> float | None:
        got = getattr(row, metric, None) if metric in columns else row.metrics.get(metric)
        return got if isinstance(got, (int, float)) else None

    known = [r for r in rows if value(r) is not None]
    if not known and rows:
        names = sorted({m for r in rows for m in r.metrics})
        raise ZooError(f"no run has metric {metric!r} to sort by; try value, params, seconds or one of: "
                       f"{', '.join(names) or '(no metrics yet)'}")
    if metric == "value":  # each run's monitored metric, best first in its own sense (min or max)
        known.sort(key=lambda r: value(r) if lower_is_better(r.monitor or "") else -value(r))  # type: ignore[operator]
    else:
        known.sort(key=lambda r: value(r), reverse=not lower_is_better(metric))  # type: ignore[arg-type, return-value]
    return known + [r for r in rows if value(r) is None]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def status_text(row: RunRow) -> str:
    if row.status == "stopped":
        return f"stopped@{row.steps} (resumable)"
    if row.status == "running":
        return f"running@{row.steps or 0}"
    if row.status == "finished" and row.detail:
        return f"finished ({row.detail.replace('ended by ', '')})"
    return row.status


def export_text(row: RunRow) -> str:
    if not row.exports:
        return "-"
    marks = {True: "verified", False: "PARITY FAILED", None: "not verified"}
    return "; ".join(f"{e['bundle']} ({marks[e['verified']]})" for e in row.exports)


def format_table(rows: list[RunRow]) -> str:
    """The rows as aligned text columns, then one line per broken run saying what is wrong."""
    header = ("RUN", "MODEL", "PLUGIN", "FAMILY", "DATA", "EPOCHS", "STEPS", "STATUS", "METRIC", "PARAMS", "TIME",
              "EXPORTED")
    lines = [header]
    for r in rows:
        metric = f"{r.monitor}={_fmt(r.value)}" if r.monitor else "-"
        params = f"{r.params:,}" if r.params is not None else "-"
        seconds = f"{r.seconds:.1f}s" if r.seconds is not None else "-"
        lines.append((r.run, _fmt(r.model), _fmt(r.plugin), _fmt(r.family), _fmt(r.dataset), r.epochs, _fmt(r.steps),
                      status_text(r), metric, params, seconds, export_text(r)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    notes = [f"{r.run}: {r.status}: {r.detail}" for r in rows if r.status in ("failed", "unreadable")]
    return "\n".join(text + notes)


# --- comparing a few runs -------------------------------------------------------------------------

@dataclass
class Comparison:
    """Runs side by side: ``metrics`` and ``options`` rows are (name, value per run, differs)."""

    runs: list[str]
    metrics: list[tuple[str, list[Any], bool]]
    options: list[tuple[str, list[Any], bool]]

    def to_dict(self) -> dict[str, Any]:
        def rows(items: list[tuple[str, list[Any], bool]]) -> list[dict[str, Any]]:
            return [{"name": n, "values": v, "differs": d} for n, v, d in items]

        return {"runs": self.runs, "metrics": rows(self.metrics), "options": rows(self.options)}


def resolve_runs(names: list[str], root: str | Path) -> list[RunRecord]:
    """Runs named by folder (a path, or a name under ``root``); an unknown one is a ZooError."""
    records = []
    for name in names:
        path = Path(name)
        if not path.is_dir():
            path = Path(root) / name
        if not path.is_dir():
            raise ZooError(f"run {name!r} not found (neither a folder nor a run under {root}); `zoo runs` lists them")
        records.append(read_run(path))
    return records


def flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = value


def run_options(run: RunRecord) -> dict[str, Any]:
    """The options that shaped a run, flattened (``hyperparameters.lr``, ``model_args.width``, ...)."""
    out: dict[str, Any] = {}
    config = run.config
    for key in ("model", "family", "dataset", "seed", "device", "world_size"):
        if key in config:
            out[key] = config[key]
    for key in ("hyperparameters", "model_args", "data_options"):
        flatten(key, config.get(key, {}), out)
    if "hyperparameters.epochs" in out and planned_epochs(config) is not None:
        out["hyperparameters.epochs"] = planned_epochs(config)  # a --smoke run trains 2, whatever the default
    skip = {"model", "dataset", "seed", "device", "out", "hp", "args", "progress", "epochs", "batch_size", "lr",
            "optimizer"}
    for key, value in (config.get("options") or {}).items():
        if key not in skip:
            out[f"options.{key}"] = value
    return out


def compare(runs: list[RunRecord]) -> Comparison:
    """Final metrics and options of ``runs`` side by side, each row marked when the runs differ."""
    if len(runs) < 2:
        raise ZooError("--compare needs at least two runs")

    def rows(per_run: list[dict[str, Any]]) -> list[tuple[str, list[Any], bool]]:
        names = sorted({k for values in per_run for k in values})
        out = []
        for name in names:
            values = [values.get(name) for values in per_run]
            out.append((name, values, any(repr(v) != repr(values[0]) for v in values)))
        return out

    metrics = [{"status": r.status, "steps": r.step, "params": r.params, **r.final_metrics()} for r in runs]
    return Comparison([r.name for r in runs], rows(metrics), rows([run_options(r) for r in runs]))


def format_comparison(comparison: Comparison, color: bool = False) -> str:
    """Two blocks (metrics, options); rows that differ start with ``*`` (and are bold yellow with ``color``)."""
    import click

    lines: list[str] = []
    for title, rows in (("metrics", comparison.metrics), ("options", comparison.options)):
        table = [(title.upper(), *comparison.runs)] + [(n, *(_fmt(v) for v in vals)) for n, vals, _ in rows]
        widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
        marks = [" "] + ["*" if differs else " " for _, _, differs in rows]
        for mark, row in zip(marks, table, strict=True):
            text = mark + " " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            lines.append(click.style(text, fg="yellow", bold=True) if color and mark == "*" else text)
        lines.append("")
    lines.append("* differs between the runs")
    return "\n".join(lines)


def plot_curves(runs: list[RunRecord], out: str | Path, max_metrics: int = 6) -> Path | None:
    """One PNG: a panel per metric the runs logged (shared ones first), a line per run; None without data."""
    logged = [{k for row in r.metrics for k, v in row.items() if isinstance(v, (int, float))} - {"epoch", "step"}
              for r in runs]
    if not any(logged):
        return None
    counts: dict[str, int] = {}
    for names in logged:
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    names = sorted(counts, key=lambda n: (-counts[n], "loss" not in n, n))[:max_metrics]
    from PIL import Image

    from zoo.atomic import atomic_write
    from zoo.plots import line_chart

    panel = (420, 300)
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    sheet = Image.new("RGB", (panel[0] * columns, panel[1] * rows), "white")
    for index, name in enumerate(names):
        lines = {run.name: [(row["epoch"], row[name]) for row in run.metrics if isinstance(row.get(name), (int, float))]
                 for run in runs}
        chart = line_chart(name, {run: points for run, points in lines.items() if points}, size=panel)
        sheet.paste(chart, ((index % columns) * panel[0], (index // columns) * panel[1]))
    out = Path(out)
    atomic_write(out, lambda tmp: sheet.save(tmp, format="PNG"))
    return out
