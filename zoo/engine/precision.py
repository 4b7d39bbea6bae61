"""Numeric precision: fp32, bf16 autocast (CPU, CUDA), fp16 autocast with a grad scaler (CUDA)."""

from __future__ import annotations

import contextlib
from typing import Any

from zoo.errors import ZooError


class Precision:
    """Autocast context for the forward pass, and the grad scaler (``16-mixed`` only)."""

    def __init__(self, name: str, device: Any) -> None:
        import torch

        self.name = name
        self.device = device
        self.scaler: Any = None
        if name == "16-mixed":
            if device.type != "cuda":
                raise ZooError("--precision 16-mixed needs a CUDA device; on the CPU use --precision bf16-mixed")
            self.scaler = torch.amp.GradScaler("cuda")
        elif name == "bf16-mixed":
            if device.type == "cuda" and not torch.cuda.is_bf16_supported():
                raise ZooError("this GPU has no bfloat16 support; use --precision 16-mixed or 32")
        elif name != "32":
            raise ZooError(f"unknown precision {name!r}; use 32, bf16-mixed or 16-mixed")

    def autocast(self) -> Any:
        import torch

        if self.name == "32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.name == "bf16-mixed" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def backward(self, loss: Any) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def unscale(self, optimizer: Any) -> None:
        """Make the gradients true-sized (before clipping them)."""
        if self.scaler:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: Any, grad_clip: float | None = None) -> None:
        """Step ``optimizer`` (through the grad scaler), clipping the gradient norm to ``grad_clip`` first."""
        if grad_clip:
            import torch

            self.unscale(optimizer)
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        if self.scaler:
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    def update(self) -> None:
        """Once per batch, after every optimizer stepped."""
        if self.scaler:
            self.scaler.update()
