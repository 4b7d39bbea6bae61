"""`zoo report --leaderboard`: every run and bundle in one sortable table (HTML) and as CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from zoo.reports import html
from zoo.reports.report import bench_latency
from zoo.reports.runs_table import run_row
from zoo.reports.sections import ReportSection, ReportTable
from zoo.reports.sources import BundleRecord, bundles_of, scan_bundles, scan_runs

#: Batch sizes whose latency the leaderboard shows (from each bundle's ``bench.json``).
LATENCY_BATCHES = (1, 64)
BASE_COLUMNS = ["model", "family", "data", "run", "status", "metric", "value", "params", "bundle", "parity"]


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
                         *_latency_cells(bundle, runtimes)])
    for bundle in bundles:
        if bundle.path in claimed:
            continue
        m = bundle.manifest
        rows.append([m.model if m else "?", m.family if m else "?", bundle.dataset or "?", bundle.run_id,
                     "bundle only" if not bundle.error else f"unreadable: {bundle.error}", None, None, None,
                     bundle.path.name, _parity(bundle) if not bundle.error else "unreadable",
                     *_latency_cells(bundle if not bundle.error else None, runtimes)])
    return ReportTable(columns, rows, caption=f"runs under {root}, bundles under {exports}")


def write_leaderboard(out: str | Path, root: str | Path = "runs", exports: str | Path = "exports",
                      csv_out: str | Path | None = None) -> ReportTable:
    """The leaderboard page at ``out`` (and the same table as CSV at ``csv_out``); the table."""
    from zoo.atomic import write_bytes

    table = leaderboard(root, exports)
    text = ("Click a column to sort. Latency is ONNX Runtime p50 in milliseconds of the bundle's main graph, "
            "from `zoo bench BUNDLE --save` (empty when not measured).")
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
