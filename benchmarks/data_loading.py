"""Loading an image folder lazily (DataLoader workers) against loading it into memory up front.

Builds folders of small RGB PNGs (10 classes), then for each size runs, each in a fresh process,
one training epoch's worth of loading both ways, and reports images per second and peak memory
(resident set of the main process and of the largest worker).

    python benchmarks/data_loading.py [--sizes 5000,50000] [--image 16] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def build_folder(root: Path, count: int, size: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(10):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels, "RGB").save(root / f"class{i % 10}" / f"{i}.png")
    return root


def peak_mb() -> dict[str, float]:
    kib = 1024.0  # ru_maxrss is in KiB on Linux
    return {"main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib,
            "worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib}


def run_one(folder: str, mode: str, workers: int, batch: int) -> dict[str, float]:
    """One epoch over the training split, ``lazy`` or ``eager``; called in its own process."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from zoo.data import load_dataset
    from zoo.data.torch_data import torch_dataset

    started = time.perf_counter()
    data = load_dataset(f"imagefolder:{folder}", seed=0)
    prepared = time.perf_counter() - started
    if mode == "eager":
        images = np.asarray(data.x_train)  # every image read and held in memory
        dataset = TensorDataset(torch.from_numpy(images), torch.from_numpy(data.y_train))
        workers = 0
    else:
        dataset = torch_dataset(data.x_train, data.y_train)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(0))
    started = time.perf_counter()
    seen = 0
    for x, _ in loader:
        seen += len(x)
    seconds = time.perf_counter() - started + (prepared if mode == "eager" else 0.0)
    return {"images": seen, "seconds": seconds, "prepare_seconds": prepared, "images_per_s": seen / seconds,
            **peak_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,50000")
    parser.add_argument("--image", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child[0], args.child[1], args.workers, args.batch)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in (int(s) for s in args.sizes.split(",")):
            folder = build_folder(Path(tmp) / f"n{count}", count, args.image)
            for mode in ("lazy", "eager"):
                out = subprocess.run([sys.executable, __file__, "--workers", str(args.workers), "--batch",
                                      str(args.batch), "--child", str(folder), mode],
                                     capture_output=True, text=True, check=True)
                rows.append({"count": count, "mode": mode, **json.loads(out.stdout.strip().splitlines()[-1])})
    print(f"{args.image}x{args.image} RGB PNGs, batch {args.batch}, {args.workers} workers (lazy)")
    print(f"{'images':>7} {'mode':>6} {'img/s':>8} {'main MB':>8} {'worker MB':>9} {'stats pass s':>12}")
    for r in rows:
        stats = f"{r['prepare_seconds']:.1f}" if r["mode"] == "lazy" else "-"
        print(f"{r['count']:>7} {r['mode']:>6} {r['images_per_s']:>8.0f} {r['main_mb']:>8.0f} "
              f"{r['worker_mb']:>9.0f} {stats:>12}")
    by = {(r["count"], r["mode"]): r for r in rows}
    counts = sorted({r["count"] for r in rows})
    if len(counts) > 1:
        small, large = counts[0], counts[-1]
        for mode in ("lazy", "eager"):
            growth = by[(large, mode)]["main_mb"] / by[(small, mode)]["main_mb"]
            print(f"{mode}: main-process peak memory ×{growth:.2f} from {small} to {large} images")


if __name__ == "__main__":
    main()
