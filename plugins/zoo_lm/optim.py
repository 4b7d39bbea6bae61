"""The lm family's optimizer: AdamW that clips its own gradient norm (the learning rate is the engine's schedule)."""

from __future__ import annotations

from typing import Any

import torch


class ClippedAdamW(torch.optim.AdamW):
    """AdamW that clips the gradient norm of its parameters to ``grad_clip`` before every step (gradients arrive
    unscaled: the engine's grad scaler unscales before calling ``step``). The learning rate is set by the
    engine's schedule, which the family declares in :meth:`zoo_lm.family.LMFamily.lr_schedule`."""

    def __init__(self, groups: list[dict[str, Any]], *, lr: float, betas: tuple[float, float],
                 grad_clip: float) -> None:
        super().__init__(groups, lr=lr, betas=betas)
        self.grad_clip = grad_clip

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for g in self.param_groups for p in g["params"]], self.grad_clip)
        return super().step(closure)
