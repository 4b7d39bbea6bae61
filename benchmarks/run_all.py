"""Re-run every benchmark and rewrite ``benchmarks/results/``: each file starts with the date, the machine and
its load, and holds at least three runs (the spread between them is the honest error bar).

    python benchmarks/run_all.py [--quick] [--only NAME,...] [--runs 3]

``--quick`` passes each benchmark smaller settings (fewer rounds, pairs, sizes): minutes instead of an
hour, for checking that everything still runs; its files say ``quick``. Benchmarks that need an NVIDIA
GPU (``scripts/gpu_check.sh``) are not re-run here; their committed files stay as they are.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, header

RESULTS = ROOT / "benchmarks" / "results"


@dataclass
class Benchmark:
    """One script, its arguments (full and quick), the result file it writes, and how many runs it needs."""

    name: str
    script: str
    result: str
    args: list[str] = field(default_factory=list)
    quick: list[str] = field(default_factory=list)
    runs: int = 3  # scripts that already pair or repeat internally (fixed_costs, agreement) run once


BENCHMARKS = [
    Benchmark("onnx_vs_eager", "onnx_vs_eager.py", "onnx_vs_eager-cpu-threads1.txt", ["--threads", "1",
              "--rounds", "300"], ["--threads", "1", "--rounds", "50"]),
    Benchmark("onnx_vs_eager-2threads", "onnx_vs_eager.py", "onnx_vs_eager-cpu.txt", ["--threads", "2",
              "--rounds", "300"], ["--threads", "2", "--rounds", "50"]),
    Benchmark("int8_speed", "int8_speed.py", "int8_speed.txt", [], ["--rounds", "50", "--epochs", "1",
              "--models", "cnn"]),
    Benchmark("fixed_costs", "fixed_costs.py", "fixed_costs.txt", ["--pairs", "5"], ["--pairs", "3"], runs=1),
    Benchmark("bench_agreement", "bench_agreement.py", "bench_agreement.txt", ["--repeats", "3"],
              ["--repeats", "3", "--rounds", "50"], runs=1),
    Benchmark("engine_overhead", "engine_overhead.py", "engine_overhead-cpu.txt", ["--rounds", "10"],
              ["--rounds", "2", "--steps", "40"]),
    Benchmark("plugin_startup", "plugin_startup.py", "plugin_startup-cpu.txt", [], ["--rounds", "3"]),
    Benchmark("data_loading", "data_loading.py", "data_loading.txt", [], ["--sizes", "500,2000"]),
    Benchmark("large_model_export", "large_model_export.py", "large_model_export.txt", [], ["--width", "64"],
              runs=1),
    Benchmark("vision_train_speed", "vision_train_speed.py", "vision_train_speed-cpu.txt", [],
              ["--models", "resnet18", "--sizes", "32", "--steps", "3"], runs=1),
    Benchmark("vision_export", "vision_export.py", "vision_export-cpu.txt", [],
              ["--models", "resnet18", "--int8", "resnet18", "--samples", "24"], runs=1),
    Benchmark("vision_int8_digits", "vision_export.py", "vision_int8_digits.txt",
              ["--models", "resnet50", "--int8", "resnet50", "--data", "digits", "--epochs", "3"],
              ["--models", "resnet18", "--int8", "resnet18", "--data", "digits", "--epochs", "1"], runs=1),
    Benchmark("image_pipeline", "image_pipeline.py", "image_pipeline.txt", [], ["--images", "96", "--rounds", "1"],
              runs=1),
    Benchmark("fsdp_check", "fsdp_check.py", "fsdp_check-cpu.txt", [], [], runs=1),
]


def run_one(bench: Benchmark, quick: bool, runs: int) -> str:
    """The result file's text: header, then each run's output as printed."""
    args = bench.quick if quick else bench.args
    command = [sys.executable, str(ROOT / "benchmarks" / bench.script), *args]
    parts = [header(f"benchmarks/{bench.script} {' '.join(args)}".strip() + (" (quick)" if quick else "")),
             f"# runs: {runs} (each printed below; the spread between them is the error bar)"]
    for index in range(1, runs + 1):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        parts.append(f"\n## run {index} of {runs} ({time.perf_counter() - start:.0f} s, exit {done.returncode})")
        parts.append(done.stdout.rstrip() if done.returncode == 0 else (done.stdout + done.stderr[-3000:]).rstrip())
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Smaller settings: does everything still run?")
    parser.add_argument("--only", help="Comma list of benchmark names: " + ", ".join(b.name for b in BENCHMARKS))
    parser.add_argument("--runs", type=int, default=3, help="Runs of each benchmark that does not repeat itself.")
    args = parser.parse_args()
    wanted = set(args.only.split(",")) if args.only else {b.name for b in BENCHMARKS}
    unknown = wanted - {b.name for b in BENCHMARKS}
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    for bench in BENCHMARKS:
        if bench.name not in wanted:
            continue
        runs = args.runs if bench.runs > 1 else 1
        print(f"{bench.name}: {runs} run(s)...", flush=True)
        text = run_one(bench, args.quick, runs)
        (RESULTS / bench.result).write_text(text)
        print(f"  wrote {(RESULTS / bench.result).relative_to(ROOT)}", flush=True)


if __name__ == "__main__":
    main()
