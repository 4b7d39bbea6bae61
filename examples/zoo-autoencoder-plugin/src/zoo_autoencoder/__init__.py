"""A zoo plugin adding a family: denoising autoencoders, exported as an ``encoder`` and a ``decoder`` graph.

Imports only the contract; the family and the model are lazy ``"module:attr"`` references.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zoo.hookspecs import hookimpl
from zoo.specs import FamilySpec, InputSpec, ModelSpec

ZOO_CONTRACT = 2


@hookimpl
def register_families(register: Callable[[Any], None]) -> None:
    register(FamilySpec(name="autoencoder", summary="Denoising autoencoders: image → latent code → image",
                        factory="zoo_autoencoder.family:AutoencoderFamily"))


@hookimpl
def register_models(register: Callable[[Any], None]) -> None:
    register(ModelSpec(
        name="dae", family="autoencoder", summary="A denoising MLP autoencoder with a bounded (tanh) latent code",
        builder="zoo_autoencoder.model:DenoisingAutoencoder", input=InputSpec(1, 8, 8),
        defaults={"epochs": 20, "batch_size": 64, "lr": 0.003},
        model_args={"in_channels": 1, "image_size": [8, 8], "hidden": 64, "latent_dim": 8,
                    "mean": [0.0], "std": [1.0]},
    ))
