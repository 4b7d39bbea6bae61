"""Recurrent sequence classifiers: a GRU or an LSTM read over the steps, the last hidden state classified."""

from __future__ import annotations

import torch
from torch import nn

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


class RecurrentClassifier(nn.Module):
    """Classifies ``batch × … × features`` input: every axis between batch and features is a step.

    So a ``batch × steps × features`` sequence and a ``batch × channels × height × width`` image (read
    row by row, channel after channel) both work.
    """

    def __init__(self, cell: str = "gru", input_size: int = 8, num_classes: int = 10, hidden_size: int = 64,
                 num_layers: int = 1) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
        if input_size <= 0 or hidden_size <= 0 or num_layers <= 0 or num_classes < 2:
            raise ValueError("input_size, hidden_size and num_layers must be positive and num_classes at least 2")
        self.rnn = CELLS[cell](input_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, _ = self.rnn(x.flatten(1, -2))
        return self.head(steps[:, -1])
