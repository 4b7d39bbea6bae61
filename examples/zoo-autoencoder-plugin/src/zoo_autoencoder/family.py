"""The ``autoencoder`` family: denoising reconstruction, exported as an encoder and a decoder graph."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from zoo.data import DataInfo
from zoo.errors import ZooError
from zoo.family import Family, GraphRole, GraphSpec, RunContext, decoder_info, encoder_info, make_optimizer
from zoo.specs import ModelSpec


class AutoencoderFamily(Family):
    """Trains ``decoder(encoder(image + noise))`` to give back ``image`` (mean squared error, model input space)."""

    monitor = ("val_loss", "min")
    hyperparameters = {"optimizer": "adam", "noise": 0.5}  # noqa: RUF012 - read-only class default

    def data_args(self, spec: ModelSpec, data: DataInfo) -> dict[str, Any]:
        return {"in_channels": data.channels, "image_size": [data.height, data.width], "mean": data.mean,
                "std": data.std}

    def configure_optimizers(self, model: torch.nn.Module, ctx: RunContext) -> dict[str, Any]:
        _noise(ctx)  # refuse a bad --hp noise before the first step
        return {"model": make_optimizer(model.parameters(), ctx.hyperparameters)}

    def training_step(self, model: torch.nn.Module, batch: Any, optimizer: str,
                      ctx: RunContext) -> dict[str, torch.Tensor]:
        images, _ = batch
        noisy = images + _noise(ctx) * torch.randn_like(images)
        return {"loss": F.mse_loss(model(noisy), images)}

    def evaluate(self, model: torch.nn.Module, ctx: RunContext) -> dict[str, float]:
        images = torch.from_numpy(ctx.data.x_val).to(ctx.device)
        noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(0)).to(ctx.device)
        return {"val_loss": float(F.mse_loss(model(images + _noise(ctx) * noise), images)),
                "val_clean_loss": float(F.mse_loss(model(images), images))}

    def graphs(self, model: torch.nn.Module, data: DataInfo) -> list[GraphSpec]:
        shape, latent = data.shape, model.latent_dim

        def images(batch: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
            return (rng.standard_normal((batch, *shape)).astype(np.float32),)

        def codes(batch: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
            return (rng.uniform(-1, 1, (batch, latent)).astype(np.float32),)

        return [
            GraphSpec(name="encoder", module=model.encoder, input_names=["image"], output_names=["latent"],
                      random_inputs=images, real_inputs=lambda splits: (splits.x_val,),
                      role=GraphRole.ENCODER,
                      role_info=encoder_info(image_input="image", latent_output="latent", latent_dim=latent)),
            # The code is tanh-bounded, so `zoo sample` draws it uniformly from [-1, 1]; the decoder gives
            # model input, which `zoo sample` maps back to pixels with the bundle's normalisation.
            GraphSpec(name="decoder", module=model.decoder, input_names=["latent"], output_names=["image"],
                      random_inputs=codes, real_inputs=lambda splits: (_codes(model, splits.x_val),),
                      role=GraphRole.DECODER,
                      role_info=decoder_info(latent_input="latent", latent_dim=latent, output="image",
                                             distribution="uniform")),
        ]


def _codes(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    """Latent codes of real images: realistic decoder inputs for the parity check."""
    with torch.no_grad():
        return model.encoder.cpu()(torch.from_numpy(images)).numpy()


def _noise(ctx: RunContext) -> float:
    """The standard deviation of the training noise (``--hp noise``)."""
    noise = ctx.hyperparameters.get("noise", 0.5)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or noise < 0:
        raise ZooError(f"--hp noise must be a number of at least 0, got {noise!r}")
    return float(noise)
