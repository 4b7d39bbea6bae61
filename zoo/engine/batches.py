"""Which samples go in which batch: a pure function of (seed, epoch, rank), so any position resumes.

The epoch's order is ``torch.randperm`` from a generator seeded with ``seed`` and ``epoch`` (never a
running generator, so a resumed run needs no saved sampler state). Process ``rank`` of ``world``
takes every ``world``-th sample of that order, as ``DistributedSampler`` does: the union of the
ranks' k-th batches is the single-process k-th batch of the global batch size.
"""

from __future__ import annotations

import math
from typing import Any

from zoo.errors import ZooError


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def epoch_order(num_samples: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> Any:
    """This rank's sample indices for ``epoch``, padded (from the start) to a multiple of ``world``."""
    import torch

    generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    order = torch.randperm(num_samples, generator=generator)
    padded = math.ceil(num_samples / world) * world
    if padded > num_samples:
        order = torch.cat([order, order[: padded - num_samples]])
    return order[rank::world]


def per_rank_batch(global_batch: int, world: int) -> int:
    if global_batch % world:
        raise ZooError(f"--batch-size {global_batch} does not split over {world} processes; use a multiple of {world}")
    return global_batch // world


def batch_count(num_samples: int, batch: int, world: int = 1) -> int:
    """Batches per epoch on each rank (the last one may be smaller)."""
    return math.ceil(math.ceil(num_samples / world) / batch)
