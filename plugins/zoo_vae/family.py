"""The ``vae`` family: training on the negative ELBO (β-weighted KL for β-VAEs), in nats per image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.data import DataInfo, DataSplits
from zoo.errors import ZooError
from zoo.family import (
    Family,
    GraphRole,
    GraphSpec,
    ReportContext,
    ReportImage,
    ReportSection,
    RunContext,
    decoder_info,
    encoder_info,
    make_optimizer,
)
from zoo.specs import ModelSpec
from zoo.toolkit.quality import judge_for, sample_quality
from zoo_vae.models import VAE

QUALITY_SAMPLES = 1000
GRID_SAMPLES = 100
RECONSTRUCTIONS = 50


def negative_elbo(model: VAE, images: torch.Tensor, generator: torch.Generator | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image reconstruction NLL and KL(q(z|x) ‖ N(0, I)) in nats, one posterior sample each."""
    mean, log_variance = model.encoder(images)
    noise = torch.randn(mean.shape, generator=generator).to(mean.device) if generator else torch.randn_like(mean)
    latent = mean + noise * torch.exp(0.5 * log_variance)
    recon_nll = -model.log_likelihood(model.quantise(images), latent)
    kl = 0.5 * (mean.pow(2) + log_variance.exp() - 1 - log_variance).sum(dim=1)
    return recon_nll, kl, mean


def pixel_histogram_nll(data: DataSplits, levels: int) -> float:
    """Baseline: validation NLL (nats per image) of independent per-pixel histograms of the training
    images over the ``levels`` intensities (add-one smoothing): the best model with no latent structure."""

    def level_indices(images: np.ndarray) -> np.ndarray:  # N × pixels, each an intensity level index
        mean = np.asarray(data.info.mean, np.float32)[None, :, None, None]
        std = np.asarray(data.info.std, np.float32)[None, :, None, None]
        levels_of = np.clip(np.round((images * std + mean) * (levels - 1)), 0, levels - 1)
        return levels_of.astype(np.int64).reshape(len(images), -1)

    train, val = level_indices(data.x_train), level_indices(data.x_val)
    pixels = np.arange(train.shape[1])
    counts = np.ones((len(pixels), levels))
    np.add.at(counts, (np.broadcast_to(pixels, train.shape), train), 1)
    log_probs = np.log(counts / counts.sum(axis=1, keepdims=True))
    return float(-log_probs[pixels, val].sum(axis=1).mean())


