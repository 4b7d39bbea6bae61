"""The bundle: a folder of ONNX graphs with a manifest, a model card and the parity evidence.

A bundle is built in a hidden staging folder beside its final place and renamed into place only
once every graph exported, passed the checker and (by default) passed parity: a failed export
leaves nothing half-written, and an existing bundle is only replaced with ``force=True``.
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.atomic import write_bytes, write_json
from zoo.bundles import variants
from zoo.bundles.onnx_graph import (
    DEFAULT_OPSET,
    check_graph,
    describe_graph,
    export_graph,
    external_data_files,
    stamp_metadata,
)
from zoo.bundles.vectors import read_test_set, write_test_set
from zoo.bundles.verify import Case, GraphCheck, check_graphs, format_table, sha256, torch_cases
from zoo.engine.runs import WEIGHTS, read_json
from zoo.errors import ParityError, ZooError

MANIFEST = "manifest.json"
PARITY = "parity.json"
CARD = "card.md"
#: Each graph lives in its own folder, ``<graph>/model.onnx`` beside its ``test_data_set_N`` folders
#: (the ONNX model-zoo layout); variants are graphs of their own, ``<graph>.int8/``, ``<graph>.fp16/``.
GRAPH_FILE = "model.onnx"
BUNDLE_FORMAT = 2
QUANTIZE_CHOICES = ("int8",)


@dataclass
class ExportResult:
    bundle_dir: Path
    manifest: dict[str, Any]
    parity: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {"bundle_dir": str(self.bundle_dir), "parity": self.parity, "manifest": self.manifest}


def export_run(
    run_dir: str | Path,
    *,
    out: str | Path = "exports",
    opset: int = DEFAULT_OPSET,
    exporter: str = "dynamo",
    force: bool = False,
    verify: bool = True,
    providers: list[str] | None = None,
    quantize: str | None = None,
    fp16: bool = False,
    optimize: bool = False,
    external_data: bool = False,
    measure_variants: bool = False,
) -> ExportResult:
    """Export a trained run to ``<out>/<run-name>/`` and verify it (raises ParityError if it fails).

    ``quantize="int8"`` and ``fp16`` add variant graphs beside the fp32 ones; ``optimize`` writes the
    graphs after ONNX Runtime's offline optimisations; ``external_data`` keeps weights in a file
    beside each graph (always so over 2 GiB). ``measure_variants`` times each variant against fp32 on
    this CPU for the card (otherwise the card says it was not measured).
    """
    from zoo.data import load_run_data
    from zoo.engine.runs import load_run

    if not isinstance(opset, int) or not 13 <= opset <= 23:
        raise ZooError(f"--opset {opset} is not supported; use an opset from 13 to 23 (default {DEFAULT_OPSET})")
    if quantize is not None and quantize not in QUANTIZE_CHOICES:
        raise ZooError(f"--quantize {quantize} is not supported; use --quantize int8")
    run = load_run(run_dir)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ZooError(f"--out {out} is a file, not a folder")
    final = out / run.run_dir.name
    if final.exists() and not force:
        raise ZooError(f"bundle {final} already exists; pass --force to replace it, or --out another folder")
    out.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(out, final.name)
    staging = out / f".{final.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    wanted = [v for v, on in (("int8", quantize == "int8"), ("fp16", fp16)) if on]
    try:
        data = load_run_data(run.config)
        metadata = {**_graph_metadata(run), "exporter": exporter}
        entries: dict[str, dict[str, Any]] = {}
        checks: list[GraphCheck] = []
        speed: dict[str, Any] = {}
        for graph in run.family.graphs(run.model, run.data_info):
            path = staging / graph.name / GRAPH_FILE
            path.parent.mkdir()
            export_graph(graph, path, opset=opset, exporter=exporter, external_data=external_data,
                         metadata={**metadata, "graph": graph.name, "variant": "fp32"})
            recipe = {"variant": "fp32", "optimized": variants.optimize(path) if optimize else None}
            cases = torch_cases(graph, data)
            entries[graph.name] = _graph_entry(staging, graph, graph.name, cases, graph.atol, graph.rtol, recipe)
            checks.append(_graph_check(staging, graph, graph.name, cases, graph.atol, graph.rtol, None))
            for variant in wanted:
                name = f"{graph.name}.{variant}"
                entries[name], variant_check, speed[name] = _export_variant(staging, graph, variant, data, cases,
                                                                                measure_variants)
                checks.append(variant_check)
        parity = None
        if verify:
            parity = check_graphs(checks, providers)
            parity["bundle"] = str(final)
            write_json(staging / PARITY, parity)
            if not parity["passed"]:
                raise ParityError("exported graphs do not match PyTorch (see the parity report); bundle not written",
                                  parity)
        write_bytes(staging / CARD, _card(run, entries, parity, speed).encode())
        manifest = _manifest(run, entries, staging, opset, exporter, parity)
        write_json(staging / MANIFEST, manifest)
        _publish(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(final, manifest, parity)


def _export_variant(staging: Path, graph: Any, variant: str, data: Any, cases: list[Case],
                    measure: bool) -> tuple[dict[str, Any], GraphCheck, dict[str, Any] | None]:
    """Make ``<graph>.<variant>/`` from the fp32 graph: its manifest entry, its check, its speed against fp32."""
    name = f"{graph.name}.{variant}"
    src, dst = staging / graph.name / GRAPH_FILE, staging / name / GRAPH_FILE
    dst.parent.mkdir()
    recipe = {"variant": variant, "method": _make_variant(variant, src, dst, graph, data)}
    atol, rtol = variants.VARIANT_TOLERANCES[variant]
    entry = _graph_entry(staging, graph, name, cases, atol, rtol, recipe)
    check = _graph_check(staging, graph, name, cases, atol, rtol, variants.MAX_ACCURACY_DROP)
    if not measure:
        return entry, check, None
    feeds = dict(zip(graph.input_names, graph.random_inputs(64, np.random.default_rng(0)), strict=True))
    return entry, check, variants.speed_ratio(src, dst, feeds)


def _make_variant(variant: str, src: Path, dst: Path, graph: Any, data: Any) -> str:
    if variant == "int8":
        calibration = graph.calibration_inputs(data) if graph.calibration_inputs is not None else None
        source = "training data"
        if calibration is None:  # e.g. a generator: its random inputs are the distribution it sees
            calibration = graph.random_inputs(variants.CALIBRATION_SAMPLES, np.random.default_rng(0))
            source = "the graph's random inputs (its GraphSpec declares no calibration_inputs)"
        method = variants.quantize_int8(src, dst, graph.name, list(graph.input_names), calibration, source)
    else:
        method = variants.to_fp16(src, dst, graph.name)
    props = describe_graph(src)["metadata"]
    stamp_metadata(dst, {**props, "variant": variant, "variant_method": method})
    check_graph(dst, f"{graph.name}.{variant}")
    return method


def _graph_entry(staging: Path, graph: Any, name: str, cases: list[Case], atol: float, rtol: float,
                 recipe: dict[str, Any]) -> dict[str, Any]:
    """Write the graph's test vectors; its manifest entry (file, recipe, tolerance, test sets, description)."""
    folder = staging / name
    sets = []
    for index, case in enumerate(cases):
        write_test_set(folder / f"test_data_set_{index}", list(zip(graph.input_names, case.inputs, strict=True)),
                       list(zip(graph.output_names, case.expected, strict=True)))
        sets.append({"dir": f"{name}/test_data_set_{index}", "inputs": case.name})
    path = folder / GRAPH_FILE
    return {"file": f"{name}/{GRAPH_FILE}", "source_graph": graph.name, **recipe, "atol": atol, "rtol": rtol,
            "class_output": graph.class_output,
            "max_accuracy_drop": None if recipe["variant"] == "fp32" else variants.MAX_ACCURACY_DROP,
            "external_data": [f"{name}/{f}" for f in external_data_files(path)], "test_sets": sets,
            **describe_graph(path)}


