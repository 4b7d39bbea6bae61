"""Runtimes × graphs: does every graph of a bundle run on each runtime, how close, and how fast?

For each bundle given (export them with ``--quantize int8 --fp16`` to cover every variant), every graph
runs on ONNX Runtime, onnx's reference evaluator, OpenVINO (f32 pinned) and tract (batch bound) against
the bundle's test vectors, as ``zoo verify --runtimes`` does: pass / fail / unsupported and the max abs
difference. Speed is the median latency of each runtime relative to ONNX Runtime at 1 thread (ratio > 1:
faster than ONNX Runtime) at batch 1 and 64, on random inputs of the graph's own shapes. The reference
evaluator is pure numpy and is not timed.

    python benchmarks/runtimes.py BUNDLE... [--rounds 30] [--markdown benchmarks/results/runtimes.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

TIMED = ("openvino", "tract")
#: Runtimes shown but never part of a verdict (zoo verify says so too).
INFORMATION_ONLY = ("openvino-default",)
BATCHES = (1, 64)


def feeds_for(entry: Any, batch: int, check: Any = None) -> dict[str, np.ndarray]:
    """Random inputs of the graph's shapes at ``batch`` (labels as small integers); ``entry`` is a ``GraphEntry``.
    A graph with named sizes besides the batch (a language model's sequence and cache lengths, which must agree
    with each other) gets its first stored test set's first sample, repeated ``batch`` times (``check``: its
    ``GraphCheck``)."""
    if check is not None and check.cases and any(isinstance(d, str) for s in entry.inputs for d in s.shape[1:]):
        first = zip(check.input_names, check.cases[0].inputs, strict=True)
        return {name: np.repeat(np.asarray(x)[:1], batch, axis=0) for name, x in first}
    rng = np.random.default_rng(0)
    feeds = {}
    for spec in entry.inputs:
        shape = [batch, *spec.shape[1:]]
        if spec.dtype.startswith("int"):
            feeds[spec.name] = rng.integers(0, 10, shape).astype(spec.dtype)
        else:
            feeds[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
    return feeds


def median_seconds(runner: Any, feed: dict[str, np.ndarray], rounds: int) -> float:
    for _ in range(3):
        runner(feed)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        runner(feed)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def single_thread_runner(name: str, path: Path, input_names: list[str]) -> Any:
    """Like ``zoo.bundles.runtime_checks.load_runner`` but pinned to one thread for a fair timing."""
    from zoo.bundles.runtime_checks import load_runner

    if name == "openvino":
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                      {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1})
        request = compiled.create_infer_request()
        return lambda feed: [request.infer(feed)[o] for o in compiled.outputs]
    return load_runner(name, path, input_names)  # onnxruntime: 1 thread; tract: single-threaded


def bundle_rows(bundle: Path, rounds: int) -> list[dict[str, Any]]:
    from zoo.bundles.manifest import Bundle
    from zoo.bundles.runtime_checks import RUNTIMES, Unsupported, check_graph_on
    from zoo.bundles.verification import vector_check

    opened = Bundle.open(bundle, check_graphs=True)
    manifest = opened.manifest
    rows = []
    for name, entry in manifest.graphs.items():
        check = vector_check(opened, entry)
        baseline = single_thread_runner("onnxruntime", check.path, check.input_names)
        base = {b: median_seconds(baseline, feeds_for(entry, b, check), rounds) for b in BATCHES}
        for runtime in RUNTIMES:
            result = check_graph_on(runtime, check)
            row = {"model": manifest.model, "graph": name, "runtime": runtime, "status": result.status,
                   "max_abs_diff": result.max_abs_diff, "reason": result.reason}
            if runtime in TIMED and result.status != "unsupported":
                try:
                    runner = single_thread_runner(runtime, check.path, check.input_names)
                    for b in BATCHES:
                        row[f"speed_b{b}"] = base[b] / median_seconds(runner, feeds_for(entry, b, check), rounds)
                except Unsupported as exc:
                    row["reason"] = f"not timed: {exc}"
            elif runtime == "onnxruntime":
                row.update({f"speed_b{b}": 1.0 for b in BATCHES})
            rows.append(row)
            print(row, flush=True)
    return rows


def markdown(rows: list[dict[str, Any]], note: str = "") -> str:
    from zoo.bundles.runtime_checks import REQUIREMENTS

    def speed(row: dict[str, Any], batch: int) -> str:
        value = row.get(f"speed_b{batch}")
        return "—" if value is None else f"{value:.2f}×"

    models = ", ".join(dict.fromkeys(r["model"] for r in rows))
    lines = [
        "# Runtimes × graphs", "",
        f"`python benchmarks/runtimes.py` on {platform.machine()} ({os.cpu_count()} CPUs visible), every graph of "
        f"each bundle given ({models}; briefly trained, exported with `--quantize int8 --fp16`), checked against "
        "the bundle's own test vectors at its tolerance. Speed: ONNX Runtime's median latency divided by the "
        "runtime's, both at 1 thread (> 1: faster than ONNX Runtime); the reference evaluator is not timed.", "",
        *([note, ""] if note else []),
        "What each runtime needs:", *[f"- **{k}**: {v}" for k, v in REQUIREMENTS.items()], "",
        "| model | graph | runtime | result | max abs diff | speed b1 | speed b64 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    informational = [r for r in rows if r["runtime"] in INFORMATION_ONLY]
    for r in rows:
        diff = "" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.1e}"
        result = r["status"] + (f" ({r['reason']})" if r["status"] == "unsupported" else "")
        result += " (information only)" if r in informational else ""
        lines.append(f"| {r['model']} | {r['graph']} | {r['runtime']} | {result} | {diff} | {speed(r, 1)} | "
                     f"{speed(r, 64)} |")
    judged = [r for r in rows if r not in informational]
    passed = sum(r["status"] == "passed" for r in judged)
    lines += ["", f"{passed} of {len(judged)} graph × runtime checks passed; "
              f"{sum(r['status'] == 'failed' for r in judged)} failed; "
              f"{sum(r['status'] == 'unsupported' for r in judged)} unsupported "
              f"(besides {len(informational)} rows for information only: "
              f"{sum(r['status'] == 'passed' for r in informational)} within the tolerance)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--markdown", type=Path, help="Write the table here.")
    parser.add_argument("--note", default="", help="A paragraph for the table's header (how it was run).")
    args = parser.parse_args()
    rows = [row for bundle in args.bundles for row in bundle_rows(bundle, args.rounds)]
    table = markdown(rows, args.note)
    if args.markdown:
        args.markdown.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
