"""The ``classifier`` family: cross-entropy training, accuracy, and an image → logits graph."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from zoo.data import DataInfo
from zoo.family import (
    AttentionMaps,
    Family,
    GraphRole,
    GraphSpec,
    ReportContext,
    ReportImage,
    ReportSection,
    RunContext,
    classifier_info,
    draw_mix,
    make_optimizer,
    mix_inputs,
    param_groups,
)
from zoo.specs import ModelSpec
from zoo.toolkit.graphs import data_graph

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
    #: The fine-tuning recipe (docs/vision.md): label smoothing, mixup/cutmix and their switch-off epoch, no weight
    #: decay on norms/biases/position embeddings/tokens, layer-wise learning-rate decay (1: off).
    hyperparameters = {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.0,  # noqa: RUF012
                       "label_smoothing": 0.0, "mixup": 0.0, "cutmix": 0.0, "mix_prob": 1.0, "mix_off_epoch": 0,
                       "no_decay_groups": 1, "layer_decay": 1.0}

    def data_args(self, spec: ModelSpec, data: DataInfo) -> dict[str, Any]:
        args: dict[str, Any] = {"in_channels": data.channels, "num_classes": data.num_classes}
        if "image_size" in spec.model_args:
            args["image_size"] = [data.height, data.width]
        return args

    def configure_optimizers(self, model: torch.nn.Module, ctx: RunContext) -> dict[str, Any]:
        """The optimizer over :func:`zoo.family.param_groups`: no decay on norms, biases and embeddings, and
        layer-wise learning-rate decay when ``--hp layer_decay`` is below 1."""
        return {"model": make_optimizer(param_groups(model, ctx.hyperparameters), ctx.hyperparameters)}

    def training_step(self, model: torch.nn.Module, batch: Any, optimizer: str,
                      ctx: RunContext) -> dict[str, torch.Tensor]:
        images, labels = batch
        hp = ctx.hyperparameters
        smoothing = float(hp.get("label_smoothing", 0.0))
        mix = draw_mix(len(images), images.shape[-2], images.shape[-1], hp, seed=ctx.seed, epoch=ctx.epoch,
                       step=ctx.step) if images.ndim == 4 else None
        if mix is None:
            logits = model(images)
            loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
        else:  # each sample's loss is shared between its own label and its partner's, by the mixed share
            logits = model(mix_inputs(images, mix))
            partner = labels[mix.order.to(labels.device)]
            loss = (mix.lam * F.cross_entropy(logits, labels, label_smoothing=smoothing)
                    + (1.0 - mix.lam) * F.cross_entropy(logits, partner, label_smoothing=smoothing))
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
        return [data_graph(model, input_name="input", output_name="logits", sample_shape=data.shape,
                           role=GraphRole.CLASSIFIER, classes=True,
                           role_info=classifier_info(output="logits", class_names=data.class_names))]

    def report_sections(self, context: ReportContext) -> list[ReportSection]:
        """The validation confusion matrix, and the images the model finds hardest (lowest true-class probability)."""
        return classifier_sections(context, self)

    def private_hyperparameters(self, spec: ModelSpec) -> dict[str, Any]:
        """Under DP-SGD, SGD models take twice the batch and 2.5 times the rate: the clipped, noised mean gradient
        is small, and a larger batch divides the noise (cnn on digits at ε = 8: 93.0 % against 90.0 % with its
        plain defaults; docs/privacy.md)."""
        defaults = spec.defaults
        if str(defaults.get("optimizer", "sgd")).lower() != "sgd" or "lr" not in defaults:
            return {}
        return {"batch_size": 2 * int(defaults.get("batch_size", 32)), "lr": 2.5 * float(defaults["lr"])}

    def private_model_args(self, spec: ModelSpec) -> dict[str, Any]:
        """Under DP-SGD, models that offer a ``norm`` argument (the torchvision-layout ResNets) take group norm:
        batch norm mixes the samples of a batch, which per-sample clipping cannot bound."""
        return {"norm": "group"} if "norm" in spec.model_args else {}

    def gradcam_layer(self, model: torch.nn.Module) -> torch.nn.Module | None:
        """The model's own choice (a ``gradcam_layer()`` method: its last feature maps), else none."""
        pick = getattr(model, "gradcam_layer", None)
        return pick() if callable(pick) else None

    def attention_maps(self, model: torch.nn.Module, inputs: torch.Tensor) -> AttentionMaps | None:
        """The model's own attention maps (an ``attention_maps(inputs)`` method), else none."""
        maps = getattr(model, "attention_maps", None)
        return maps(inputs) if callable(maps) else None


def classifier_sections(context: ReportContext, family: Family | None = None) -> list[ReportSection]:
    """Confusion matrix, worst-classified validation images and attributions of a trained image classifier
    (``family`` names its Grad-CAM layer and the like; default: this family)."""
    from zoo.explain.report import image_attribution_section
    from zoo.toolkit.classifiers import confusion_section, worst_classified
    from zoo.toolkit.images import to_pixels

    model, data = context.model_and_data()
    probabilities = torch.cat([model(x).softmax(dim=1) for x, _ in batches(data.x_val, data.y_val, 256, "cpu")])
    probabilities = probabilities.numpy()
    names = list(data.info.class_names)
    worst, listing = worst_classified(data.y_val, probabilities, names, WORST_SHOWN,
                                      "worst classified, left to right and top to bottom")
    pixels = to_pixels(data.x_val[worst], data.info.mean, data.info.std)
    return [
        confusion_section(data.y_val, probabilities, names, "images"),
        ReportSection("Worst-classified validation images", tables=[listing],
                      images=[ReportImage.from_pixels(pixels, f"{len(worst)} worst-classified validation images",
                                                      columns=8)]),
        image_attribution_section(model, family or ClassifierFamily(), data, probabilities),
    ]
