"""`zoo report --leaderboard`: every run and bundle in one sortable table (HTML) and as CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from zoo.reports import html
from zoo.reports.report import bench_latency
from zoo.reports.runs_table import lower_is_better, run_row
from zoo.reports.sections import ReportSection, ReportTable
from zoo.reports.sources import BundleRecord, bundles_of, is_smoke, scan_bundles, scan_runs

#: Batch sizes whose latency the leaderboard shows (from each bundle's ``bench.json``).
LATENCY_BATCHES = (1, 64)
BASE_COLUMNS = ["model", "family", "data", "run", "status", "metric", "value", "params", "bundle", "parity", "kind",
                "rank"]
#: Where the columns the ranking reads sit in a row.
_METRIC, _VALUE, _KIND, _RANK = (BASE_COLUMNS.index(c) for c in ("metric", "value", "kind", "rank"))


def _parity(bundle: BundleRecord | None) -> str:
    if bundle is None:
        return "not exported"
    return {True: "passed", False: "failed", None: "not verified"}[bundle.parity_passed]


def _runtimes(bundles: list[BundleRecord]) -> list[str]:
    return sorted({provider for b in bundles for (_, provider, _) in bench_latency(b)})


def _latency_cells(bundle: BundleRecord | None, runtimes: list[str]) -> list[float | None]:
    """p50 ms per runtime and batch, of the bundle's first fp32 graph (its main graph)."""
    if bundle is None:
        return [None] * (len(runtimes) * len(LATENCY_BATCHES))
    graphs = bundle.manifest.graphs if bundle.manifest else {}
    main = next((n for n, e in graphs.items() if e.variant == "fp32"), None)
    latency = bench_latency(bundle)
    return [latency.get((main, r, b)) for r in runtimes for b in LATENCY_BATCHES]


def leaderboard(root: str | Path = "runs", exports: str | Path = "exports") -> ReportTable:
    """A row per (run, bundle) pair: runs without a bundle and bundles whose run is elsewhere included."""
    runs, bundles = scan_runs(root), scan_bundles(exports)
    runtimes = _runtimes(bundles)
    columns = BASE_COLUMNS + [f"{r} ms b{b}" for r in runtimes for b in LATENCY_BATCHES]
    rows: list[list[Any]] = []
    claimed: set[Path] = set()
    for run in runs:
        row = run_row(run, bundles)
        mine = bundles_of(run, bundles) or [None]
        for bundle in mine:
            if bundle is not None:
                claimed.add(bundle.path)
            rows.append([run.model or "?", run.family or "?", run.dataset or "?", run.name, row.status, row.monitor,
                         row.value, row.params, bundle.path.name if bundle else None, _parity(bundle),
                         "smoke" if is_smoke(run.config) else "full", None, *_latency_cells(bundle, runtimes)])
    for bundle in bundles:
        if bundle.path in claimed:
            continue
        m = bundle.manifest
        rows.append([m.model if m else "?", m.family if m else "?", bundle.dataset or "?", bundle.run_id,
                     "bundle only" if not bundle.error else f"unreadable: {bundle.error}", None, None, None,
                     bundle.path.name, _parity(bundle) if not bundle.error else "unreadable", "bundle only", None,
                     *_latency_cells(bundle if not bundle.error else None, runtimes)])
    rows = ranked(rows)
    return ReportTable(columns, rows, caption=f"runs under {root}, bundles under {exports}",
                       groups=[group_of(row) for row in rows])


def group_of(row: list[Any]) -> str:
    """The row's group: its metric, full runs before smoke runs (rows without a metric last)."""
    order = {"full": "0", "smoke": "1"}.get(row[_KIND], "2")
    return f"{row[_METRIC] or '~'}|{order}"


def ranked(rows: list[list[Any]]) -> list[list[Any]]:
    """Rows grouped by metric (full runs, then smoke runs, which are never ranked), best first within a group in
    the metric's own sense (higher accuracy, lower loss or NELBO); ``rank`` numbers the full runs of a metric."""
    def best_first(row: list[Any]) -> tuple[str, float]:
        value = row[_VALUE]
        if not isinstance(value, (int, float)):
            return group_of(row), float("inf")
        return group_of(row), float(value) if lower_is_better(row[_METRIC] or "") else -float(value)

    rows = sorted(rows, key=best_first)
    counts: dict[str, int] = {}
    for row in rows:
        if row[_KIND] == "full" and isinstance(row[_VALUE], (int, float)) and row[_METRIC]:
            counts[row[_METRIC]] = counts.get(row[_METRIC], 0) + 1
            row[_RANK] = counts[row[_METRIC]]
    return rows


def write_leaderboard(out: str | Path, root: str | Path = "runs", exports: str | Path = "exports",
                      csv_out: str | Path | None = None) -> ReportTable:
    """The leaderboard page at ``out`` (and the same table as CSV at ``csv_out``); the table."""
    from zoo.atomic import write_bytes

    table = leaderboard(root, exports)
    text = ("Rows are grouped by metric (each run's family's monitored metric): sorting a column sorts within each "
            "metric, never an accuracy against a loss, and `rank` numbers the full runs of a metric best first in "
            "its own sense. Smoke runs (`--smoke`: 3 batches an epoch) follow the full runs of their metric, "
            "unranked. Click a column to sort. Latency is ONNX Runtime p50 in milliseconds of the bundle's main "
            "graph, from `zoo bench BUNDLE --save` (empty when not measured).")
    page = html.page("zoo leaderboard", f"{len(table.rows)} rows", [ReportSection("Leaderboard", text, [table])])
    write_bytes(Path(out), page.encode("utf-8"))
    if csv_out:
        write_bytes(Path(csv_out), to_csv(table).encode("utf-8"))
    return table


def to_csv(table: ReportTable) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(table.columns)
    writer.writerows(["" if v is None else v for v in row] for row in table.rows)
    return buffer.getvalue()
