"""``zoo verify``: a published bundle against its stored test vectors and, when possible, fresh PyTorch outputs."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from zoo.bundles.graph_checks import Case, GraphCheck, check_graphs, sha256, torch_cases
from zoo.bundles.manifest import Bundle, GraphEntry
from zoo.bundles.vectors import read_test_set
from zoo.errors import ZooError
from zoo.run_layout import WEIGHTS


def verify_bundle(
    bundle_dir: str | Path, *, providers: list[str] | None = None, run_dir: str | Path | None = None,
    bundle_only: bool = False, require: list[str] | None = None, runtimes: list[str] | None = None,
) -> dict[str, Any]:
    """Verify a bundle: files against the manifest, graphs against their test vectors on every provider,
    and (unless ``bundle_only``, when torch and the run are here) against fresh PyTorch outputs.

    Bundle-only verification needs only ONNX Runtime, onnx and numpy. ``runtimes`` adds independent
    runtimes (:mod:`zoo.bundles.runtime_checks`) on the stored test vectors. Returns the parity report's JSON.
    """
    from zoo.bundles.runtime_checks import check_runtimes, runtimes_passed

    bundle = Bundle.open(bundle_dir, check_graphs=True)
    checks = [vector_check(bundle, entry) for entry in bundle.manifest.graphs.values()]
    rows = None if runtimes is None else check_runtimes([replace(c, cases=list(c.cases)) for c in checks], runtimes)
    skipped = "--bundle-only was given" if bundle_only else _add_torch_cases(checks, bundle, run_dir)
    report = check_graphs(checks, providers, require)
    report["bundle"] = str(bundle.path)
    report["pytorch_skipped"] = skipped
    if rows is not None:  # other runtimes (``--runtimes``), on the stored test vectors
        report["runtimes"] = [asdict(r) for r in rows]
        report["providers_passed"], report["runtimes_passed"] = report["passed"], runtimes_passed(rows)
        report["passed"] = report["passed"] and report["runtimes_passed"]
    return report


def vector_check(bundle: Bundle, entry: GraphEntry) -> GraphCheck:
    """The check of one graph against its stored test vectors."""
    cases = []
    for test_set in entry.test_sets:
        inputs, expected = read_test_set(bundle.file(test_set.dir))
        cases.append(Case(f"{Path(test_set.dir).name} {test_set.inputs}", inputs, expected))
    return GraphCheck(entry.name, bundle.graph_path(entry), entry.input_names, entry.output_names, entry.atol,
                      entry.rtol, entry.class_output, entry.max_accuracy_drop, cases, variant=entry.variant,
                      role=entry.role, role_info=entry.role_info, metadata=dict(entry.metadata))


def _add_torch_cases(checks: list[GraphCheck], bundle: Bundle, run_dir: str | Path | None) -> str | None:
    """Add fresh PyTorch cases to every check; the reason when that cannot be done here (else None)."""
    manifest = bundle.manifest
    run_path = Path(run_dir) if run_dir else Path(manifest.run.get("dir", ""))
    if not run_dir and not (run_path / WEIGHTS).exists():
        return f"the run this bundle came from ({run_path}) is not here; pass --run RUN_DIR to compare with PyTorch"
    try:
        import torch  # noqa: F401
    except ImportError:
        return "torch is not installed here; compared with the stored test vectors only"
    from zoo.data import load_run_data
    from zoo.runs import load_run

    run = load_run(run_path)
    if sha256(run.run_dir / WEIGHTS) != manifest.run.get("weights_sha256"):
        raise ZooError(f"the weights in {run.run_dir} are not the ones this bundle was exported from; "
                       "pass the right --run or export again")
    data = load_run_data(run.config)
    specs = {g.name: g for g in run.family.graphs(run.model, run.data_info)}
    cases = {name: torch_cases(spec, data) for name, spec in specs.items()}
    for check in checks:
        source = manifest.graphs[check.name].source_graph
        if source not in cases:
            raise ZooError(f"the model no longer declares graph {source!r}; export the bundle again")
        check.cases.extend(cases[source])
    return None
