"""Export + verify time and peak memory of resnet50 and vit-base at 224×224, and int8 against fp32 at batch 64.

By default each model gets a run of one training step on synthetic 3×224×224 data (an npz, 10 classes), then
`export_run` (dynamo, opset 18, CPU parity on random batches and the validation samples) in a child process,
so `ru_maxrss` is that model's peak alone. With `--int8 resnet50` that model is exported with `quantize="int8"`
as well, and `zoo bench` times the fp32 and int8 graphs at batch 64 under ONNX Runtime on the CPU.

Accuracy lost to int8 means something only for a trained model: `--data digits --image-size 32x32 --epochs 3`
trains on the digits (as 3×32×32 images, the 3×3 `stem=small`) and reports the validation accuracy of fp32 and
int8, and their top-1 agreement, besides the speed at that size.

    python benchmarks/vision_export.py [--models resnet50,vit-base] [--int8 resnet50] [--threads 2] [--runs 3]
        [--data digits --image-size 32x32 --epochs 3 --optimizer adamw --lr 0.001]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(name: str, data: str, out: str, int8: bool, args: argparse.Namespace) -> None:
    """In its own process: train, export and verify, maybe int8 and a batch-64 benchmark; JSON out."""
    import torch

    import zoo
    from zoo.bundles import export_run

    threads, runs = args.threads, args.runs
    torch.set_num_threads(threads)
    if args.epochs:  # a real (short) training run: the accuracies mean something
        small = {"image_size": args.image_size, "channels": 3, "model_args": {"stem": "small"}}
        run = zoo.train(name, dataset=data, epochs=args.epochs, batch_size=32, device="cpu", out=out,
                        progress=False, optimizer=args.optimizer, lr=args.lr, **small)
    else:
        run = zoo.train(name, dataset=data, batch_size=8, max_steps=1, device="cpu", out=out, progress=False,
                        smoke=True)
    started = time.perf_counter()
    result = export_run(run.run_dir, out=Path(out) / "exports", providers=["cpu"],
                        quantize="int8" if int8 else None)
    seconds = time.perf_counter() - started
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    report: dict = {"model": name, "export_verify_s": round(seconds, 1), "peak_rss_gib": round(peak_gib, 2),
                    "passed": result.parity["passed"]}
    if int8:
        from zoo.bundles.bench import bench_bundle

        bench = bench_bundle(result.bundle_dir, batch_sizes=[64], threads=threads, warmup=1, runs=runs,
                             providers=["cpu"], torch=False)
        report["bench"] = {row["graph"]: round(row["throughput_per_s"], 1) for row in bench["rows"]}
        report["images_per_s_ratio_int8_fp32"] = round(report["bench"]["model.int8"] / report["bench"]["model"], 2)
        report["accuracy"] = {g: {k: v.get("CPUExecutionProvider", {}).get(k)
                                  for k in ("accuracy", "accuracy_drop", "top1_agreement")}
                              for g, v in result.parity["graphs"].items()}
    print(json.dumps(report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,vit-base")
    parser.add_argument("--int8", default="resnet50")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=120)
    parser.add_argument("--data", default=None, help="train on this dataset (e.g. digits) instead of synthetic data")
    parser.add_argument("--image-size", default="32x32")
    parser.add_argument("--epochs", type=int, default=0)
    parser.add_argument("--optimizer", default="adamw", help="with --data: the optimizer (default adamw)")
    parser.add_argument("--lr", type=float, default=1e-3, help="with --data: the learning rate (default 0.001)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, data, out, int8 = args.child
        child(name, data, out, int8 == "1", args)
        return
    import numpy as np

    what = (f"{args.data} at 3x{args.image_size}, {args.epochs} epochs, {args.optimizer} lr {args.lr}, stem=small"
            if args.data
            else f"synthetic 3x224x224, {args.samples} samples, one training step")
    print(f"# {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} "
          f"at start; threads {args.threads}; {what}")
    print(f"# python {' '.join(sys.argv)}")
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        path = Path(tmp) / "synthetic.npz"
        np.savez(path, images=rng.integers(0, 256, (args.samples, 224, 224, 3), dtype=np.uint8),
                 labels=rng.integers(0, 10, args.samples))
        for name in args.models.split(","):
            int8 = "1" if name in args.int8.split(",") else "0"
            proc = subprocess.run([sys.executable, __file__, "--threads", str(args.threads), "--runs", str(args.runs),
                                   "--epochs", str(args.epochs), "--image-size", args.image_size,
                                   "--optimizer", args.optimizer, "--lr", str(args.lr),
                                   "--child", name, args.data or f"npz:{path}", str(Path(tmp) / name), int8],
                                  capture_output=True, text=True)
            lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
            print(lines[-1] if lines else f"{name}: failed: {proc.stderr.strip().splitlines()[-1:]}", flush=True)
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
