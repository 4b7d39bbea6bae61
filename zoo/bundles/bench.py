"""``zoo bench``: latency and throughput of a bundle's graphs, eager PyTorch against ONNX Runtime.

One timing method (:mod:`zoo.timing`, shared with ``benchmarks/onnx_vs_eager.py``): every engine that
runs in this process (ONNX Runtime on the CPU, eager PyTorch on the CPU) is called in turn, round by
round, on the same inputs with the same fixed thread count, after untimed warm-up rounds; the ratio
is taken per round, so its spread is reported too. GPU providers are timed in a child process each
(as in verification) and eager PyTorch on CUDA runs with TF32 off: those rows are not interleaved
and say so. The machine's load is recorded at the start and the end.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from zoo.bundles.graph_checks import resolve_providers
from zoo.bundles.manifest import GraphEntry
from zoo.errors import ZooError
from zoo.ort import CPU, session, session_facts, time_graph
from zoo.timing import interleaved, machine_load, ratio_spread, spread

METHOD = ("interleaved call by call (ONNX Runtime CPU and eager PyTorch CPU in turn, each round), fixed threads, "
          "untimed warm-up; GPU rows timed separately in a child process")


def bench_bundle(bundle_dir: str | Path, *, batch_sizes: list[int], threads: int = 2, warmup: int = 10,
                 runs: int = 100, providers: list[str] | None = None, run_dir: str | Path | None = None,
                 torch: bool = True) -> dict[str, Any]:
    """Time every graph of a bundle at each batch size; a dict with the settings, rows, ratios and machine load."""
    from zoo.bundles.manifest import Bundle

    if not batch_sizes or min(batch_sizes) < 1 or threads < 1 or runs < 1 or warmup < 0:
        raise ZooError("--batch-sizes, --threads and --runs must be positive (and --warmup at least 0)")
    load_start = machine_load()
    bundle = Bundle.open(bundle_dir, check_graphs=True)
    manifest = bundle.manifest
    chosen, skipped = resolve_providers(providers)
    eager, eager_note = _eager_modules(manifest.run, run_dir) if torch else ({}, "--no-torch was given")
    rows: list[dict[str, Any]] = []
    ratios: list[dict[str, Any]] = []
    for name, entry in manifest.graphs.items():
        path = bundle.graph_path(entry)
        module = eager.get(entry.source_graph) if entry.variant == "fp32" else None
        cpu_session = session(str(path), CPU, threads=threads) if CPU in chosen else None
        for batch in batch_sizes:
            feed = _feed(entry, batch)
            calls: dict[str, Callable[[], Any]] = {}
            if cpu_session is not None:
                calls["onnxruntime"] = lambda s=cpu_session, f=feed: s.run(None, f)
            if module is not None:
                calls["pytorch eager"] = _eager_call(module, feed, threads)
            times = _interleaved(calls, warmup, runs)
            if "onnxruntime" in times:
                rows.append(_row(name, "onnxruntime", CPU, batch, times["onnxruntime"],
                                 session_facts(cpu_session, CPU), True))
            if "pytorch eager" in times:
                rows.append(_row(name, "pytorch eager", "cpu", batch, times["pytorch eager"], {"tf32": False}, True))
            if len(times) == 2:
                ratios.append({"graph": name, "batch": batch, "provider": "cpu",
                               "ort_speedup": ratio_spread(times["pytorch eager"], times["onnxruntime"])})
            for provider in (p for p in chosen if p != CPU):
                timings, facts = time_graph(path, provider, feed, warmup=warmup, runs=runs, threads=threads)
                rows.append(_row(name, "onnxruntime", provider, batch, timings, facts, False))
            if module is not None and _cuda_available():
                timings = _time_eager_cuda(module, feed, warmup, runs)
                rows.append(_row(name, "pytorch eager", "cuda", batch, timings, {"tf32": False}, False))
    return {"bundle": str(bundle.path), "model": manifest.model, "threads": threads, "warmup": warmup,
            "runs": runs, "batch_sizes": batch_sizes, "machine": platform.processor() or platform.machine(),
            "method": METHOD, "load_start": load_start.to_dict(), "load_end": machine_load().to_dict(),
            "skipped_providers": skipped, "eager_skipped": eager_note, "rows": rows, "ratios": ratios}


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


def _row(graph: str, engine: str, provider: str, batch: int, timings: list[float], facts: dict,
         interleaved_: bool) -> dict[str, Any]:
    times = spread(timings)
    return {"graph": graph, "engine": engine, "provider": provider.replace("ExecutionProvider", "").lower(),
            "batch": batch, **times, "throughput_per_s": batch * 1e3 / times["p50_ms"],
            "interleaved": interleaved_, "facts": facts}


def _eager_modules(run_ref: dict[str, Any], run_dir: str | Path | None) -> tuple[dict[str, Any], str | None]:
    """The run's PyTorch modules by graph name, or why eager PyTorch is left out."""
    from zoo.run_layout import WEIGHTS

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


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _interleaved(calls: dict[str, Callable[[], Any]], warmup: int, runs: int) -> dict[str, list[float]]:
    if not calls:
        return {}
    try:
        import torch
    except ImportError:
        return interleaved(calls, warmup=warmup, rounds=runs)
    with torch.inference_mode():
        return interleaved(calls, warmup=warmup, rounds=runs)


