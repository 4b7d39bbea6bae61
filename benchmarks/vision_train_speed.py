"""Images per second: the zoo engine against a hand-written loop, for the vision models on the CPU.

For each model, image size and setting (eager fp32, bf16 autocast, channels-last, ``--compile``), the engine
(``zoo.train``) and a hand-written loop with the same settings train the same model on the same synthetic
data (random 3×S×S images, 10 classes; ``stem=small`` at 32×32, the standard stem at 224×224) with the same
seed, optimizer, hyperparameters, sample order, batch and thread count, in this one process, interleaved round
by round (engine then hand, hand then engine, ...). A step's time is the time between two consecutive step
ends, and the median over a run's steps leaves out the first (``--compile`` compiles there). Also says whether
the weights after the same steps are bitwise equal.

    python benchmarks/vision_train_speed.py [--models resnet18,resnet50,vit-small] [--sizes 32,224]
        [--settings eager,bf16,channels-last,compile] [--steps 6] [--rounds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Setting:
    """One way of training, as engine options and as what a hand-written loop does for it."""

    name: str
    precision: str = "32"
    channels_last: bool = False
    compile: bool = False

    def engine_options(self) -> dict[str, Any]:
        return {"precision": self.precision, "channels_last": self.channels_last, "compile": self.compile}


SETTINGS = {s.name: s for s in (Setting("eager"), Setting("bf16", precision="bf16-mixed"),
                                Setting("channels-last", channels_last=True), Setting("compile", compile=True))}
BATCH = {32: 16, 224: 4}


def model_args(name: str, size: int) -> dict[str, Any]:
    args: dict[str, Any] = {"stem": "small" if size == 32 else "standard"}
    if name.startswith("vit"):
        args["image_size"] = [size, size]
    return args


def stamps_of_engine(name: str, data: str, size: int, setting: Setting, steps: int, out: Path
                     ) -> tuple[list[float], dict[str, Any]]:
    from safetensors.torch import load_file

    import zoo
    from zoo.engine import reporting

    stamps: list[float] = []
    original = reporting.Progress.step

    def timed_step(self: Any, step: int) -> None:
        stamps.append(time.perf_counter())
        original(self, step)

    reporting.Progress.step = timed_step  # type: ignore[method-assign]
    try:
        run = zoo.train(name, dataset=data, batch_size=BATCH[size], epochs=100, max_steps=steps, device="cpu",
                        out=out, progress=False, model_args=model_args(name, size), **setting.engine_options())
    finally:
        reporting.Progress.step = original  # type: ignore[method-assign]
    return stamps, load_file(run.run_dir / "model.safetensors")


def stamps_of_hand_loop(name: str, data: str, size: int, setting: Setting, steps: int, out: Path
                        ) -> tuple[list[float], dict[str, Any]]:
    """What a user writes by hand: the same model, optimizer, sample order and settings."""
    import zoo
    from zoo.data import load_dataset
    from zoo.engine.assembly import seed_everything
    from zoo.engine.batches import epoch_order
    from zoo.engine.options import resolve_hyperparameters
    from zoo.family import make_optimizer, param_groups

    spec = zoo.get_spec(name)
    family = zoo.load_family(spec.family)
    batch = BATCH[size]
    hp = resolve_hyperparameters(family.hyperparameters, spec.defaults, {"batch_size": batch})
    splits = load_dataset(data, seed=0)
    seed_everything(0)
    model = zoo.create_model(name, **{**spec.model_args, "in_channels": 3, "num_classes": 10,
                                      **model_args(name, size)})
    optimizer = make_optimizer(param_groups(model, hp), hp)  # the classifier family's groups (no decay on norms)
    layout = torch.channels_last if setting.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    if setting.compile:
        model.compile()
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if setting.precision == "bf16-mixed"
                else contextlib.nullcontext())
    x_all, y_all = torch.from_numpy(splits.x_train), torch.from_numpy(splits.y_train)
    stamps: list[float] = []
    step, epoch = 0, 1  # the engine counts epochs from 1
    while step < steps:
        order = epoch_order(len(x_all), 0, epoch)
        model.train()
        for start in range(0, len(order) - batch + 1, batch):
            index = order[start : start + batch]
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                loss = F.cross_entropy(model(x_all[index].contiguous(memory_format=layout)), y_all[index])
            loss.backward()
            optimizer.step()
            step += 1
            stamps.append(time.perf_counter())
            if step == steps:
                break
        epoch += 1
    state = getattr(model, "_orig_mod", model).state_dict()
    return stamps, {k: v.contiguous() for k, v in state.items()}


def median_step(stamps: list[float]) -> float:
    return statistics.median(b - a for a, b in itertools.pairwise(stamps[1:]))


def compare(name: str, size: int, setting: Setting, data: str, steps: int, rounds: int, out: Path) -> str:
    engine, hand, last = [], [], {}
    for round_ in range(rounds):
        order = ("engine", "hand") if round_ % 2 == 0 else ("hand", "engine")
        for which in order:
            run = stamps_of_engine if which == "engine" else stamps_of_hand_loop
            stamps, weights = run(name, data, size, setting, steps, out)
            (engine if which == "engine" else hand).append(median_step(stamps))
            last[which] = weights
    e, h = statistics.median(engine), statistics.median(hand)
    equal = all(torch.equal(last["engine"][k].contiguous(), v) for k, v in last["hand"].items())
    spread = max(h / x for x in engine) / min(h / x for x in engine) if len(engine) > 1 else 1.0
    batch = BATCH[size]
    return (f"{name:9s} {size:3d}x{size:<3d} {setting.name:13s} engine {batch / e:7.1f} img/s, hand {batch / h:7.1f} "
            f"img/s, ratio engine/hand {h / e:.3f} (spread over rounds ×{spread:.3f}); weights bitwise equal: {equal}")


def main() -> None:
    from zoo.engine.options import TrainConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,resnet50,vit-small")
    parser.add_argument("--sizes", default="32,224")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at start; torch {torch.__version__}, threads {args.threads}, batch "
          f"{', '.join(f'{BATCH[s]} at {s}x{s}' for s in sizes)}, {args.steps} steps x {args.rounds} rounds",
          flush=True)
    print(f"# python {' '.join(sys.argv)}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        for size in sizes:
            path = Path(tmp) / f"synthetic-{size}.npz"
            # Every step in the first epoch, after the engine holds out its validation share (an epoch's end
            # inside the timed steps would time a validation pass and change the sample order).
            samples = math.ceil(BATCH[size] * (args.steps + 1) / (1 - TrainConfig.val_fraction)) + 8
            np.savez(path, images=rng.integers(0, 256, (samples, size, size, 3), dtype=np.uint8),
                     labels=rng.integers(0, 10, samples))
            for name, setting in itertools.product(args.models.split(","), args.settings.split(",")):
                print(compare(name, size, SETTINGS[setting], f"npz:{path}", args.steps, args.rounds, Path(tmp)),
                      flush=True)
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
