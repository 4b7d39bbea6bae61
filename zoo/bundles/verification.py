"""``zoo verify``: a published bundle against its stored test vectors and, when possible, fresh PyTorch outputs."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from zoo.bundles.graph_checks import OWN_REFERENCE, Case, GraphCheck, against_fp32, check_graphs, torch_cases
from zoo.bundles.manifest import FP32_OUTPUTS, Bundle, GraphEntry, ValueInfo
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
    for check in checks:  # a variant storing its own outputs is also held to fp32's (its quality gate)
        check.cases.extend(fp32_reference_cases(bundle, bundle.manifest.graphs[check.name]))
    rows = None if runtimes is None else check_runtimes([replace(c, cases=list(c.cases)) for c in checks], runtimes)
    skipped = "--bundle-only was given" if bundle_only else _add_torch_cases(checks, bundle, run_dir)
    report = check_graphs(checks, providers, require)
    report["bundle"] = str(bundle.path)
    report["pytorch_skipped"] = skipped
    if rows is not None:  # other runtimes (``--runtimes``), on the stored test vectors
        report["runtimes"] = [asdict(r) for r in rows]
        report["runtimes_explicit"] = list(runtimes)  # empty: "all" (unsupported is then not a failure)
        report["providers_passed"], report["runtimes_passed"] = report["passed"], runtimes_passed(rows, runtimes)
        report["passed"] = report["passed"] and report["runtimes_passed"]
    return report


def vector_check(bundle: Bundle, entry: GraphEntry) -> GraphCheck:
    """The check of one graph against its stored test vectors."""
    cases = []
    for test_set in entry.test_sets:
        inputs, expected = read_test_set(bundle.file(test_set.dir))
        fits_declared(inputs, entry.inputs, f"{test_set.dir}/input")
        fits_declared(expected, entry.outputs, f"{test_set.dir}/output")
        cases.append(Case(f"{Path(test_set.dir).name} {test_set.inputs}", inputs, expected))
    if entry.variant != "fp32" and entry.expected_outputs == FP32_OUTPUTS:  # a variant of an older bundle
        against_fp32(cases)
    elif entry.expected_outputs != FP32_OUTPUTS:  # the variant's own outputs: every set judged, no gate evidence
        for case in cases:
            case.reference = OWN_REFERENCE
    return GraphCheck(entry.name, bundle.graph_path(entry), entry.input_names, entry.output_names, entry.atol,
                      entry.rtol, entry.class_output, entry.max_accuracy_drop, cases, variant=entry.variant,
                      role=entry.role, role_info=entry.role_info, metadata=dict(entry.metadata))


def fp32_reference_cases(bundle: Bundle, entry: GraphEntry) -> list[Case]:
    """For a variant whose stored vectors are its own outputs: the same inputs with its fp32 source graph's stored
    outputs, judged as a variant is against fp32 (real samples; random inputs where the graph has none) and given
    to its role's gate. Empty for fp32 graphs and for variants that store fp32 outputs themselves."""
    source = bundle.manifest.graphs.get(entry.source_graph)
    if entry.variant == "fp32" or entry.expected_outputs == FP32_OUTPUTS or source is None:
        return []
    cases = []
    for test_set in source.test_sets:
        inputs, expected = read_test_set(bundle.file(test_set.dir))
        fits_declared(inputs, entry.inputs, f"{test_set.dir}/input")
        fits_declared(expected, entry.outputs, f"{test_set.dir}/output")
        cases.append(Case(f"{Path(test_set.dir).name} {test_set.inputs} vs fp32", inputs, expected))
    return against_fp32(cases)


def fits_declared(arrays: list[Any], declared: list[ValueInfo], where: str) -> None:
    """Stored tensors match the graph's declared inputs or outputs in count, dtype, rank and fixed sizes: a
    forged vector is one line before any graph runs on it."""
    if len(arrays) != len(declared):
        raise ZooError(f"{where}_*.pb holds {len(arrays)} tensor(s), the graph declares {len(declared)}; the bundle "
                       "is not as exported: export it again")
    for index, (array, info) in enumerate(zip(arrays, declared, strict=True)):
        fixed = [d if isinstance(d, int) and d > 0 else None for d in info.shape]
        shape = list(getattr(array, "shape", ()))
        if str(getattr(array, "dtype", "")) != info.dtype or len(shape) != len(fixed) or any(
                want is not None and got != want for got, want in zip(shape, fixed, strict=True)):
            raise ZooError(f"{where}_{index}.pb is {getattr(array, 'dtype', '?')} {shape}, but graph input/output "
                           f"{info.name!r} is {info.dtype} {info.shape}; the bundle is not as exported: export it "
                           "again")


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
    if run.weights_sha256 != manifest.run.get("weights_sha256"):  # the bytes the model was loaded from
        raise ZooError(f"the weights in {run.run_dir} are not the ones this bundle was exported from; "
                       "pass the right --run or export again")
    data = load_run_data(run.config)
    specs = {g.name: g for g in run.family.graphs(run.model, run.data_info)}
    cases = {name: torch_cases(spec, data) for name, spec in specs.items()}
    for check in checks:
        source = manifest.graphs[check.name].source_graph
        if source not in cases:
            raise ZooError(f"the model no longer declares graph {source!r}; export the bundle again")
        fresh = [replace(c) for c in cases[source]]
        check.cases.extend(against_fp32(fresh) if manifest.graphs[check.name].variant != "fp32" else fresh)
    return None