def _eager_call(module: Any, feed: dict[str, np.ndarray], threads: int) -> Callable[[], Any]:
    """One eager CPU call of ``module`` on ``feed`` (TF32 off, ``threads`` intra-op threads)."""
    import torch

    torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    module = module.to("cpu")
    inputs = [torch.from_numpy(a) for a in feed.values()]
    return lambda: module(*inputs)


def _time_eager_cuda(module: Any, feed: dict[str, np.ndarray], warmup: int, runs: int) -> list[float]:
    """Seconds per eager CUDA call, inputs already on the GPU, synchronised after each call."""
    import torch

    module = module.to("cuda")
    inputs = [torch.from_numpy(a).to("cuda") for a in feed.values()]

    def call() -> None:
        module(*inputs)
        torch.cuda.synchronize()

    with torch.inference_mode():
        timings = interleaved({"cuda": call}, warmup=warmup, rounds=runs)["cuda"]
    module.to("cpu")
    return timings


def markdown_table(result: dict[str, Any]) -> str:
    """The benchmark as a markdown table with the settings above it and the ORT/eager ratios below."""
    lines = [f"bundle `{result['bundle']}`: {result['threads']} threads, {result['warmup']} warm-up rounds, "
             f"{result['runs']} timed rounds, on {result['machine']}; {result['method']}",
             f"machine at start: {_load_text(result['load_start'])}; at end: {_load_text(result['load_end'])}", "",
             "| graph | engine | provider | batch | p10 ms | p50 ms | p90 ms | p99 ms | items/s | interleaved |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in result["rows"]:
        lines.append(f"| {r['graph']} | {r['engine']} | {r['provider']} | {r['batch']} | {r['p10_ms']:.3f} | "
                     f"{r['p50_ms']:.3f} | {r['p90_ms']:.3f} | {r['p99_ms']:.3f} | {r['throughput_per_s']:.0f} | "
                     f"{'yes' if r['interleaved'] else 'no'} |")
    if result["ratios"]:
        lines += ["", "| graph | batch | ONNX Runtime speed-up over eager (median per round) | p10–p90 |",
                  "| --- | ---: | ---: | --- |"]
        for r in result["ratios"]:
            s = r["ort_speedup"]
            lines.append(f"| {r['graph']} | {r['batch']} | {s['median']:.2f}× | {s['p10']:.2f}–{s['p90']:.2f}× |")
    for provider, reason in result["skipped_providers"].items():
        lines.append(f"\nskipped {provider}: {reason}")
    if result.get("eager_skipped"):
        lines.append(f"\neager PyTorch left out: {result['eager_skipped']}")
    return "\n".join(lines)


def _load_text(load: dict[str, Any]) -> str:
    state = "LOADED, timings noisy" if load["loaded"] else "not loaded"
    return f"load {load['load_1m']:.2f} on {load['cores']} cores ({state})"
