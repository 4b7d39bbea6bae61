"""Do `zoo bench` and `benchmarks/onnx_vs_eager.py` agree? Both time ONNX Runtime against eager PyTorch on the CPU
with zoo's one method (:mod:`zoo.timing`: interleaved call by call, fixed threads).

Trains and exports one cnn, then runs each tool ``--repeats`` times (alternating) at the same threads,
rounds and batch sizes, and prints each tool's ORT speed-up per batch: the median over repeats of the
per-round median, the range over repeats, and the per-round p10–p90 spread. The tools agree when each
one's median lies inside the other's p10–p90 spread.

    python benchmarks/bench_agreement.py [--repeats 3] [--rounds 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, header, zoo_command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", default="1,64")
    args = parser.parse_args()
    print(header("benchmarks/bench_agreement.py: zoo bench against benchmarks/onnx_vs_eager.py (cnn)"))
    print(f"repeats={args.repeats} rounds={args.rounds} threads={args.threads}")
    found: dict[str, dict[int, list[dict[str, float]]]] = {"zoo bench": {}, "onnx_vs_eager.py": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run(zoo_command("train", "cnn", "--epochs", "1", "--out", str(work / "runs")), check=True,
                       capture_output=True, cwd=ROOT)
        run = next((work / "runs").glob("cnn-*"))
        subprocess.run(zoo_command("export", str(run), "--out", str(work / "exports")), check=True,
                       capture_output=True, cwd=ROOT)
        bundle = work / "exports" / run.name
        for _ in range(args.repeats):
            bench = subprocess.run(zoo_command("bench", str(bundle), "--providers", "cpu", "--json", "--batch-sizes",
                                               args.batches, "--runs", str(args.rounds), "--threads",
                                               str(args.threads)), check=True, capture_output=True, text=True,
                                   cwd=ROOT)
            for ratio in json.loads(bench.stdout)["ratios"]:
                found["zoo bench"].setdefault(ratio["batch"], []).append(ratio["ort_speedup"])
            out = work / "vs.json"
            subprocess.run([sys.executable, str(ROOT / "benchmarks/onnx_vs_eager.py"), "--models", "cnn",
                            "--threads", str(args.threads), "--rounds", str(args.rounds), "--batches", args.batches,
                            "--json", str(out)], check=True, capture_output=True, cwd=ROOT)
            for row in json.loads(out.read_text())["rows"]:
                found["onnx_vs_eager.py"].setdefault(row["batch"], []).append(
                    {"median": row["speedup"], "p10": row["speedup_p10"], "p90": row["speedup_p90"]})
    summary: dict[str, dict[int, tuple[float, float, float]]] = {}
    for tool, per_batch in found.items():
        for batch, runs in sorted(per_batch.items()):
            medians = [r["median"] for r in runs]
            low, high = statistics.median(r["p10"] for r in runs), statistics.median(r["p90"] for r in runs)
            summary.setdefault(tool, {})[batch] = (statistics.median(medians), low, high)
            print(f"{tool:17} batch {batch:>3}: ORT speed-up {statistics.median(medians):.2f}x (repeats "
                  f"{min(medians):.2f}-{max(medians):.2f}x; per-round p10-p90 {low:.2f}-{high:.2f}x)")
    for batch in summary["zoo bench"]:
        a, b = summary["zoo bench"][batch], summary["onnx_vs_eager.py"][batch]
        agree = b[1] <= a[0] <= b[2] and a[1] <= b[0] <= a[2]
        print(f"batch {batch}: {'agree' if agree else 'DISAGREE'} within their spreads")
    from zoo.timing import machine_load

    print(f"# at end: {machine_load().describe()}")


if __name__ == "__main__":
    main()
