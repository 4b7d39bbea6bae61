"""An example third-party zoo plugin: a Vision Transformer, a recurrent family, a dataset and a command.

This module is what the ``zoo`` entry point names. It imports only the contract (``zoo.hookspecs``,
``zoo.specs``) and refers to its code as lazy ``"module:attr"`` strings, so ``zoo list`` stays fast
and never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zoo.hookspecs import hookimpl
from zoo.specs import DatasetSpec, FamilySpec, InputSpec, ModelSpec

#: The plugin contract this plugin was written for; a zoo that speaks an older one skips it.
ZOO_CONTRACT = 2


@hookimpl
def register_families(register: Callable[[Any], None]) -> None:
    register(FamilySpec(
        name="sequence-classifier",
        summary="Recurrent classifiers of sequences (or images read row by row); exported as sequence → logits",
        factory="zoo_example_plugin.family:SequenceClassifierFamily",
    ))


@hookimpl
def register_models(register: Callable[[Any], None]) -> None:
    # A new model in an existing family: the built-in classifier family trains and exports it.
    register(ModelSpec(
        name="vit-tiny",
        family="classifier",
        summary="A tiny Vision Transformer (2×2 patches, 2 blocks of 4-head attention, class token)",
        builder="zoo_example_plugin.vit:TinyViT",
        input=InputSpec(1, 8, 8),
        defaults={"epochs": 15, "batch_size": 64, "lr": 0.003, "optimizer": "adamw", "weight_decay": 0.05},
        model_args={"in_channels": 1, "num_classes": 10, "image_size": [8, 8], "patch_size": 2, "dim": 32,
                    "depth": 2, "heads": 4},
    ))
    # Models of the family this plugin adds. Input: one channel of 8 steps × 8 features.
    for cell in ("gru", "lstm"):
        register(ModelSpec(
            name=cell,
            family="sequence-classifier",
            summary=f"A {cell.upper()} over the steps of a sequence, classified from its last hidden state",
            builder="zoo_example_plugin.recurrent:RecurrentClassifier",
            input=InputSpec(1, 8, 8),
            defaults={"epochs": 15, "batch_size": 64, "lr": 0.005, "optimizer": "adam"},
            model_args={"cell": cell, "input_size": 8, "num_classes": 10, "hidden_size": 64, "num_layers": 1},
        ))


@hookimpl
def register_datasets(register: Callable[[Any], None]) -> None:
    register(DatasetSpec(
        name="digit-rows",
        summary="The 8×8 digits as sequences: 8 steps (rows) of 8 features (pixels), 10 classes",
        loader="zoo_example_plugin.rows:load_digit_rows",
        input=InputSpec(1, 8, 8),
        num_classes=10,
        size=1797,
    ))


@hookimpl
def register_commands(cli: Any) -> None:
    from zoo_example_plugin.commands import digit_rows  # click only: no torch at start-up

    cli.add_command(digit_rows)
