"""The run's step budget and its learning-rate schedule: one mechanism for every family.

The budget (:class:`zoo.family.StepBudget`) follows from the data, ``--batch-size``, ``--accumulate`` and
``--smoke``. The schedule is the family's default (:meth:`zoo.family.Family.lr_schedule`) with
``--schedule``/``--warmup-steps`` laid over it; an override is said in one line and ``config.json`` records
the schedule used and where each part came from. Each optimizer gets a ``LambdaLR`` whose factor is a pure
function of the optimizer-step count, so its whole state is that count (plain JSON in a checkpoint).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from zoo.engine.options import SMOKE_BATCHES, TrainOptions
from zoo.family import LRSchedule, StepBudget

#: Where each part of the schedule came from.
FLAG, FAMILY, DEFAULT = "flag", "family", "default"


def step_budget(batches: int, *, epochs: int, accumulate: int, smoke: bool, max_steps: int | None) -> StepBudget:
    """The budget of a run whose epochs hold ``batches`` batches per process (before ``--smoke`` shortens them)."""
    per_epoch = min(batches, SMOKE_BATCHES) if smoke else batches
    steps = math.ceil(per_epoch / accumulate)
    return StepBudget(total_steps=epochs * steps, steps_per_epoch=steps, batches_per_epoch=per_epoch,
                      accumulate=accumulate, epochs=epochs, max_steps=max_steps)


@dataclass(frozen=True)
class ScheduleChoice:
    """The schedule a run uses and the source of each part (``flag``, ``family`` or ``default``)."""

    schedule: LRSchedule
    source: Mapping[str, str] = field(default_factory=dict)
    #: ``--schedule step``: the factor and its period in epochs.
    gamma: float = 0.1
    step_epochs: int = 1

    def to_dict(self) -> dict[str, Any]:
        """As ``config.json`` records it."""
        return {**asdict(self.schedule), "gamma": self.gamma, "step_epochs": self.step_epochs,
                "source": dict(self.source)}


def choose_schedule(options: TrainOptions, declared: LRSchedule | None, family: str, *,
                    say: bool) -> ScheduleChoice:
    """``declared`` (the family's default, or none) with the flags laid over it; ``say``: print one line when a
    flag overrides what the family declared."""
    base = declared or LRSchedule()
    origin = FAMILY if declared is not None else DEFAULT
    flags = {"name": options.schedule, "warmup_steps": options.warmup_steps}
    values = {"name": base.name, "warmup_steps": base.warmup_steps, "floor": base.floor}
    source = dict.fromkeys(values, origin)
    overridden = []
    for key, value in flags.items():
        if value is None:
            continue
        if declared is not None and value != values[key]:
            overridden.append(key)
        values[key], source[key] = value, FLAG
    if overridden and say:
        given = ", ".join(f"--{key.replace('name', 'schedule').replace('_', '-')} {flags[key]}" for key in overridden)
        verb = "overrides" if len(overridden) == 1 else "override"
        print(f"zoo: {given} {verb} the {family} family's default learning-rate schedule ({base.name}, "
              f"{base.warmup_steps} warm-up steps)", file=sys.stderr)
    return ScheduleChoice(LRSchedule(**values), source, gamma=options.gamma, step_epochs=options.step_epochs)


def lr_factor(schedule: str, *, total_steps: int, steps_per_epoch: int, warmup_steps: int = 0,
              step_epochs: int = 1, gamma: float = 0.1, floor: float = 0.0) -> Callable[[int], float]:
    """The multiplier of the base learning rate after ``step`` optimizer steps."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "step":
            return gamma ** (step // max(1, step_epochs * steps_per_epoch))
        if schedule == "cosine":
            span = max(1, total_steps - warmup_steps)
            value = 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup_steps) / span)))
            return floor + (1.0 - floor) * value if floor else value
        return 1.0

    return factor


def make_schedulers(optimizers: dict[str, Any], choice: ScheduleChoice, budget: StepBudget) -> dict[str, Any]:
    """A scheduler per optimizer, or none at all when the run has neither a schedule nor warm-up."""
    from torch.optim.lr_scheduler import LambdaLR

    schedule = choice.schedule
    if schedule.name == "none" and not schedule.warmup_steps:
        return {}
    factor = lr_factor(schedule.name, total_steps=budget.total_steps, steps_per_epoch=budget.steps_per_epoch,
                       warmup_steps=schedule.warmup_steps, step_epochs=choice.step_epochs, gamma=choice.gamma,
                       floor=schedule.floor)
    return {name: LambdaLR(opt, factor) for name, opt in optimizers.items()}
