"""The ``classifier`` family: cross-entropy training, accuracy, and an image → logits graph."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from zoo.data import DataInfo
from zoo.family import (
    Family,
    GraphRole,
    GraphSpec,
    ReportContext,
    ReportImage,
    ReportSection,
    ReportTable,
    RunContext,
    classifier_info,
)
from zoo.specs import ModelSpec

#: Validation images shown in the report's "worst classified" grid.
WORST_SHOWN = 16


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, device: Any):
    """Validation batches as tensors on ``device``, in order."""
    for start in range(0, len(x), batch_size):
        yield (torch.from_numpy(x[start : start + batch_size]).to(device),
               torch.from_numpy(y[start : start + batch_size]).to(device))


class ClassifierFamily(Family):
    """Image classification with cross-entropy; reports validation loss and accuracy."""

    monitor = ("val_accuracy", "max")
    hyperparameters = {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.0}  # noqa: RUF012

    def data_args(self, spec: ModelSpec, data: DataInfo) -> dict[str, Any]:
        args: dict[str, Any] = {"in_channels": data.channels, "num_classes": data.num_classes}
        if "image_size" in spec.model_args:
            args["image_size"] = [data.height, data.width]
        return args

    def training_step(self, model: torch.nn.Module, batch: Any, optimizer: str,
                      ctx: RunContext) -> dict[str, torch.Tensor]:
        images, labels = batch
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        return {"loss": loss, "accuracy": accuracy}

    def evaluate(self, model: torch.nn.Module, ctx: RunContext) -> dict[str, float]:
        data = ctx.data
        total_loss, correct = 0.0, 0
        for images, labels in batches(data.x_val, data.y_val, 256, ctx.device):
            logits = model(images)
            total_loss += float(F.cross_entropy(logits, labels, reduction="sum"))
            correct += int((logits.argmax(dim=1) == labels).sum())
        n = len(data.y_val)
        return {"val_loss": total_loss / n, "val_accuracy": correct / n}

    def graphs(self, model: torch.nn.Module, data: DataInfo) -> list[GraphSpec]:
        shape = data.shape

        def random_inputs(batch: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
            return (rng.standard_normal((batch, *shape)).astype(np.float32),)

        return [
            GraphSpec(
                name="model",
                module=model,
                input_names=["input"],
                output_names=["logits"],
                random_inputs=random_inputs,
                real_inputs=lambda splits: (splits.x_val,),
                class_output="logits",
                calibration_inputs=lambda splits: (splits.x_train,),
                real_labels=lambda splits: splits.y_val,
                role=GraphRole.CLASSIFIER,
                role_info=classifier_info(output="logits", class_names=data.class_names),
            )
        ]

    def report_sections(self, context: ReportContext) -> list[ReportSection]:
        """The validation confusion matrix, and the images the model finds hardest (lowest true-class probability)."""
        return classifier_sections(context)


def classifier_sections(context: ReportContext) -> list[ReportSection]:
    """Confusion matrix and worst-classified validation images of a trained image classifier."""
    from zoo.toolkit.images import to_pixels

    model, data = context.model_and_data()
    probabilities = torch.cat([model(x).softmax(dim=1) for x, _ in batches(data.x_val, data.y_val, 256, "cpu")])
    probabilities = probabilities.numpy()
    truth, predicted = data.y_val, probabilities.argmax(axis=1)
    names = list(data.info.class_names)
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    accuracy = float((truth == predicted).mean())
    confusion = ReportTable(["true \\ predicted", *names],
                            [[names[i], *map(int, matrix[i])] for i in range(len(names))],
                            caption=f"{len(truth)} validation images, accuracy {100 * accuracy:.2f}%")
    worst = np.argsort(probabilities[np.arange(len(truth)), truth], kind="stable")[:WORST_SHOWN]
    pixels = to_pixels(data.x_val[worst], data.info.mean, data.info.std)
    listing = ReportTable(["#", "true", "predicted", "p(true)", "p(predicted)"],
                          [[rank + 1, names[truth[i]], names[predicted[i]], float(probabilities[i, truth[i]]),
                            float(probabilities[i, predicted[i]])] for rank, i in enumerate(worst)],
                          caption="worst classified, left to right and top to bottom")
    return [
        ReportSection("Confusion matrix", tables=[confusion]),
        ReportSection("Worst-classified validation images", tables=[listing],
                      images=[ReportImage.from_pixels(pixels, f"{len(worst)} worst-classified validation images",
                                                      columns=8)]),
    ]
