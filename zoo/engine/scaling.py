"""Options for training bigger models on the same engine: compile, channels-last, activation checkpointing,
ImageNet-style augmentation. Each is applied in one place, so the loop only calls in here.
"""

from __future__ import annotations

import sys
from typing import Any

from zoo.errors import ZooError


def prepare_model(net: Any, options: Any, device: Any, say: bool) -> None:
    """Apply ``--checkpoint-activations``, ``--channels-last`` and ``--compile`` to the built model, in place."""
    import torch

    if options.checkpoint_activations:
        if not hasattr(net, "checkpoint_activations"):
            raise ZooError(f"--checkpoint-activations: model {type(net).__name__} does not support it; the vision "
                           "transformers (vit-tiny, vit-small, vit-base) do")
        net.checkpoint_activations = True
    if options.channels_last:
        net.to(memory_format=torch.channels_last)
    if options.compile:
        problem = compiler_problem(device)
        if problem is None:
            net.compile()  # in place: the module, its state-dict names and the DDP wrapping stay the same
        elif say:
            print(f"zoo: --compile is not available here ({problem}); training eagerly", file=sys.stderr)


def compiler_problem(device: Any) -> str | None:
    """Why ``torch.compile`` cannot run on ``device`` (a tiny function is compiled and run), or None."""
    import torch

    try:
        probe = torch.compile(lambda x: x * 2 + 1, dynamic=False)
        probe(torch.ones(4, device=device))
    except Exception as exc:  # a missing C++ compiler or Triton, an unsupported platform...
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"
    return None


def prepare_batch(batch: Any, options: Any, *, seed: int, epoch: int, index: int) -> Any:
    """``--crop-flip`` (drawn from seed, epoch and batch: resume stays exact) and ``--channels-last`` on a batch."""
    if options.crop_flip:
        from zoo.data.crop_flip import crop_flip_batch

        batch = crop_flip_batch(batch, seed=seed, epoch=epoch, index=index)
    if options.channels_last and getattr(batch[0], "ndim", 0) == 4:
        import torch

        batch = (batch[0].contiguous(memory_format=torch.channels_last), *batch[1:])
    return batch
