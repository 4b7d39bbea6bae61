"""Devices and seeding."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np

from zoo.errors import ZooError


def pick_device(requested: str) -> Any:
    """``auto`` = CUDA when torch can use it, else CPU; ``cuda`` without a usable GPU is an error."""
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cpu":
        return torch.device("cpu")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ZooError("--device cuda was asked for, but torch sees no usable GPU; use --device cpu or auto")
        return torch.device(requested)
    raise ZooError(f"unknown device {requested!r}; use auto, cpu or cuda")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def deterministic_mode(enabled: bool) -> Iterator[None]:
    """While active (when ``enabled``): deterministic algorithms only, no cuDNN autotuning."""
    import torch

    if not enabled:
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
    cudnn = torch.backends.cudnn
    previous = (torch.are_deterministic_algorithms_enabled(), cudnn.benchmark, cudnn.deterministic)
    torch.use_deterministic_algorithms(True)
    cudnn.benchmark, cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        cudnn.benchmark, cudnn.deterministic = previous[1], previous[2]
