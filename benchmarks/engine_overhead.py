"""The zoo engine against a plain hand-written PyTorch loop: step time and final weights.

Same model (cnn), data (digits), batch size, optimizer, seed and thread count, in this one process,
interleaved round by round (engine then plain, plain then engine, ...). Both log metrics the same way: loss and
accuracy summed on the device every step, written as one JSON line per epoch. A step's time is the
time between two consecutive step ends, so everything the engine does per step counts; the median
ignores the few steps that span an epoch end (evaluation, checkpoint).

Prints the median step-time ratio (engine / plain; goal <= 1.02) on the wall clock and on this
thread's CPU clock (which leaves out time taken by other processes: the fair figure on a shared
machine; with one thread torch computes in this thread), and whether the weights after the same N
steps are bitwise equal.

    python benchmarks/engine_overhead.py [--steps 120] [--rounds 10] [--threads 1] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F


def clock() -> tuple[float, float]:
    """Wall time and this thread's CPU time (the second ignores time lost to other processes)."""
    return time.perf_counter(), time.thread_time()


def intervals(stamps: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(b[0] - a[0], b[1] - a[1]) for a, b in itertools.pairwise(stamps)]


def engine_run(steps: int, batch_size: int, seed: int, out: Path) -> tuple[list[tuple[float, float]], dict[str, Any]]:
    """Train with ``zoo.train``; per-step times are read off the progress reporter's step calls."""
    from safetensors.torch import load_file

    import zoo
    from zoo.engine import reporting

    stamps: list[tuple[float, float]] = []
    original = reporting.Progress.step

    def timed_step(self: Any, step: int) -> None:
        stamps.append(clock())
        original(self, step)

    reporting.Progress.step = timed_step  # type: ignore[method-assign]
    try:
        run = zoo.train("cnn", batch_size=batch_size, epochs=100, max_steps=steps, seed=seed, device="cpu",
                        out=out, progress=False)
    finally:
        reporting.Progress.step = original  # type: ignore[method-assign]
    return intervals(stamps), load_file(run.run_dir / "model.safetensors")


def plain_run(steps: int, batch_size: int, seed: int, out: Path) -> tuple[list[tuple[float, float]], dict[str, Any]]:
    """What a user writes by hand: shuffle, forward, loss, backward, step, sum the metrics, log per epoch."""
    import random

    import numpy as np
    from zoo_cnn.models import ArticleCNN

    from zoo.data import load_dataset

    data = load_dataset("digits", seed=seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    model = ArticleCNN(in_channels=1, num_classes=10, image_size=[8, 8])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=0.0)
    x_all, y_all = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    stamps: list[tuple[float, float]] = []
    step, epoch = 0, 0
    with (out / "plain-metrics.jsonl").open("a") as log:
        while step < steps:
            epoch += 1
            order = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
            model.train()
            sums = {"loss": torch.zeros(()), "accuracy": torch.zeros(())}
            batches = 0
            for start in range(0, len(order), batch_size):
                index = order[start : start + batch_size]
                x, y = x_all[index], y_all[index]
                optimizer.zero_grad(set_to_none=True)
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                accuracy = (logits.argmax(dim=1) == y).float().mean()
                loss.backward()
                optimizer.step()
                sums["loss"] += loss.detach()
                sums["accuracy"] += accuracy.detach()
                batches += 1
                step += 1
                stamps.append(clock())
                if step == steps:
                    break
            log.write(json.dumps({"epoch": epoch, "step": step, **{k: float(v) / batches for k, v in sums.items()}})
                      + "\n")
    return intervals(stamps), model.state_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    engine: list[tuple[float, float]] = []  # per round: median wall ms, median CPU ms of a step
    plain: list[tuple[float, float]] = []
    equal = True
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            first, second = (engine_run, plain_run) if round_ % 2 == 0 else (plain_run, engine_run)  # no order bias
            results = {run: run(args.steps, args.batch_size, args.seed, Path(tmp)) for run in (first, second)}
            (engine_times, engine_weights), (plain_times, plain_weights) = results[engine_run], results[plain_run]
            engine.append(medians(engine_times))
            plain.append(medians(plain_times))
            equal = equal and all(torch.equal(engine_weights[k], plain_weights[k]) for k in plain_weights)
    print(f"threads={args.threads} batch={args.batch_size} steps={args.steps} rounds={args.rounds} "
          f"torch={torch.__version__}")
    for i, clock_name in enumerate(("wall", "CPU")):
        # Each round's pair ran back to back, so its ratio is fair even when the machine's load drifts.
        ratio = statistics.median(e[i] / p[i] for e, p in zip(engine, plain, strict=True))
        print(f"{clock_name:>4} clock: median step engine {statistics.median(e[i] for e in engine):.3f} ms, "
              f"plain loop {statistics.median(p[i] for p in plain):.3f} ms, ratio {ratio:.3f}")
    print(f"weights after {args.steps} steps bitwise equal: {equal}")


def medians(times: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(t[0] for t in times) * 1e3, statistics.median(t[1] for t in times) * 1e3


if __name__ == "__main__":
    main()