def _graph_check(staging: Path, graph: Any, name: str, cases: list[Case], atol: float, rtol: float,
                 max_drop: float | None) -> GraphCheck:
    return GraphCheck(name, staging / name / GRAPH_FILE, list(graph.input_names), list(graph.output_names), atol, rtol,
                      graph.class_output, max_drop, cases)


def _remove_abandoned_staging(out: Path, name: str) -> None:
    """Remove staging folders of exports that were killed (their process is gone)."""
    for folder in out.glob(f".{name}.staging-*"):
        pid = folder.name.rsplit("-", 1)[-1]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass  # alive (or not ours to judge): leave it


def _publish(staging: Path, final: Path) -> None:
    """Move the finished bundle into place; an old one is removed only after the new one is there."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _graph_metadata(run: Any) -> dict[str, Any]:
    from zoo.version import __version__

    info = run.data_info
    return {
        "zoo_version": __version__,
        "model": run.spec.name,
        "family": run.spec.family,
        "plugin": run.spec.plugin,
        "run_id": run.run_dir.name,
        "dataset": info.name,
        "input_shape": ["batch", *info.shape],
        "layout": "NCHW (batch, channels, height, width); channels in the dataset's own order",
        "normalization": {"scale": info.scale, "mean": info.mean, "std": info.std,
                          "formula": "(pixel * scale - mean[c]) / std[c]"},
        "preprocessing": {"channels": info.channels, "color": "grayscale" if info.channels == 1 else "RGB",
                          "channel_order": "CHW", "resize": [info.height, info.width], "resample": "bilinear",
                          "source_shape": info.source_shape},
        "class_labels": info.class_names,
    }


def _versions() -> dict[str, str]:
    import onnx
    import torch

    from zoo.runtime import import_onnxruntime
    from zoo.version import __version__

    return {"zoo": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": import_onnxruntime().__version__, "python": platform.python_version()}


def _manifest(run: Any, entries: dict[str, dict[str, Any]], staging: Path, opset: int, exporter: str,
              parity: dict[str, Any] | None) -> dict[str, Any]:
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    return {
        "format": BUNDLE_FORMAT,
        "model": run.spec.name,
        "family": run.spec.family,
        "plugin": run.spec.plugin,
        "dataset": run.config["dataset"],
        "run": {"id": run.run_dir.name, "dir": str(run.run_dir.resolve()),
                "weights_sha256": sha256(run.run_dir / WEIGHTS)},
        "exporter": exporter,
        "opset_requested": opset,
        "graphs": entries,
        "parity_passed": None if parity is None else parity["passed"],
        "versions": _versions(),
        "files": {p.relative_to(staging).as_posix(): sha256(p) for p in files},
    }


def _card(run: Any, entries: dict[str, dict[str, Any]], parity: dict[str, Any] | None,
          speed: dict[str, Any]) -> str:
    summary = read_json(run.run_dir / "summary.json", "run summary")
    info = run.data_info
    metrics = "\n".join(f"- {k}: {v:.4g}" for k, v in summary.get("metrics", {}).items())
    parity_text = format_table(parity) if parity else "not verified (exported with --no-verify)"
    graph_lines = []
    for e in entries.values():
        io = f"inputs {[i['name'] for i in e['inputs']]} → outputs {[o['name'] for o in e['outputs']]}"
        how = e.get("method") or ("optimized: " + e["optimized"] if e.get("optimized") else "as exported")
        graph_lines.append(f"- `{e['file']}` ({e['variant']}; {how}): {io}; tolerance atol {e['atol']:g} / "
                           f"rtol {e['rtol']:g}; {len(e['test_sets'])} test sets")
    return f"""# {run.spec.name} ({run.spec.family})

