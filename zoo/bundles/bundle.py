"""The bundle: a folder of ONNX graphs with a manifest, a model card and the parity evidence.

A bundle is built in a hidden staging folder beside its final place and renamed into place only
once every graph exported, passed the checker and (by default) passed parity: a failed export
leaves nothing half-written, and an existing bundle is only replaced with ``force=True``.
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from zoo.atomic import write_bytes, write_json
from zoo.bundles import variants
from zoo.bundles.card import card_text
from zoo.bundles.graph_checks import Case, GraphCheck, against_fp32, check_graphs, torch_cases
from zoo.bundles.manifest import (
    BUNDLE_FORMAT,
    CARD,
    FP32_OUTPUTS,
    GRAPH_FILE,
    MANIFEST,
    OWN_OUTPUTS,
    PARITY,
    ParityReport,
    graph_entry,
)
from zoo.bundles.onnx_graph import (
    DEFAULT_OPSET,
    check_graph,
    describe_graph,
    export_graph,
    external_data_files,
    stamp_metadata,
)
from zoo.bundles.portable import make_portable
from zoo.bundles.publish import make_staging, publish, recover
from zoo.bundles.vectors import write_test_set
from zoo.digest import file_sha256 as sha256
from zoo.errors import ParityError, ZooError
from zoo.roles import check_role_shapes
from zoo.run_layout import WEIGHTS

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
    from zoo.runs import load_run

    if not isinstance(opset, int) or not 13 <= opset <= 23:
        raise ZooError(f"--opset {opset} is not supported; use an opset from 13 to 23 (default {DEFAULT_OPSET})")
    if quantize is not None and quantize not in QUANTIZE_CHOICES:
        raise ZooError(f"--quantize {quantize} is not supported; use --quantize int8")
    run = load_run(run_dir)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ZooError(f"--out {out} is a file, not a folder")
    final = out / run.run_dir.name
    recover(final)  # a --force killed between its renames: put the old bundle back first
    if final.exists() and not force:
        raise ZooError(f"bundle {final} already exists; pass --force to replace it, or --out another folder")
    staging = make_staging(final)
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
            for file_name, content in getattr(graph, "files", {}).items():  # e.g. a tokenizer beside the graph
                write_bytes(path.parent / file_name, content)
            recipe = {"variant": "fp32", "optimized": variants.optimize(path) if optimize else None}
            make_portable(path, "fp32")
            cases = torch_cases(graph, data)
            _check_role(graph, cases[0])
            entries[graph.name] = _graph_entry(staging, graph, graph.name, cases, graph.atol, graph.rtol, recipe)
            checks.append(_graph_check(staging, graph, graph.name, cases, graph.atol, graph.rtol, "fp32"))
            for variant in wanted:
                name = f"{graph.name}.{variant}"
                entries[name], variant_check, speed[name] = _export_variant(staging, graph, variant, data, cases,
                                                                                measure_variants)
                checks.append(variant_check)
        parity = None
        if verify:
            parity = check_graphs(checks, providers)
            parity["bundle"] = str(final)
            for name in drop_failed_variants(parity, entries, staging):
                speed.pop(name, None)
            write_json(staging / PARITY, parity)
            if not parity["passed"]:
                raise ParityError("exported graphs do not match PyTorch (see the parity report); bundle not written",
                                  parity)
        typed = {name: graph_entry(name, entry) for name, entry in entries.items()}
        report = ParityReport.from_dict(parity) if parity else None
        write_bytes(staging / CARD, card_text(run, typed, report, speed).encode())
        manifest = _manifest(run, entries, staging, opset, exporter, parity)
        write_json(staging / MANIFEST, manifest)
        publish(staging, final, force)
    except OSError as exc:  # name the bundle's file, not the hidden staging folder it was written in
        name = os.fsdecode(exc.filename) if exc.filename is not None else ""
        if not name.startswith(str(staging)):
            raise
        raise OSError(exc.errno, exc.strerror, str(final) + name[len(str(staging)):]) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(final, manifest, parity)


def drop_failed_variants(parity: dict[str, Any], entries: dict[str, dict[str, Any]], staging: Path) -> list[str]:
    """Take the variants that failed their gate out of the bundle, so the fp32 graphs that passed are still
    published; each is recorded in ``parity["dropped_variants"]`` with its results. Returns their names."""
    dropped = [name for name, results in parity["graphs"].items()
               if entries[name]["variant"] != "fp32" and not all(r["passed"] for r in results.values())]
    for name in dropped:
        shutil.rmtree(staging / name)
        del entries[name]
        results = parity["graphs"].pop(name)
        parity.setdefault("dropped_variants", {})[name] = {"reason": _failure(results), "results": results}
    if dropped:
        parity["passed"] = all(r["passed"] for results in parity["graphs"].values() for r in results.values())
    return dropped


def _failure(results: dict[str, dict[str, Any]]) -> str:
    """Why a graph failed, in a few words (the first failing provider)."""
    for provider, result in results.items():
        if result["passed"]:
            continue
        where = provider.replace("ExecutionProvider", "")
        if result.get("not_judged"):
            return f"{where}: {result['not_judged']}"
        if not result.get("accuracy_passed", True):
            return (f"{where}: accuracy {100 * result['accuracy']:.2f}% against fp32 "
                    f"{100 * result['reference_accuracy']:.2f}% ({result['accuracy_lost']} samples lost, "
                    f"{result['accuracy_gained']} gained of {result['accuracy_samples']})")
        return (f"{where}: max abs diff {result['max_abs_diff']:.3g} beyond atol {result['atol']:g} / "
                f"rtol {result['rtol']:g}")
    return "failed"


def _check_role(graph: Any, case: Case) -> None:
    """The graph's role holds for its real outputs (a classifier's width, a latent's size), before any writing."""
    check_role_shapes(graph.name, getattr(graph, "role", None), getattr(graph, "role_info", {}),
                      dict(zip(graph.input_names, case.inputs, strict=True)),
                      dict(zip(graph.output_names, case.expected, strict=True)))


