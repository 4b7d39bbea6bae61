"""The ``sequence-classifier`` family: cross-entropy on sequences, accuracy, a sequence → logits graph."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from zoo.data import DataInfo
from zoo.family import Family, GraphRole, GraphSpec, RunContext, classifier_info
from zoo.specs import ModelSpec


def as_sequences(x: np.ndarray) -> np.ndarray:
    """``N × steps × features``: images become their rows (channel after channel)."""
    return x.reshape(len(x), -1, x.shape[-1])


class SequenceClassifierFamily(Family):
    """Recurrent classifiers. Data is a sequence per sample; images are read row by row."""

    monitor = ("val_accuracy", "max")
    hyperparameters = {"optimizer": "adam", "weight_decay": 0.0}  # noqa: RUF012 - read-only class default

    def data_args(self, spec: ModelSpec, data: DataInfo) -> dict[str, Any]:
        # A row of the data is one step, so its width is the number of features per step.
        return {"input_size": data.width, "num_classes": data.num_classes}

    def training_step(self, model: torch.nn.Module, batch: Any, optimizer: str,
                      ctx: RunContext) -> dict[str, torch.Tensor]:
        sequences, labels = batch
        logits = model(sequences)
        return {"loss": F.cross_entropy(logits, labels), "accuracy": (logits.argmax(1) == labels).float().mean()}

    def evaluate(self, model: torch.nn.Module, ctx: RunContext) -> dict[str, float]:
        total_loss, correct = 0.0, 0
        device = ctx.device
        x, y = as_sequences(ctx.data.x_val), ctx.data.y_val
        for start in range(0, len(x), 256):
            sequences = torch.from_numpy(x[start:start + 256]).to(device)
            labels = torch.from_numpy(y[start:start + 256]).to(device)
            logits = model(sequences)
            total_loss += float(F.cross_entropy(logits, labels, reduction="sum"))
            correct += int((logits.argmax(1) == labels).sum())
        return {"val_loss": total_loss / len(y), "val_accuracy": correct / len(y)}

    def graphs(self, model: torch.nn.Module, data: DataInfo) -> list[GraphSpec]:
        steps, features = data.channels * data.height, data.width

        def random_inputs(batch: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
            return (rng.standard_normal((batch, steps, features)).astype(np.float32),)

        # Default tolerances (1e-5): measured differences are around 1e-7 on the CPU.
        return [GraphSpec(
            name="model",
            module=model,
            input_names=["sequence"],
            output_names=["logits"],
            random_inputs=random_inputs,
            real_inputs=lambda splits: (as_sequences(splits.x_val),),
            class_output="logits",
            metadata={"input_layout": "batch × steps × features (images: rows, channel after channel)"},
            # What the graph is: a classifier, but of sequences, so `zoo predict` (image files) leaves it alone.
            role=GraphRole.CLASSIFIER,
            role_info=classifier_info(output="logits", class_names=data.class_names, input_kind="sequence"),
        )]
