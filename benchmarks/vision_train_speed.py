"""Images per second: the zoo engine against a hand-written loop, for the vision models at 32×32 on the CPU.

Synthetic data (an npz of random 3×32×32 images, 10 classes), `stem=small`, the model's own optimizer and
hyperparameters, the same seed, batch and thread count, in this one process, interleaved round by round (engine
then plain, plain then engine, ...). A step's time is the time between two consecutive step ends; the median
leaves out steps that span an epoch end. Also says whether the weights after the same steps are bitwise equal.

    python benchmarks/vision_train_speed.py [--models resnet18,vit-small] [--steps 8] [--rounds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def stamps_of_engine(name: str, data: str, steps: int, batch: int, out: Path) -> tuple[list[float], dict[str, Any]]:
    from safetensors.torch import load_file

    import zoo
    from zoo.engine import progress

    stamps: list[float] = []
    original = progress.Progress.step

    def timed_step(self: Any, step: int) -> None:
        stamps.append(time.perf_counter())
        original(self, step)

    progress.Progress.step = timed_step  # type: ignore[method-assign]
    try:
        run = zoo.train(name, dataset=data, batch_size=batch, epochs=100, max_steps=steps, device="cpu", out=out,
                        progress=False, model_args={"stem": "small"})
    finally:
        progress.Progress.step = original  # type: ignore[method-assign]
    return stamps, load_file(run.run_dir / "model.safetensors")


def stamps_of_plain(name: str, data: str, steps: int, batch: int, out: Path) -> tuple[list[float], dict[str, Any]]:
    """What a user writes by hand: the same model, optimizer and sample order."""
    import zoo
    from zoo.data import load_dataset
    from zoo.engine.config import resolve_hyperparameters
    from zoo.engine.setup import seed_everything
    from zoo.family import make_optimizer

    spec = zoo.get_spec(name)
    family = zoo.load_family(spec.family)
    hp = resolve_hyperparameters(family.hyperparameters, spec.defaults, {"batch_size": batch})
    splits = load_dataset(data, seed=0)
    args = {**spec.model_args, "in_channels": 3, "num_classes": 10, "stem": "small"}
    if "image_size" in spec.model_args:
        args["image_size"] = [32, 32]
    seed_everything(0)
    model = zoo.create_model(name, **args)
    optimizer = make_optimizer(model.parameters(), hp)
    x_all, y_all = torch.from_numpy(splits.x_train), torch.from_numpy(splits.y_train)
    stamps: list[float] = []
    step, epoch = 0, 0
    while step < steps:
        epoch += 1
        order = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(epoch))
        model.train()
        total = torch.zeros(())
        for start in range(0, len(order) - batch + 1, batch):
            index = order[start : start + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x_all[index]), y_all[index])
            loss.backward()
            optimizer.step()
            total += loss.detach()
            step += 1
            stamps.append(time.perf_counter())
            if step == steps:
                break
    return stamps, model.state_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,vit-small")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--samples", type=int, default=640)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at start; torch {torch.__version__}, threads {args.threads}, "
          f"batch {args.batch_size}, {args.steps} steps x {args.rounds} rounds, fp32 eager, 3x32x32, stem=small")
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        path = Path(tmp) / "synthetic.npz"
        np.savez(path, images=rng.integers(0, 256, (args.samples, 32, 32, 3), dtype=np.uint8),
                 labels=rng.integers(0, 10, args.samples))
        data = f"npz:{path}"
        for name in args.models.split(","):
            engine, plain, last = [], [], {}
            for round_ in range(args.rounds):
                order = ("engine", "plain") if round_ % 2 == 0 else ("plain", "engine")
                for which in order:
                    run = stamps_of_engine if which == "engine" else stamps_of_plain
                    stamps, weights = run(name, data, args.steps, args.batch_size, Path(tmp))
                    step = statistics.median(b - a for a, b in itertools.pairwise(stamps))
                    (engine if which == "engine" else plain).append(step)
                    last[which] = weights
            e, p = statistics.median(engine), statistics.median(plain)
            print(f"{name}: engine {args.batch_size / e:.1f} images/s, hand loop {args.batch_size / p:.1f} images/s, "
                  f"ratio engine/hand {p / e:.3f}; weights bitwise equal after {args.steps} steps: "
                  f"{all(torch.equal(last['engine'][k], v) for k, v in last['plain'].items())}")
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
