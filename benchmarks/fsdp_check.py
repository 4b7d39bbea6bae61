"""FSDP2 vs DDP vs one process through ``zoo train``: the same few steps, their loss curves and how far the
final weights are apart; then FSDP stopped halfway and resumed, against FSDP uninterrupted.

    OMP_NUM_THREADS=1 python benchmarks/fsdp_check.py > benchmarks/results/fsdp_check-cpu.txt

Two models: the cnn (SGD with momentum) and resnet18 with the small stem on 16×16 RGB digits (AdamW), in
smoke mode (3 batches an epoch, 2 epochs: 6 steps). Per-step losses are not logged by the engine, so the
curve is the per-epoch ``train_loss`` of metrics.jsonl. Batch norm makes two processes differ from one
(each normalises its half batch), so for resnet18 the DDP column is the reference for FSDP.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import header

CASES = {
    "cnn (SGD)": ["cnn", "--smoke", "--deterministic", "--device", "cpu"],
    "resnet18 stem=small 16x16 (AdamW)": ["resnet18", "--arg", "stem=small", "--image-size", "16x16", "--channels",
                                          "3", "--optimizer", "adamw", "--batch-size", "32", "--smoke",
                                          "--deterministic", "--device", "cpu"],
}
SETUPS = {"1 process": [], "2 x DDP": ["--nproc", "2"], "2 x FSDP": ["--nproc", "2", "--strategy", "fsdp"]}


def train(args: list[str], out: Path | None) -> tuple[Path, float]:
    """One ``zoo train`` run (``out`` None: a resumed one); its folder and wall time."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "zoo", "train", *args, *(["--out", str(out)] if out else [])]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
    return (next(out.iterdir()) if out else Path()), time.perf_counter() - started


def curve(run: Path) -> list[float]:
    return [json.loads(line)["train_loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def max_diff(a: Path, b: Path, buffers: bool = False) -> float:
    """The largest absolute difference of the final weights (or of the batch-norm statistics)."""
    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    keys = [k for k in x if k.endswith(BUFFERS) == buffers]
    return max((float((x[k].double() - y[k].double()).abs().max()) for k in keys), default=0.0)


def main() -> None:
    print(header("benchmarks/fsdp_check.py"))
    print(f"# torch {torch.__version__}, {platform.machine()}, gloo, OMP_NUM_THREADS=1")
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in CASES.items():
            print(f"\n## {name}: {' '.join(args)}")
            runs = {}
            for setup, extra in SETUPS.items():
                runs[setup], seconds = train([*args, *extra], Path(tmp) / f"{name[:3]}-{setup}")
                print(f"{setup:10s} train_loss per epoch {[round(v, 7) for v in curve(runs[setup])]} "
                      f"({seconds:.1f} s with start-up)")
            base = runs["1 process"]
            for setup in ("2 x DDP", "2 x FSDP"):
                stats = f", batch-norm statistics {max_diff(runs[setup], base, True):.3g}" if "resnet" in name else ""
                print(f"max |weight difference| {setup} vs 1 process: {max_diff(runs[setup], base):.3g}{stats}")
            if "resnet" in name:
                print("(batch norm normalises each process's half batch, with DDP as with FSDP (no SyncBatchNorm): "
                      "two processes do not compute what one does; FSDP vs DDP is the comparison that counts)")
            print(f"max |weight difference| 2 x FSDP vs 2 x DDP: {max_diff(runs['2 x FSDP'], runs['2 x DDP']):.3g}")
            stopped, _ = train([*args, *SETUPS["2 x FSDP"], "--max-steps", "4"], Path(tmp) / f"{name[:3]}-stop")
            train(["--resume", str(stopped), "--nproc", "2"], None)
            same = curve(stopped) == curve(runs["2 x FSDP"])
            print(f"2 x FSDP stopped at step 4 and resumed vs uninterrupted: max |weight difference| "
                  f"{max_diff(stopped, runs['2 x FSDP']):.3g}, metrics identical: {same}")


if __name__ == "__main__":
    main()
