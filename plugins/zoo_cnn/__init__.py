"""Built-in plugin: CNN image classifiers (the ``classifier`` family).

Registers through the same hooks and entry-point group a third-party package uses. Nothing here
imports torch: the models and the family are lazy ``"module:attr"`` references.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zoo.hookspecs import hookimpl
from zoo.specs import FamilySpec, InputSpec, ModelSpec


@hookimpl
def register_families(register: Callable[[Any], None]) -> None:
    register(
        FamilySpec(
            name="classifier",
            summary="Image classifiers trained with cross-entropy; exported as image → logits",
            factory="zoo_cnn.family:ClassifierFamily",
        )
    )


@hookimpl
def register_models(register: Callable[[Any], None]) -> None:
    register(
        ModelSpec(
            name="cnn",
            family="classifier",
            summary="The article's CNN (conv32 → conv64 → pool → fc128 → fc), sized from its input",
            builder="zoo_cnn.models:ArticleCNN",
            input=InputSpec(1, 8, 8),
            defaults={"epochs": 12, "batch_size": 32, "lr": 0.02, "optimizer": "sgd", "momentum": 0.9},
            model_args={"in_channels": 1, "num_classes": 10, "image_size": [8, 8]},
        )
    )
    register(
        ModelSpec(
            name="resnet-small",
            family="classifier",
            summary="A small ResNet (3 stages of basic residual blocks, batch norm, global pooling)",
            builder="zoo_cnn.models:SmallResNet",
            input=InputSpec(1, 8, 8),
            defaults={"epochs": 12, "batch_size": 32, "lr": 0.05, "optimizer": "sgd", "momentum": 0.9,
                      "weight_decay": 5e-4},
            model_args={"in_channels": 1, "num_classes": 10, "width": 16, "blocks_per_stage": 1},
        )
    )
