"""The lm family's optimizer: AdamW with its warm-up/cosine schedule and clipping kept in its own state."""

from __future__ import annotations

import math
from typing import Any

import torch


class ScheduledAdamW(torch.optim.AdamW):
    """AdamW that clips the gradient norm and sets its learning rate (linear warm-up, cosine decay to
    ``min_lr_ratio``) at every step from its own step count: the schedule's whole state is in the
    optimizer state, so a resumed run continues it exactly. Gradients arrive unscaled (the engine's
    grad scaler unscales before calling ``step``)."""

    def __init__(self, groups: list[dict[str, Any]], *, lr: float, betas: tuple[float, float], warmup_steps: int,
                 total_steps: int, min_lr_ratio: float, grad_clip: float) -> None:
        super().__init__(groups, lr=lr, betas=betas)
        self.base_lr, self.warmup_steps, self.total_steps = lr, warmup_steps, max(1, total_steps)
        self.min_lr_ratio, self.grad_clip = min_lr_ratio, grad_clip

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    def steps_done(self) -> int:
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if state and "step" in state:
                    return int(state["step"])
        return 0

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        lr = self.base_lr * self.factor(self.steps_done())
        for group in self.param_groups:
            group["lr"] = lr
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for g in self.param_groups for p in g["params"]], self.grad_clip)
        return super().step(closure)
