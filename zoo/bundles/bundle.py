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

from zoo.atomic import write_bytes, write_json
from zoo.bundles.onnx_graph import DEFAULT_OPSET, describe_graph, export_graph
from zoo.bundles.verify import check_graphs, format_table, sha256
from zoo.engine.runs import WEIGHTS, read_json
from zoo.errors import ParityError, ZooError

MANIFEST = "manifest.json"
PARITY = "parity.json"
CARD = "card.md"
BUNDLE_FORMAT = 1


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
) -> ExportResult:
    """Export a trained run to ``<out>/<run-name>/`` and verify it (raises ParityError if it fails)."""
    from zoo.data import load_run_data
    from zoo.engine.runs import load_run

    if not isinstance(opset, int) or not 13 <= opset <= 23:
        raise ZooError(f"--opset {opset} is not supported; use an opset from 13 to 23 (default {DEFAULT_OPSET})")
    run = load_run(run_dir)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ZooError(f"--out {out} is a file, not a folder")
    final = out / run.run_dir.name
    if final.exists() and not force:
        raise ZooError(f"bundle {final} already exists; pass --force to replace it, or --out another folder")
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".{final.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        graphs = run.family.graphs(run.model, run.data_info)
        metadata = _graph_metadata(run)
        for graph in graphs:
            export_graph(graph, staging / f"{graph.name}.onnx", opset=opset, exporter=exporter,
                         metadata={**metadata, "graph": graph.name})
        parity = None
        if verify:
            data = load_run_data(run.config)
            parity = check_graphs(staging, graphs, data, providers)
            parity["bundle"] = str(final)
            write_json(staging / PARITY, parity)
            if not parity["passed"]:
                raise ParityError("exported graphs do not match PyTorch (see the parity report); bundle not written",
                                  parity)
        write_bytes(staging / CARD, _card(run, graphs, parity).encode())
        manifest = _manifest(run, graphs, staging, opset, exporter, parity)
        write_json(staging / MANIFEST, manifest)
        _publish(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(final, manifest, parity)


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


def _manifest(run: Any, graphs: list[Any], staging: Path, opset: int, exporter: str,
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
        "graphs": {g.name: {"file": f"{g.name}.onnx", **describe_graph(staging / f"{g.name}.onnx")} for g in graphs},
        "parity_passed": None if parity is None else parity["passed"],
        "versions": _versions(),
        "files": {p.relative_to(staging).as_posix(): sha256(p) for p in files},
    }


def _card(run: Any, graphs: list[Any], parity: dict[str, Any] | None) -> str:
    summary = read_json(run.run_dir / "summary.json", "run summary")
    info = run.data_info
    metrics = "\n".join(f"- {k}: {v:.4g}" for k, v in summary.get("metrics", {}).items())
    parity_text = format_table(parity) if parity else "not verified (exported with --no-verify)"
    return f"""# {run.spec.name} ({run.spec.family})

{run.spec.summary}. From plugin `{run.spec.plugin}`, run `{run.run_dir.name}`.

## Data
Trained on `{info.name}`: {info.channels}×{info.height}×{info.width} images, {info.num_classes} classes
({", ".join(info.class_names)}), {summary.get("epochs")} epochs.

## Preprocessing
Model input = (pixel × {info.scale:g} − mean[c]) / std[c], mean = {info.mean}, std = {info.std}.

## Metrics (validation, last epoch)
{metrics}

## Graphs
{chr(10).join(f"- `{g.name}.onnx`: inputs {list(g.input_names)} → outputs {list(g.output_names)}" for g in graphs)}

## Parity against PyTorch
```
{parity_text}
```

## Limits
Trained on a small demonstration dataset; check accuracy on your own data before deploying.
"""


def verify_bundle(
    bundle_dir: str | Path, *, providers: list[str] | None = None, run_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Check a bundle's files against its manifest, then its graphs against the run's PyTorch model."""
    from zoo.data import load_run_data
    from zoo.engine.runs import load_run

    bundle = Path(bundle_dir)
    if not bundle.is_dir():
        raise ZooError(f"bundle {bundle} does not exist; pass the folder that `zoo export` printed")
    if not (bundle / MANIFEST).exists():
        raise ZooError(f"{bundle} is not a zoo bundle (no {MANIFEST}); pass the folder that `zoo export` printed")
    manifest = read_json(bundle / MANIFEST, "bundle manifest")
    check_files(bundle, manifest)
    run_path = Path(run_dir) if run_dir else Path(manifest.get("run", {}).get("dir", ""))
    if not run_dir and not (run_path / WEIGHTS).exists():
        raise ZooError(f"the run this bundle came from ({run_path}) is not here; pass --run RUN_DIR")
    run = load_run(run_path)
    if sha256(run.run_dir / WEIGHTS) != manifest["run"]["weights_sha256"]:
        raise ZooError(f"the weights in {run.run_dir} are not the ones this bundle was exported from; "
                       "pass the right --run or export again")
    data = load_run_data(run.config)
    graphs = [g for g in run.family.graphs(run.model, run.data_info) if g.name in manifest["graphs"]]
    return check_graphs(bundle, graphs, data, providers)


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
