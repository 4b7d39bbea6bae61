"""`zoo report RUN_DIR|BUNDLE`: one self-contained HTML page about a run and the bundles made from it."""

from __future__ import annotations

import contextlib
import traceback
from pathlib import Path
from typing import Any

from zoo.bundles.manifest import MANIFEST
from zoo.errors import ZooError
from zoo.reports import html
from zoo.reports.curves import curve_images
from zoo.reports.runs_table import export_text, run_options, run_row, status_text
from zoo.reports.sections import ReportContext, ReportImage, ReportSection, ReportTable
from zoo.reports.sources import (
    BundleRecord,
    RunRecord,
    bundles_of,
    load_for_report,
    read_bundle,
    read_run,
    scan_bundles,
)
from zoo.run_layout import LOSS_CURVE

CARD_TITLE = "Model card"


def write_report(target: str | Path, out: str | Path | None = None, exports: str | Path = "exports") -> Path:
    """Write the report of a run folder or a bundle to ``out`` (default ``<name>.html`` here); its path."""
    target = Path(target)
    if not target.is_dir():
        raise ZooError(f"{target} is not a folder; pass a run folder (runs/...) or a bundle (exports/...)")
    if (target / MANIFEST).exists():
        bundle = read_bundle(target)
        if bundle.error:
            raise ZooError(f"bundle {target} cannot be read ({bundle.error}); export it again")
        run_dir = bundle.run_dir
        run = read_run(run_dir) if run_dir is not None and run_dir.is_dir() else None
        bundles = [bundle]
    else:
        run = read_run(target)
        if run.status == "unreadable":
            raise ZooError(f"{target} is not a readable run folder ({run.detail})")
        bundles = bundles_of(run, scan_bundles(exports))
    name = run.name if run is not None else target.name
    page = html.page(f"zoo report: {name}", _subtitle(run, bundles), report_sections(run, bundles),
                     markdown_titles=(CARD_TITLE,))
    from zoo.atomic import write_bytes

    out = Path(out) if out else Path(f"{target.name}.html")
    if out.parent and not out.parent.exists():
        raise ZooError(f"--out {out}: folder {out.parent} does not exist")
    write_bytes(out, page.encode("utf-8"))
    return out


def _subtitle(run: RunRecord | None, bundles: list[BundleRecord]) -> str:
    parts = []
    if run is not None:
        parts += [f"{run.model} ({run.family}) on {run.dataset}", str(run.path)]
    parts += [f"bundle {b.path}" for b in bundles]
    return " · ".join(parts)


def report_sections(run: RunRecord | None, bundles: list[BundleRecord]) -> list[ReportSection]:
    """Overview, options, curves, the family's own sections, then per bundle parity, variants, speed, card."""
    sections: list[ReportSection] = []
    if run is not None:
        sections += run_sections(run, bundles)
    for bundle in bundles:
        sections += bundle_sections(bundle)
    return sections


def run_sections(run: RunRecord, bundles: list[BundleRecord]) -> list[ReportSection]:
    row = run_row(run, bundles)
    metrics = run.final_metrics()
    overview = ReportSection("Overview", text=(
        f"Model {run.model}, family {run.family}, data {run.dataset}.\n"
        f"Status: {status_text(row)}{': ' + run.detail if run.detail and run.status != 'finished' else ''}.\n"
        f"Epochs {row.epochs}, steps {row.steps}, parameters {row.params if row.params is not None else '-'}, "
        f"time {row.seconds if row.seconds is not None else '-'} s.\n{best_text(run)}\nExported: {export_text(row)}."),
        tables=[ReportTable(["metric", "value"], sorted(metrics.items()), caption="final metrics"
                            + (f" (monitored: {row.monitor})" if row.monitor else ""),
                            highlight=[i for i, k in enumerate(sorted(metrics)) if k == row.monitor])])
    options = ReportSection("Options", tables=[ReportTable(["option", "value"],
                                                           [(k, _plain(v)) for k, v in run_options(run).items()])])
    curves = curve_images(run.metrics)
    if not curves and (run.path / LOSS_CURVE).exists():
        curves = [ReportImage.from_file(run.path / LOSS_CURVE, "curve: loss")]
    curve_section = ReportSection("Metric curves", text="" if curves else "No epoch has been logged yet.",
                                  images=curves)
    return [overview, options, curve_section, *family_sections(run)]


