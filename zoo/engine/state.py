"""Where a run stands (:class:`TrainState`) and the running sums of its loss parts (:class:`LossTotals`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainState:
    """The run's position and history: what a checkpoint needs besides tensors to resume exactly."""

    #: The next epoch to run (from 1) and how many of its batches are done.
    epoch: int = 1
    batch_in_epoch: int = 0
    #: Optimizer steps done (one per batch, or per ``--accumulate`` batches).
    step: int = 0
    #: The best monitored value and its epoch, epochs since it improved, steps skipped for a bad loss.
    best: tuple[float, int] | None = None
    bad_epochs: int = 0
    skipped: int = 0
    #: The last epoch's metrics.
    metrics: dict[str, float] = field(default_factory=dict)

    def record_epoch(self, metrics: dict[str, float], monitor: tuple[str, str]) -> bool:
        """Take this epoch's metrics and move to the next epoch; True when the monitored metric improved."""
        name, mode = monitor
        value = metrics.get(name)
        improved = value is not None and (self.best is None or (value > self.best[0] if mode == "max"
                                                                 else value < self.best[0]))
        if improved:
            self.best, self.bad_epochs = (value, self.epoch), 0
        else:
            self.bad_epochs += 1
        self.metrics = metrics
        self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        return improved

    def to_dict(self) -> dict[str, Any]:
        """The JSON part of a checkpoint."""
        return {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "step": self.step,
                "best": list(self.best) if self.best else None, "bad_epochs": self.bad_epochs,
                "skipped": self.skipped, "metrics": self.metrics}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TrainState:
        best = tuple(state["best"]) if state.get("best") else None
        return cls(state["epoch"], state["batch_in_epoch"], state["step"], best,  # type: ignore[arg-type]
                   state["bad_epochs"], state["skipped"], dict(state["metrics"]))


class LossTotals:
    """Every loss part summed on the device (no host sync); averaged over all processes at the epoch end."""

    def __init__(self) -> None:
        self.totals: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def add(self, prefix: str, losses: dict[str, Any]) -> None:
        for key, value in losses.items():
            label = prefix + key
            total = self.totals.get(label)
            if total is None:
                self.totals[label] = value.detach().float().clone()
            else:
                total += value.detach()
            self.counts[label] = self.counts.get(label, 0) + 1

    def restore(self, totals: dict[str, Any], counts: dict[str, int], device: Any) -> None:
        self.totals = {k: v.to(device) for k, v in totals.items()}
        self.counts = dict(counts)

    def snapshot(self) -> tuple[dict[str, Any], dict[str, int]]:
        """This process's sums (on the CPU) and counts, to be gathered for a checkpoint."""
        return {k: v.cpu() for k, v in self.totals.items()}, dict(self.counts)

    @staticmethod
    def checkpoint_parts(snapshots: list[tuple[dict[str, Any], dict[str, int]]]) -> tuple[dict[str, Any], dict]:
        """Every process's :meth:`snapshot` as checkpoint tensors and JSON: process 0's as ``totals/NAME`` and
        ``counts``, process R's as ``totals@R/NAME`` and ``rank_counts[R-1]``."""
        tensors = {f"totals/{k}": v for k, v in snapshots[0][0].items()}
        for rank, (totals, _) in enumerate(snapshots[1:], start=1):
            tensors.update({f"totals@{rank}/{k}": v for k, v in totals.items()})
        return tensors, {"counts": snapshots[0][1], "rank_counts": [counts for _, counts in snapshots[1:]]}

    def restore_rank(self, checkpoint: Any, rank: int, device: Any) -> None:
        """Process ``rank``'s own sums and counts from a checkpoint (a checkpoint from before they were kept
        per process gives every process process 0's)."""
        per_rank = checkpoint.state.get("rank_counts")
        if rank == 0 or not per_rank:
            self.restore(checkpoint.prefixed("totals/"), checkpoint.state["counts"], device)
        else:
            self.restore(checkpoint.prefixed(f"totals@{rank}/"), per_rank[rank - 1], device)

    def averages(self, world: Any) -> dict[str, float]:
        """``train_<part>`` means over the epoch and every process; then the sums start again."""
        labels = sorted(self.totals)
        if not labels:
            return {}
        import torch

        sums = torch.stack([self.totals[k] for k in labels])
        counts = torch.tensor([float(self.counts[k]) for k in labels], device=sums.device)
        if world.distributed:
            import torch.distributed as dist

            both = torch.cat([sums, counts])
            dist.all_reduce(both)
            sums, counts = both[: len(labels)], both[len(labels):]
        self.__init__()  # type: ignore[misc]
        return {f"train_{k}": float(v) for k, v in zip(labels, (sums / counts).tolist(), strict=True)}
