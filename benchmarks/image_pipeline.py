"""Images per second of the engine's image-folder pipeline at 224×224, with 0, 1 and 2 DataLoader workers.

Builds a folder of JPEG photos-like images of mixed sizes (256–400 px a side, 10 classes, as an ImageNet-style
folder), then, each in a fresh process, reads one epoch of it as ``zoo train --data imagefolder:DIR
--image-size 224x224 --crop-flip --workers N`` does: lazy images (decode and resize in the workers), the
engine's batch order, and the random-resized crop and flip on every batch. No model: this is the rate the
pipeline can feed. Each worker count runs ``--rounds`` times, in rotating order; the median is reported.

    python benchmarks/image_pipeline.py [--images 640] [--batch 32] [--workers 0,1,2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def build_folder(root: Path, count: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):
        height, width = (int(v) for v in rng.integers(256, 401, 2))
        # smooth colour fields plus noise: compresses like a photo, not like white noise
        base = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
        big = np.kron(base, np.ones((16, 16, 1), dtype=np.uint8))[:height, :width]
        pixels = np.clip(big + rng.normal(0, 12, big.shape), 0, 255).astype(np.uint8)
        folder = root / f"class{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, "RGB").save(folder / f"{i}.jpg", quality=90)
    return root


def one_epoch(folder: str, workers: int, batch: int) -> dict[str, float]:
    """In its own process: one epoch of the engine's image pipeline; images per second."""
    import torch

    from zoo.data import DataOptions, load_dataset
    from zoo.data.torch_data import epoch_batches
    from zoo.engine.adapt import prepare_batch
    from zoo.engine.batches import epoch_order
    from zoo.engine.options import TrainOptions

    torch.set_num_threads(1)
    data = load_dataset(f"imagefolder:{folder}", seed=0, options=DataOptions(image_size=(224, 224), channels=3))
    options = TrainOptions(model="resnet50", crop_flip=True)
    order = epoch_order(len(data.x_train), 0, 1)
    indices = [order[start : start + batch] for start in range(0, len(order), batch)]
    started = time.perf_counter()
    seen = 0
    for index, pair in enumerate(epoch_batches(data.x_train, torch.from_numpy(data.y_train), indices,
                                               torch.device("cpu"), workers=workers, pin_memory=False)):
        images, _ = prepare_batch(pair, options, seed=0, epoch=1, index=index)
        assert images.shape[1:] == (3, 224, 224)
        seen += len(images)
    seconds = time.perf_counter() - started
    return {"images": seen, "seconds": seconds, "images_per_s": seen / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=640)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_epoch(args.child[0], int(args.child[1]), args.batch)))
        return
    counts = [int(w) for w in args.workers.split(",")]
    print(f"# {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} "
          f"at start; {args.images} JPEGs 256-400 px -> 224x224 with --crop-flip, batch {args.batch}, "
          f"{args.rounds} rounds")
    print(f"# python {' '.join(sys.argv)}")
    rates: dict[int, list[float]] = {w: [] for w in counts}
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_folder(Path(tmp) / "images", args.images)
        for round_ in range(args.rounds):
            for workers in counts[round_ % len(counts):] + counts[: round_ % len(counts)]:
                out = subprocess.run([sys.executable, __file__, "--batch", str(args.batch), "--child", str(folder),
                                      str(workers)], capture_output=True, text=True, check=True)
                rates[workers].append(json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"])
    base = statistics.median(rates[counts[0]])
    for workers in counts:
        rate = statistics.median(rates[workers])
        print(f"workers {workers}: {rate:6.1f} images/s (rounds: {', '.join(f'{r:.1f}' for r in rates[workers])}), "
              f"×{rate / base:.2f} against {counts[0]} workers")
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
