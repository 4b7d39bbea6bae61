"""``--ema DECAY``: an exponential moving average of the weights, the way timm's ``ModelEmaV2`` keeps one.

After every optimizer step each floating-point parameter and buffer ``w`` updates its average
``a ← decay · a + (1 − decay) · w`` (``a`` starts as the first weights). The averages are what the family validates,
what decides the best checkpoint, and what the final ``model.safetensors`` holds (so ``zoo export`` exports them);
the raw weights keep training. Both travel in every checkpoint (``ema/<name>``), so a resumed run continues the
average exactly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from zoo.errors import ZooError

#: Checkpoint entries of the averages: ``ema/<state-dict name>``.
PREFIX = "ema/"


class WeightAverage:
    """The moving average of ``net``'s floating-point state (integer buffers, such as batch norm's step counter,
    are copied as they are)."""

    def __init__(self, net: Any, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ZooError(f"--ema {decay} must be between 0 and 1 (0.999 or 0.9999 are usual)")
        self.decay = decay
        self.averages = {name: value.detach().clone() for name, value in net.state_dict().items()}

    def update(self, net: Any) -> None:
        """One step of the average, after an optimizer step."""
        import torch

        with torch.no_grad():
            for name, value in net.state_dict().items():
                average = self.averages[name]
                if average.is_floating_point():
                    average.mul_(self.decay).add_(value.detach(), alpha=1.0 - self.decay)
                else:
                    average.copy_(value)

    @contextlib.contextmanager
    def applied(self, net: Any) -> Iterator[None]:
        """``net`` holds the averages inside the block and its own weights again after it."""
        import torch

        state = net.state_dict()
        own = {name: value.detach().clone() for name, value in state.items()}
        with torch.no_grad():
            for name, value in state.items():
                value.copy_(self.averages[name])
        try:
            yield
        finally:
            with torch.no_grad():
                for name, value in state.items():
                    value.copy_(own[name])

    def tensors(self) -> dict[str, Any]:
        """The checkpoint entries."""
        return {PREFIX + name: value for name, value in self.averages.items()}

    def restore(self, saved: dict[str, Any], path: Any) -> None:
        """The averages of a checkpoint (its ``ema/`` entries, without the prefix)."""
        missing = sorted(set(self.averages) - set(saved))
        if missing:
            raise ZooError(f"{path} holds no weight average for {missing[:3]}; it was saved without --ema: resume "
                           "without --ema, or start a new run")
        for name, value in self.averages.items():
            value.copy_(saved[name].to(value.device))
