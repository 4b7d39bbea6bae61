"""Built-in plugin: variational autoencoders (the ``vae`` family).

Nothing here imports torch: the models and the family are lazy ``"module:attr"`` references.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zoo.hookspecs import hookimpl
from zoo.specs import FamilySpec, InputSpec, ModelSpec

VAE_ARGS = {"in_channels": 1, "image_size": [8, 8], "latent_dim": 16, "features": 32}
VAE_DEFAULTS = {"epochs": 60, "batch_size": 64, "lr": 1e-3, "optimizer": "adam"}


@hookimpl
def register_families(register: Callable[[Any], None]) -> None:
    register(
        FamilySpec(
            name="vae",
            summary="VAEs trained on the negative ELBO in nats per image; exported as encoder and decoder graphs",
            factory="zoo_vae.family:VAEFamily",
            target_kinds=("class", "none"),  # labels are not used
        )
    )


@hookimpl
def register_models(register: Callable[[Any], None]) -> None:
    register(
        ModelSpec(
            name="vae",
            family="vae",
            summary="Convolutional VAE sized from its input (latent 16, discretised-logistic pixel likelihood)",
            builder="zoo_vae.models:conv_vae",
            input=InputSpec(1, 8, 8),
            defaults={**VAE_DEFAULTS, "beta": 1.0},
            model_args=dict(VAE_ARGS),
        )
    )
    register(
        ModelSpec(
            name="beta-vae",
            family="vae",
            summary="β-VAE: the same network trained with the KL term weighted by β = 4 (disentangling)",
            builder="zoo_vae.models:conv_vae",
            input=InputSpec(1, 8, 8),
            defaults={**VAE_DEFAULTS, "beta": 4.0},
            model_args=dict(VAE_ARGS),
        )
    )
