"""``zoo bench``: latency and throughput of a bundle's graphs, eager PyTorch against ONNX Runtime.

Every measurement uses the same inputs, fixed thread counts and untimed warm-up runs. GPU
providers are timed in a child process each (as in verification); eager PyTorch on CUDA runs with
TF32 off, like the CUDA provider, so both compute the same fp32 numbers.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from zoo.bundles.manifest import GraphEntry
from zoo.bundles.verify import resolve_providers
from zoo.errors import ZooError
from zoo.runtime import time_graph


def bench_bundle(bundle_dir: str | Path, *, batch_sizes: list[int], threads: int = 2, warmup: int = 10,
                 runs: int = 100, providers: list[str] | None = None, run_dir: str | Path | None = None,
                 torch: bool = True) -> dict[str, Any]:
    """Time every graph of a bundle at each batch size; a dict with the settings and one row per measurement."""
    from zoo.bundles.manifest import Bundle

    if not batch_sizes or min(batch_sizes) < 1 or threads < 1 or runs < 1 or warmup < 0:
        raise ZooError("--batch-sizes, --threads and --runs must be positive (and --warmup at least 0)")
    bundle = Bundle.open(bundle_dir, check_graphs=True)
    manifest = bundle.manifest
    chosen, skipped = resolve_providers(providers)
    eager, eager_note = _eager_modules(manifest.run, run_dir) if torch else ({}, "--no-torch was given")
    rows: list[dict[str, Any]] = []
    for name, entry in manifest.graphs.items():
        for batch in batch_sizes:
            feed = _feed(entry, batch)
            for provider in chosen:
                timings, facts = time_graph(bundle.graph_path(entry), provider, feed, warmup=warmup, runs=runs,
                                            threads=threads)
                rows.append(_row(name, "onnxruntime", provider, batch, timings, facts))
            if entry.variant == "fp32" and entry.source_graph in eager:
                for device in _torch_devices():
                    timings = _time_eager(eager[entry.source_graph], feed, device, warmup, runs, threads)
                    rows.append(_row(name, "pytorch eager", device, batch, timings, {"tf32": False}))
    return {"bundle": str(bundle.path), "model": manifest.model, "threads": threads, "warmup": warmup,
            "runs": runs, "batch_sizes": batch_sizes, "machine": platform.processor() or platform.machine(),
            "skipped_providers": skipped, "eager_skipped": eager_note, "rows": rows}


def _feed(entry: GraphEntry, batch: int) -> dict[str, np.ndarray]:
    """Random inputs of the graph's own dtypes and shapes (symbolic axes set to ``batch``)."""
    rng = np.random.default_rng(0)
    feed = {}
    for value in entry.inputs:
        shape = [batch if isinstance(d, str) or d == 0 else d for d in value.shape]
        dtype = np.dtype(value.dtype)
        if np.issubdtype(dtype, np.floating):
            feed[value.name] = rng.standard_normal(shape).astype(dtype)
        else:  # integer inputs (labels, indices): small values that are valid for any class count
            feed[value.name] = np.zeros(shape, dtype=dtype)
    return feed


def _row(graph: str, engine: str, provider: str, batch: int, timings: list[float], facts: dict) -> dict[str, Any]:
    ms = 1e3 * np.asarray(timings)
    p50 = float(np.percentile(ms, 50))
    return {"graph": graph, "engine": engine, "provider": provider.replace("ExecutionProvider", "").lower(),
            "batch": batch, "p50_ms": p50, "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "throughput_per_s": batch * 1e3 / p50, "facts": facts}


def _eager_modules(run_ref: dict[str, Any], run_dir: str | Path | None) -> tuple[dict[str, Any], str | None]:
    """The run's PyTorch modules by graph name, or why eager PyTorch is left out."""
    from zoo.runs import WEIGHTS

    run_path = Path(run_dir) if run_dir else Path(run_ref.get("dir", ""))
    if not (run_path / WEIGHTS).exists():
        return {}, f"the run ({run_path}) is not here; pass --run RUN_DIR to time eager PyTorch"
    try:
        import torch  # noqa: F401
    except ImportError:
        return {}, "torch is not installed here"
    from zoo.runs import load_run

    run = load_run(run_path)
    return {g.name: g.module.eval() for g in run.family.graphs(run.model, run.data_info)}, None


def _torch_devices() -> list[str]:
    import torch

    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def _time_eager(module: Any, feed: dict[str, np.ndarray], device: str, warmup: int, runs: int,
                threads: int) -> list[float]:
    """Seconds per eager call, inputs already on ``device`` (synchronised on CUDA)."""
    import torch

    torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    module = module.to(device)
    inputs = [torch.from_numpy(a).to(device) for a in feed.values()]
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    timings = []
    with torch.inference_mode():
        for _ in range(warmup):
            module(*inputs)
        sync()
        for _ in range(runs):
            start = time.perf_counter()
            module(*inputs)
            sync()
            timings.append(time.perf_counter() - start)
    module.to("cpu")
    return timings


def markdown_table(result: dict[str, Any]) -> str:
    """The benchmark as a markdown table with the settings above it."""
    lines = [f"bundle `{result['bundle']}`: {result['threads']} threads, {result['warmup']} warm-up runs, "
             f"{result['runs']} timed runs, on {result['machine']}", "",
             "| graph | engine | provider | batch | p50 ms | p90 ms | p99 ms | items/s |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in result["rows"]:
        lines.append(f"| {r['graph']} | {r['engine']} | {r['provider']} | {r['batch']} | {r['p50_ms']:.3f} | "
                     f"{r['p90_ms']:.3f} | {r['p99_ms']:.3f} | {r['throughput_per_s']:.0f} |")
    for provider, reason in result["skipped_providers"].items():
        lines.append(f"\nskipped {provider}: {reason}")
    if result.get("eager_skipped"):
        lines.append(f"\neager PyTorch left out: {result['eager_skipped']}")
    return "\n".join(lines)