def best_text(run: RunRecord) -> str:
    """Where the best epoch was and which weights an export takes (the final ones, not the best checkpoint)."""
    summary = run.summary or {}
    best, monitor = summary.get("best"), summary.get("monitor")
    if isinstance(best, dict) and monitor in best and isinstance(best[monitor], (int, float)):
        where = f"Best {monitor} {best[monitor]:.4g} at epoch {best.get('epoch')} (checkpoints/best.safetensors)"
    else:
        where = "No best epoch recorded (no epoch was validated)"
    return f"{where}; a bundle holds the final weights (model.safetensors), not the best checkpoint."


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) or value is None else repr(value)


def family_sections(run: RunRecord) -> list[ReportSection]:
    """The sections the run's family contributes (a failing family is reported, never fatal)."""
    try:
        family = _family(run)
    except Exception as exc:
        return [ReportSection("Family sections", text=f"Not available: {exc}")]
    loader = (lambda: load_for_report(run.path)) if run.status == "finished" else None
    context = ReportContext(run.path, run.config, run.summary, run.metrics, loader=loader)
    try:
        with _no_grad():
            sections = list(family.report_sections(context))
    except ZooError as exc:
        return [ReportSection(f"{run.family} sections", text=f"Not available: {exc}")]
    except Exception as exc:
        tail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return [ReportSection(f"{run.family} sections", text=f"The family's report_sections failed: {tail}")]
    bad = [s for s in sections if not isinstance(s, ReportSection)]
    if bad:
        return [ReportSection(f"{run.family} sections",
                              text=f"The family's report_sections returned {type(bad[0]).__name__}, not ReportSection")]
    return sections


def _family(run: RunRecord) -> Any:
    from zoo.building import load_family
    from zoo.registry import get_spec

    config = run.config
    name = f"{config['plugin']}:{config['model']}" if config.get("plugin") else config["model"]
    return load_family(get_spec(name).family)


@contextlib.contextmanager
def _no_grad() -> Any:
    import torch

    with torch.no_grad():
        yield


def bundle_sections(bundle: BundleRecord) -> list[ReportSection]:
    """Parity per graph and provider, the variants' accuracy and speed, and the model card."""
    name, m = bundle.path.name, bundle.manifest
    if m is None:
        return [ReportSection(f"Bundle: {name}", text=f"Unreadable: {bundle.error}")]
    graphs = [[g, e.variant, ", ".join(e.input_names), ", ".join(e.output_names), e.atol, e.rtol, len(e.test_sets)]
              for g, e in m.graphs.items()]
    sections = [
        ReportSection(f"Bundle: {name}", text=(
            f"{m.model} ({m.family}) trained on {bundle.dataset}, run {bundle.run_id}; exported with "
            f"{m.data.get('exporter')} at opset {m.data.get('opset_requested')}.\nWeights: the run's final "
            f"model.safetensors (sha256 {str(m.run.get('weights_sha256', '?'))[:16]}…), not its best checkpoint."
            f"\nFolder: {bundle.path}"),
            tables=[ReportTable(["graph", "variant", "inputs", "outputs", "atol", "rtol", "test sets"], graphs)]),
        ReportSection(f"Parity: {name}", text=_parity_text(bundle), tables=parity_tables(bundle)),
    ]
    variants = variant_table(bundle)
    if variants is not None:
        sections.append(ReportSection(f"Variants: {name}", tables=[variants]))
    speed = speed_table(bundle)
    sections.append(ReportSection(f"Speed: {name}", tables=[speed] if speed else [], text="" if speed else
                                  f"Not measured: `zoo bench {bundle.path} --save` stores the timings in the bundle."))
    if bundle.card:
        sections.append(ReportSection(CARD_TITLE, text=bundle.card))
    return sections


def _parity_text(bundle: BundleRecord) -> str:
    if bundle.parity is None:
        return "Not verified at export (no parity report in the bundle)."
    verdict = "passed" if bundle.parity.passed else "FAILED"
    extra = "".join(f"\n{p} skipped: {why}" for p, why in bundle.parity.skipped_providers.items())
    dropped = bundle.parity.data.get("dropped_variants") or {}
    extra += "".join(f"\n{g} failed its gate and was left out of the bundle: {d.get('reason', '')}"
                     for g, d in dropped.items() if isinstance(d, dict))
    return (f"Parity against PyTorch {verdict}. Max abs diff counts the judged input sets only; a variant's "
            f"random-input sets against fp32 are shown in parity.json but not judged (column 'judged sets').{extra}")