def _export_variant(staging: Path, graph: Any, variant: str, data: Any, cases: list[Case],
                    measure: bool) -> tuple[dict[str, Any], GraphCheck, dict[str, Any] | None]:
    """Make ``<graph>.<variant>/`` from the fp32 graph: its manifest entry, its check, its speed against fp32."""
    name = f"{graph.name}.{variant}"
    src, dst = staging / graph.name / GRAPH_FILE, staging / name / GRAPH_FILE
    dst.parent.mkdir()
    recipe = {"variant": variant, "method": _make_variant(variant, src, dst, graph, data),
              "expected_outputs": OWN_OUTPUTS}
    atol, rtol = variants.variant_tolerance(variant, [out for case in cases for out in case.expected])
    # The stored vectors hold the variant's own outputs (what any harness can check it against, every set
    # judged); the quality gate compares it with fp32 PyTorch here (and in `zoo verify` with the run).
    entry = _graph_entry(staging, graph, name, own_cases(dst, graph, cases), atol, rtol, recipe)
    check = _graph_check(staging, graph, name, against_fp32([replace(c) for c in cases]), atol, rtol, variant)
    if not measure:
        return entry, check, None
    feeds = dict(zip(graph.input_names, graph.random_inputs(64, np.random.default_rng(0)), strict=True))
    return entry, check, variants.speed_ratio(src, dst, feeds)


def own_cases(path: Path, graph: Any, cases: list[Case]) -> list[Case]:
    """The cases' inputs with the outputs of the graph at ``path`` itself (ONNX Runtime, CPU) as expected."""
    from zoo.ort import CPU, run_graph

    feeds = [dict(zip(graph.input_names, case.inputs, strict=True)) for case in cases]
    outputs, _ = run_graph(path, CPU, feeds, output_names=list(graph.output_names))
    return [Case(case.name, case.inputs, [np.asarray(o) for o in out], case.labels) for case, out in zip(
        cases, outputs, strict=True)]


def _make_variant(variant: str, src: Path, dst: Path, graph: Any, data: Any) -> str:
    if variant == "int8":
        calibration = graph.calibration_inputs(data) if graph.calibration_inputs is not None else None
        source = "training data"
        if calibration is None:  # e.g. a generator: its random inputs are the distribution it sees
            calibration = graph.random_inputs(variants.CALIBRATION_SAMPLES, np.random.default_rng(0))
            source = "the graph's random inputs (its GraphSpec declares no calibration_inputs)"
        method = variants.quantize_int8(src, dst, graph.name, list(graph.input_names), calibration, source,
                                        float_modules=tuple(graph.int8_float_modules),
                                        weight_only=bool(getattr(graph, "int8_weight_only", False)))
    else:
        method = variants.to_fp16(src, dst, graph.name)
    make_portable(dst, variant)
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
    return {"file": f"{name}/{GRAPH_FILE}", "source_graph": graph.name, "expected_outputs": FP32_OUTPUTS, **recipe,
            "atol": atol, "rtol": rtol,
            "class_output": graph.class_output,
            "max_accuracy_drop": None if recipe["variant"] == "fp32" or graph.class_output is None
            else variants.MAX_ACCURACY_DROP,
            "external_data": [f"{name}/{f}" for f in external_data_files(path)], "test_sets": sets,
            "zoo_role": getattr(graph, "role", None), **describe_graph(path)}


