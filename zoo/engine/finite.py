"""Catching a non-finite loss without making the GPU wait for the CPU every step.

Immediate (CPU, ``--on-nan skip``, several processes): ``loss.item()`` at the step, which costs
next to nothing on the CPU. Deferred (one CUDA process, ``--on-nan stop``): the loss parts are copied
to pinned host memory without waiting and looked at one step later, or before anything is written,
so the last checkpoint on disk is always one from before the bad step.
"""

from __future__ import annotations

import math
from typing import Any


class DeferredLossCheck:
    """Holds one step's loss parts until the next step (or a write) looks at them."""

    def __init__(self) -> None:
        self._pending: tuple[Any, Any, list[str], Any] | None = None

    def push(self, losses: dict[str, Any], where: Any) -> tuple[Any, str] | None:
        """Queue these losses; returns ``(where, parts)`` if the previously queued ones were not finite."""
        import torch

        problem = self.flush()
        values = torch.stack([v.detach().float().reshape(()) for v in losses.values()])
        event = None
        if values.is_cuda:
            host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
            host.copy_(values, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            values = host
        self._pending = (values, event, list(losses), where)
        return problem

    def flush(self) -> tuple[Any, str] | None:
        """Look at the queued losses now; ``(where, parts)`` if they were not finite."""
        if self._pending is None:
            return None
        values, event, names, where = self._pending
        self._pending = None
        if event is not None:
            event.synchronize()
        numbers = values.tolist()
        if math.isfinite(numbers[names.index("loss")]):
            return None
        return where, ", ".join(f"{name}={value:.4g}" for name, value in zip(names, numbers, strict=True))


def defer_wanted(device: Any, on_nan: str, distributed: bool) -> bool:
    """Defer only where it pays and is safe: one CUDA process that stops on a bad loss."""
    return device.type == "cuda" and on_nan == "stop" and not distributed


def non_finite_error(problem: tuple[Any, str], last_checkpoint: Any) -> Exception:
    """The one-line error for a non-finite loss at ``((step, epoch, optimizer), parts)``."""
    from zoo.errors import ZooError

    (step, epoch, name), parts = problem
    kept = (f"the last good checkpoint is {last_checkpoint}" if last_checkpoint.exists()
            else "no checkpoint was written yet")
    return ZooError(f"loss became non-finite at step {step} (epoch {epoch}, optimizer {name!r}): {parts}; "
                    f"{kept}; lower --lr, add --grad-clip, or pass --on-nan skip")


def loss_parts(losses: dict[str, Any]) -> str:
    """``loss=nan, kl=3.2``: the loss parts for a message (one host sync each; only on a bad step)."""
    return ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())


class LossGuard:
    """Per optimizer step: was the loss finite (here, in its accumulation group and on every process)?

    A bad loss raises the one-line error (``--on-nan stop``) or returns False (``skip``). Under torchrun one
    all-reduce shares the verdict and, with the last optimizer of a batch, the interrupt flag
    (:attr:`shared_interrupt`).
    """

    def __init__(self, device: Any, on_nan: str, world: Any, last_checkpoint: Any) -> None:
        self.deferred = DeferredLossCheck() if defer_wanted(device, on_nan, world.distributed) else None
        self.on_nan, self.world, self.last_checkpoint = on_nan, world, last_checkpoint
        self.bad_group = False
        self.shared_interrupt = False

    def check(self, losses: dict[str, Any], where: tuple[int, int, str], *, boundary: bool,
              share_interrupt: bool | None = None) -> bool:
        """``where`` is (step, epoch, optimizer); ``share_interrupt`` (last optimizer, torchrun) this
        process's interrupt flag to share."""
        if self.deferred is not None:  # looked at one step later: the GPU does not wait
            self.raise_if(self.deferred.push(losses, where))
            is_finite = True
        else:
            is_finite = math.isfinite(losses["loss"].item())  # one host sync (torch.isfinite costs more on CPU)
        if not boundary:  # accumulating: remember a bad micro-batch, decide at the boundary
            self.bad_group = self.bad_group or not is_finite
            return is_finite
        bad, self.bad_group = not is_finite or self.bad_group, False
        if self.world.distributed:
            if share_interrupt is not None:
                bad, self.shared_interrupt = self.world.any(bad, share_interrupt)
            else:
                (bad,) = self.world.any(bad)
        if bad and self.on_nan != "skip":
            self.raise_if((where, loss_parts(losses)))
        return not bad

    def flush(self) -> None:
        """Before anything is written: the last step's loss must have been finite."""
        if self.deferred is not None:
            self.raise_if(self.deferred.flush())

    def raise_if(self, problem: tuple[Any, str] | None) -> None:
        if problem is not None:
            raise non_finite_error(problem, self.last_checkpoint())