def parity_tables(bundle: BundleRecord) -> list[ReportTable]:
    """One table: a row per graph and provider."""
    if bundle.parity is None:
        return []
    rows = []
    for graph, providers in bundle.parity.graphs.items():
        for provider, result in (providers.items() if isinstance(providers, dict) else ()):
            if not isinstance(result, dict):
                continue
            judged, total, max_abs, max_rel = _judged(result)
            rows.append([graph, provider.replace("ExecutionProvider", ""), result.get("passed"), max_abs, max_rel,
                         result.get("atol"), result.get("rtol"),
                         f"{judged} of {total}" + ("" if judged == total else " (the rest not judged)"),
                         result.get("top1_agreement"), result.get("accuracy")])
    columns = ["graph", "provider", "passed", "max abs diff", "max rel diff", "atol", "rtol", "judged sets",
               "top-1 agreement", "accuracy"]
    return [ReportTable(columns, rows, caption="ONNX Runtime against PyTorch, per graph and provider")]


def _judged(result: dict[str, Any]) -> tuple[int, int, Any, Any]:
    """Judged and all input sets of one result, and the largest differences over the judged ones only (a report
    from before the judged maximum counted unjudged random sets too)."""
    checks = [c for c in result.get("checks") or [] if isinstance(c, dict)]
    if not checks:
        return 0, 0, result.get("max_abs_diff"), result.get("max_rel_diff")
    judged = [c for c in checks if c.get("judged", True)]
    sets = {c.get("inputs") for c in checks}
    judged_sets = {c.get("inputs") for c in judged}

    def worst(key: str) -> Any:
        values = [c[key] for c in judged if isinstance(c.get(key), (int, float))]
        return max(values) if values else None

    return len(judged_sets), len(sets), worst("max_abs_diff"), worst("max_rel_diff")


def variant_table(bundle: BundleRecord) -> ReportTable | None:
    """int8/fp16 variants: how made, accuracy against fp32 on the CPU, speed (from ``bench.json``)."""
    graphs = bundle.manifest.graphs if bundle.manifest else {}
    names = [n for n, e in graphs.items() if e.variant != "fp32"]
    if not names:
        return None
    latency = bench_latency(bundle)
    rows = []
    for name in names:
        entry = graphs[name]
        cpu = bundle.parity.result(name, "CPUExecutionProvider") if bundle.parity else {}
        source = entry.source_graph
        mine, base = latency.get((name, "cpu", 1)), latency.get((source, "cpu", 1))
        rows.append([name, entry.variant, entry.method, cpu.get("accuracy"),
                     cpu.get("reference_accuracy"), cpu.get("accuracy_drop"), cpu.get("passed"), mine,
                     base / mine if mine and base else None])
    columns = ["graph", "variant", "method", "accuracy", "fp32 accuracy", "drop", "passed", "cpu p50 ms (batch 1)",
               "speed-up vs fp32"]
    return ReportTable(columns, rows, caption="variants (accuracy on real validation samples, CPU provider)")


def bench_latency(bundle: BundleRecord) -> dict[tuple[str, str, int], float]:
    """p50 milliseconds by (graph, runtime, batch) from the bundle's ``bench.json`` (ONNX Runtime rows)."""
    out = {}
    for row in (bundle.bench or {}).get("rows", []):
        if row.get("engine") == "onnxruntime":
            out[(row["graph"], row["provider"], int(row["batch"]))] = float(row["p50_ms"])
    return out


def speed_table(bundle: BundleRecord) -> ReportTable | None:
    rows = [[r.get("graph"), r.get("engine"), r.get("provider"), r.get("batch"), r.get("p50_ms"), r.get("p99_ms"),
             r.get("throughput_per_s")] for r in (bundle.bench or {}).get("rows", [])]
    if not rows:
        return None
    return ReportTable(["graph", "engine", "provider", "batch", "p50 ms", "p99 ms", "per second"], rows,
                       caption=f"zoo bench, {bundle.bench.get('threads')} threads on {bundle.bench.get('machine')}")