{run.spec.summary}. From plugin `{run.spec.plugin}`, run `{run.run_dir.name}`.

## Intended use
Inference on inputs preprocessed exactly as below; each graph takes a batch of any size.

## Data
Trained on `{info.name}`: {info.channels}×{info.height}×{info.width} images, {info.num_classes} classes
({", ".join(info.class_names)}), {summary.get("epochs")} epochs.

## Preprocessing
Model input = (pixel × {info.scale:g} − mean[c]) / std[c], mean = {info.mean}, std = {info.std}, channels
first (N×C×H×W). The same values are in every graph's `metadata_props`.

## Metrics (validation, last epoch)
{metrics}

## Graphs
{chr(10).join(graph_lines)}

Each graph folder holds `test_data_set_N/input_K.pb` and `output_K.pb` (ONNX TensorProto, the ONNX model-zoo
layout): random inputs at batch 1 and 16 and real validation samples, with the fp32 PyTorch outputs expected
(variants are held to their own tolerance against them). `zoo verify` checks them without PyTorch.

{_variant_text(entries, parity, speed)}
## Parity against PyTorch
```
{parity_text}
```

## Limits
Trained on a small demonstration dataset; check accuracy on your own data before deploying.
"""


def _variant_text(entries: dict[str, dict[str, Any]], parity: dict[str, Any] | None, speed: dict[str, Any]) -> str:
    from zoo.bundles.variant_card import variant_text

    return variant_text(entries, parity, speed)


def verify_bundle(
    bundle_dir: str | Path, *, providers: list[str] | None = None, run_dir: str | Path | None = None,
    bundle_only: bool = False, require: list[str] | None = None,
) -> dict[str, Any]:
    """Verify a bundle: files against the manifest, graphs against their test vectors on every provider,
    and (unless ``bundle_only``, when torch and the run are here) against fresh PyTorch outputs.

    Bundle-only verification needs only ONNX Runtime, onnx and numpy.
    """
    bundle = Path(bundle_dir)
    manifest = load_manifest(bundle)
    checks = [_vector_check(bundle, name, entry) for name, entry in manifest["graphs"].items()]
    skipped = "--bundle-only was given" if bundle_only else _add_torch_cases(checks, manifest, run_dir)
    report = check_graphs(checks, providers, require)
    report["bundle"] = str(bundle)
    report["pytorch_skipped"] = skipped
    return report


def load_manifest(bundle: Path) -> dict[str, Any]:
    """The manifest of a bundle whose files, external data and graphs all check out."""
    if not bundle.is_dir():
        raise ZooError(f"bundle {bundle} does not exist; pass the folder that `zoo export` printed")
    if not (bundle / MANIFEST).exists():
        raise ZooError(f"{bundle} is not a zoo bundle (no {MANIFEST}); pass the folder that `zoo export` printed")
    manifest = read_json(bundle / MANIFEST, "bundle manifest")
    if manifest.get("format") != BUNDLE_FORMAT or not isinstance(manifest.get("graphs"), dict):
        raise ZooError(f"{bundle} is a bundle of format {manifest.get('format')}, this zoo reads format "
                       f"{BUNDLE_FORMAT}; export it again with this zoo")
    check_files(bundle, manifest)
    for name, entry in manifest["graphs"].items():
        path = bundle / entry["file"]
        for location in external_data_files(path):
            target = (path.parent / location).resolve()
            if Path(location).is_absolute() or not target.is_relative_to(bundle.resolve()):
                raise ZooError(f"graph {name!r} keeps its weights at {location!r}, outside the bundle; "
                               "refusing to read it (export the bundle again)")
            if target.relative_to(bundle.resolve()).as_posix() not in manifest["files"]:
                raise ZooError(f"graph {name!r} refers to weights {location!r} the manifest does not list; "
                               "export the bundle again")
        check_graph(path, name)
    return manifest


def _vector_check(bundle: Path, name: str, entry: dict[str, Any]) -> GraphCheck:
    cases = []
    for test_set in entry["test_sets"]:
        inputs, expected = read_test_set(bundle / test_set["dir"])
        cases.append(Case(f"{Path(test_set['dir']).name} {test_set['inputs']}", inputs, expected))
    return GraphCheck(name, bundle / entry["file"], [i["name"] for i in entry["inputs"]],
                      [o["name"] for o in entry["outputs"]], entry["atol"], entry["rtol"], entry.get("class_output"),
                      entry.get("max_accuracy_drop"), cases)


def _add_torch_cases(checks: list[GraphCheck], manifest: dict[str, Any], run_dir: str | Path | None) -> str | None:
    """Add fresh PyTorch cases to every check; the reason when that cannot be done here (else None)."""
    run_path = Path(run_dir) if run_dir else Path(manifest.get("run", {}).get("dir", ""))
    if not run_dir and not (run_path / WEIGHTS).exists():
        return f"the run this bundle came from ({run_path}) is not here; pass --run RUN_DIR to compare with PyTorch"
    try:
        import torch  # noqa: F401
    except ImportError:
        return "torch is not installed here; compared with the stored test vectors only"
    from zoo.data import load_run_data
    from zoo.engine.runs import load_run

    run = load_run(run_path)
    if sha256(run.run_dir / WEIGHTS) != manifest["run"]["weights_sha256"]:
        raise ZooError(f"the weights in {run.run_dir} are not the ones this bundle was exported from; "
                       "pass the right --run or export again")
    data = load_run_data(run.config)
    specs = {g.name: g for g in run.family.graphs(run.model, run.data_info)}
    cases = {name: torch_cases(spec, data) for name, spec in specs.items()}
    for check in checks:
        source = manifest["graphs"][check.name]["source_graph"]
        if source not in cases:
            raise ZooError(f"the model no longer declares graph {source!r}; export the bundle again")
        check.cases.extend(cases[source])
    return None


def check_files(bundle: Path, manifest: dict[str, Any]) -> None:
    """Every file the manifest lists is present, inside the bundle, and has its recorded hash."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise ZooError(f"{bundle / MANIFEST} lists no files; export again")
    root = bundle.resolve()
    for name, expected in files.items():
        path = (bundle / name).resolve()
        if not path.is_relative_to(root):
            raise ZooError(f"manifest entry {name!r} points outside the bundle; the bundle is not safe to use")
        if not path.is_file():
            raise ZooError(f"bundle file {name} is missing; copy the whole bundle folder or export again")
        if sha256(path) != expected:
            raise ZooError(f"bundle file {name} does not match its manifest hash (changed or corrupted); export again")