class VAEFamily(Family):
    wraps_for_ddp = False  # training_step calls model.encoder and the likelihood directly
    """Maximises the ELBO: loss = reconstruction NLL + β·KL per image (nats), Adam.

    Validation reports the true negative ELBO (β = 1) and its two parts whatever β was trained with.
    """

    monitor = ("val_nelbo", "min")
    hyperparameters = {"optimizer": "adam", "beta": 1.0, "classifier_run": "", "classifier_model": "cnn"}  # noqa: RUF012

    def data_args(self, spec: ModelSpec, data: DataInfo) -> dict[str, Any]:
        # raw pixels are integers 0 … 1/scale (e.g. 0–16 for digits); otherwise assume 8-bit
        levels = round(1 / data.scale) + 1 if 0 < data.scale < 1 else 256
        return {"in_channels": data.channels, "image_size": [data.height, data.width], "levels": levels,
                "mean": data.mean, "std": data.std}

    def configure_optimizers(self, model: torch.nn.Module, ctx: RunContext) -> dict[str, Any]:
        _beta(ctx)  # a bad β fails before the first step
        return {"model": make_optimizer(model.parameters(), ctx.hyperparameters)}

    def training_step(self, model: torch.nn.Module, batch: Any, optimizer: str,
                      ctx: RunContext) -> dict[str, torch.Tensor]:
        images, _ = batch
        recon_nll, kl, _ = negative_elbo(model, images)
        return {"loss": (recon_nll + _beta(ctx) * kl).mean(), "nelbo": (recon_nll + kl).mean(),
                "recon_nll": recon_nll.mean(), "kl": kl.mean()}

    def evaluate(self, model: torch.nn.Module, ctx: RunContext) -> dict[str, float]:
        images = torch.from_numpy(ctx.data.x_val).to(ctx.device)
        recon_nll, kl, mean = negative_elbo(model, images, torch.Generator().manual_seed(0))
        pixels = model.quantise(images)
        mse = (model.decoder.pixels(mean) - pixels).pow(2).mean()
        return {"val_loss": float((recon_nll + _beta(ctx) * kl).mean()),
                "val_nelbo": float((recon_nll + kl).mean()), "val_recon_nll": float(recon_nll.mean()),
                "val_kl": float(kl.mean()), "val_recon_mse": float(mse)}

    def epoch_end(self, model: torch.nn.Module, ctx: RunContext) -> dict[str, float]:
        """Grids of decoded prior samples and of validation images (odd rows) with their reconstructions."""
        from zoo.toolkit.images import save_grid, to_pixels

        data, run_dir, epoch, device = ctx.data, ctx.run_dir, ctx.epoch, ctx.device
        latent = torch.randn(GRID_SAMPLES, model.latent_dim, generator=torch.Generator().manual_seed(1))
        samples = model.decoder.pixels(latent.to(device)).cpu().numpy()
        save_grid(samples, _folder(run_dir, "samples") / f"epoch-{epoch:03d}.png", columns=10)
        columns = min(10, len(data.x_val))
        count = min(RECONSTRUCTIONS, len(data.x_val)) // columns * columns
        originals = data.x_val[:count]
        recon = model.decoder.pixels(model.encoder(torch.from_numpy(originals).to(device))[0]).cpu().numpy()
        rows = (-1, columns, *recon.shape[1:])  # a row of originals, then the row of their reconstructions
        pairs = np.concatenate([to_pixels(originals, data.info.mean, data.info.std).reshape(rows),
                                recon.reshape(rows)], axis=1)
        save_grid(pairs.reshape(-1, *recon.shape[1:]), _folder(run_dir, "reconstructions") / f"epoch-{epoch:03d}.png",
                  columns=columns)
        return {}

    def final_metrics(self, model: torch.nn.Module, ctx: RunContext) -> dict[str, Any]:
        """Quality of decoded prior samples, and the per-pixel-histogram baseline for the ELBO."""
        latent = torch.randn(QUALITY_SAMPLES, model.latent_dim, generator=torch.Generator().manual_seed(2))
        samples = model.decoder(latent.to(ctx.device))
        return {**sample_quality(judge_for(ctx), samples, ctx.data),
                "baseline_pixel_histogram_nll": pixel_histogram_nll(ctx.data, model.levels)}

    def report_sections(self, context: ReportContext) -> list[ReportSection]:
        """Decoded prior samples and reconstructions over the epochs (from the run folder)."""
        sections = []
        for folder, title, note in (("samples", "Samples over epochs", "decoded prior samples"),
                                    ("reconstructions", "Reconstructions over epochs",
                                     "validation images (odd rows) above their reconstructions")):
            images = ReportImage.series(Path(context.run_dir) / folder, folder)
            sections.append(ReportSection(title, text=note if images else "No grid was written.", images=images))
        return sections

    def graphs(self, model: torch.nn.Module, data: DataInfo) -> list[GraphSpec]:
        shape, latent = data.shape, model.latent_dim

        def image_inputs(batch: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
            return (rng.standard_normal((batch, *shape)).astype(np.float32),)

        def latent_inputs(batch: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
            return (rng.standard_normal((batch, latent)).astype(np.float32),)

        return [
            GraphSpec(name="encoder", module=model.encoder, input_names=["image"],
                      output_names=["mean", "log_variance"], random_inputs=image_inputs,
                      real_inputs=lambda splits: (splits.x_val,),
                      calibration_inputs=lambda splits: (splits.x_train,),
                      role=GraphRole.ENCODER,
                      role_info=encoder_info(image_input="image", latent_output="mean", latent_dim=latent)),
            GraphSpec(name="decoder", module=model.decoder, input_names=["latent"], output_names=["image"],
                      random_inputs=latent_inputs,
                      real_inputs=lambda splits: (_posterior_means(model, splits.x_val),),
                      calibration_inputs=lambda splits: (_posterior_means(model, splits.x_train),),
                      role=GraphRole.DECODER,
                      role_info=decoder_info(latent_input="latent", latent_dim=latent, output="image")),
        ]


def _beta(ctx: RunContext) -> float:
    """The KL weight β of the run's hyperparameters (a number of at least 0)."""
    beta = ctx.hyperparameters.get("beta", 1.0)
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 <= beta < float("inf"):
        raise ZooError(f"--hp beta must be a number of at least 0, got {beta!r}")
    return float(beta)


def _posterior_means(model: VAE, images: np.ndarray) -> np.ndarray:
    """Latent codes of real images (the encoder's means): realistic decoder inputs for parity checks."""
    with torch.no_grad():
        return model.encoder.cpu()(torch.from_numpy(images))[0].numpy()


def _folder(run_dir: Path, name: str) -> Path:
    path = Path(run_dir) / name
    path.mkdir(exist_ok=True)
    return path
