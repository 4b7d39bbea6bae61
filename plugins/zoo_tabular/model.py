"""Regressors: rows of standardised features → target values in their own units.

The target statistics (``target_mean``, ``target_std``: the training split's, from ``DataInfo.target`` through
``Family.data_args``) are builder arguments, kept as buffers, so the network predicts standardised values and
the module (and its ONNX graph) gives them back in the target's units.
"""

from __future__ import annotations

import torch
from torch import nn


class Regressor(nn.Module):
    """A network on standardised features whose output is mapped back to the targets' units."""

    def __init__(self, body: nn.Module, target_mean: list[float], target_std: list[float]) -> None:
        super().__init__()
        self.body = body
        self.register_buffer("target_mean", torch.tensor(target_mean, dtype=torch.float32))
        self.register_buffer("target_std", torch.tensor(target_std, dtype=torch.float32))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.body(features) * self.target_std + self.target_mean


def mlp_regressor(in_features: int = 10, out_features: int = 1, hidden: int = 64, layers: int = 2,
                 dropout: float = 0.0, target_mean: list[float] | None = None,
                 target_std: list[float] | None = None) -> Regressor:
    """``layers`` hidden layers of ``hidden`` units with ReLU, then a linear output per target column."""
    parts: list[nn.Module] = []
    width = in_features
    for _ in range(layers):
        parts += [nn.Linear(width, hidden), nn.ReLU()]
        if dropout:
            parts.append(nn.Dropout(dropout))
        width = hidden
    parts.append(nn.Linear(width, out_features))
    return Regressor(nn.Sequential(*parts), *_statistics(out_features, target_mean, target_std))


def linear_regressor(in_features: int = 10, out_features: int = 1, target_mean: list[float] | None = None,
                    target_std: list[float] | None = None) -> Regressor:
    """One linear layer: least squares fitted by gradient descent."""
    return Regressor(nn.Linear(in_features, out_features), *_statistics(out_features, target_mean, target_std))


def _statistics(columns: int, mean: list[float] | None, std: list[float] | None) -> tuple[list[float], list[float]]:
    mean = list(mean) if mean is not None else [0.0] * columns
    std = list(std) if std is not None else [1.0] * columns
    if not len(mean) == len(std) == columns:
        raise ValueError(f"{columns} target columns need as many target_mean and target_std values, "
                         f"got {len(mean)} and {len(std)}")
    return mean, std
