"""Learning-rate schedules, one per optimizer, stepped after every optimizer step.

Each is a ``LambdaLR`` whose factor is a pure function of the optimizer-step count, so its
whole state is that count (plain JSON in a checkpoint).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


def lr_factor(schedule: str, *, total_steps: int, steps_per_epoch: int, warmup_steps: int = 0,
              step_epochs: int = 1, gamma: float = 0.1) -> Callable[[int], float]:
    """The multiplier of the base learning rate after ``step`` optimizer steps."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "step":
            return gamma ** (step // max(1, step_epochs * steps_per_epoch))
        if schedule == "cosine":
            span = max(1, total_steps - warmup_steps)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup_steps) / span)))
        return 1.0

    return factor


def make_schedulers(optimizers: dict[str, Any], options: Any, total_steps: int,
                    steps_per_epoch: int) -> dict[str, Any]:
    """A scheduler per optimizer, or none at all when neither a schedule nor warm-up was asked for."""
    from torch.optim.lr_scheduler import LambdaLR

    if options.schedule == "none" and not options.warmup_steps:
        return {}
    factor = lr_factor(options.schedule, total_steps=total_steps, steps_per_epoch=steps_per_epoch,
                       warmup_steps=options.warmup_steps, step_epochs=options.step_epochs, gamma=options.gamma)
    return {name: LambdaLR(opt, factor) for name, opt in optimizers.items()}