def _graph_check(staging: Path, graph: Any, name: str, cases: list[Case], atol: float, rtol: float,
                 variant: str) -> GraphCheck:
    """The check of one exported graph (a variant is judged by its role's gate, ``RoleHandlers.gate``)."""
    path = staging / name / GRAPH_FILE
    return GraphCheck(name, path, list(graph.input_names), list(graph.output_names), atol, rtol, graph.class_output,
                      None, cases, variant=variant, role=getattr(graph, "role", None),
                      role_info=dict(getattr(graph, "role_info", {}) or {}),
                      metadata=describe_graph(path)["metadata"])


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
        "data_kind": info.kind,
        **_sample_metadata(info),
        "target": {"kind": info.target.kind, "names": info.target.names, "mean": info.target.mean,
                   "std": info.target.std},
        "class_labels": info.class_names,
    }


def _sample_metadata(info: Any) -> dict[str, Any]:
    """How raw samples become model input, by the data's kind (images: pixels; features: standardised
    columns; audio: waveforms at a sample rate)."""
    if info.kind == "features" and info.features is not None:
        features = info.features
        return {"input_shape": ["batch", features.count], "layout": "rows of features, in the order of 'names'",
                "normalization": {"mean": features.mean, "std": features.std, "formula": "(x[i] - mean[i]) / std[i]",
                                  "names": features.names}}
    if info.kind == "audio" and info.audio is not None:
        return {"input_shape": ["batch", info.audio.num_samples], "layout": "mono waveforms, float32 in [-1, 1]",
                "audio": {"sample_rate": info.audio.sample_rate, "num_samples": info.audio.num_samples}}
    from zoo.data.units import unit_metadata, white_value

    unit = unit_metadata(white_value(info.pixel_max, info.scale))
    crop = getattr(info, "crop", None)
    preprocessing = {"channels": info.channels, "color": "grayscale" if info.channels == 1 else "RGB",
                     "channel_order": "CHW", "resize": [info.height, info.width],
                     "resample": crop.interpolation if crop else "bilinear", "source_shape": info.source_shape}
    if crop is not None:  # resize to cover the scale size keeping the aspect ratio, then the centre crop
        preprocessing["crop"] = {**crop.to_dict(), "scale_size": list(crop.scale_size((info.height, info.width)))}
    return {
        "input_shape": ["batch", *info.shape],
        "layout": "NCHW (batch, channels, height, width); channels in the dataset's own order",
        "normalization": {"scale": info.scale, "mean": info.mean, "std": info.std,
                          "formula": "(pixel * scale - mean[c]) / std[c]",
                          "pixel_max": unit["pixel_max"], "from_8bit": unit["from_8bit"]},
        "pixel_unit": unit,
        "preprocessing": preprocessing,
    }


def _versions() -> dict[str, str]:
    import onnx
    import torch

    from zoo.ort import import_onnxruntime
    from zoo.version import __version__

    return {"zoo": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": import_onnxruntime().__version__, "python": platform.python_version()}


def _privacy(run: Any) -> dict[str, Any]:
    """``{"privacy": ...}`` for a DP-trained or audited run (ε, δ, the accountant, the audit), else nothing."""
    from zoo.bundles.privacy_card import manifest_privacy
    from zoo.run_layout import SUMMARY
    from zoo.runs import read_json

    found = manifest_privacy(read_json(run.run_dir / SUMMARY, "run summary"), run.run_dir)
    return {"privacy": found} if found else {}


def _manifest(run: Any, entries: dict[str, dict[str, Any]], staging: Path, opset: int, exporter: str,
              parity: dict[str, Any] | None) -> dict[str, Any]:
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    return {
        "format": BUNDLE_FORMAT,
        "model": run.spec.name,
        "family": run.spec.family,
        "plugin": run.spec.plugin,
        "dataset": run.config["dataset"],
        "pixel_unit": _graph_metadata(run).get("pixel_unit"),
        "run": {"id": run.run_dir.name, "dir": str(run.run_dir.resolve()),
                "weights_sha256": run.weights_sha256 or sha256(run.run_dir / WEIGHTS)},
        "exporter": exporter,
        "opset_requested": opset,
        "graphs": entries,
        "parity_passed": None if parity is None else parity["passed"],
        **_privacy(run),
        "versions": _versions(),
        "files": {p.relative_to(staging).as_posix(): sha256(p) for p in files},
    }
