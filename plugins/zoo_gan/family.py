"""The ``gan`` family: adversarial training with a discriminator step, then a generator step, per batch."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from zoo.data import DataInfo
from zoo.errors import ZooError
from zoo.family import (
    Family,
    GraphRole,
    GraphSpec,
    ReportContext,
    ReportImage,
    ReportSection,
    RunContext,
    make_optimizer,
    sampler_info,
)
from zoo.specs import ModelSpec
from zoo.toolkit.quality import judge_for, sample_quality
from zoo_gan.models import GAN, dcgan_init

#: Samples scored by the quality metrics, and shown (a fixed set) in each epoch's grid.
QUALITY_SAMPLES = 1000
GRID_SAMPLES = 100
SAMPLES_DIR = "samples"


class GANFamily(Family):
    wraps_for_ddp = False  # training_step calls model.generator / model.discriminator
    """DCGAN recipe: Adam (2e-4, β1 0.5), BCE with logits, non-saturating generator loss.

    Each batch steps the discriminator on real images and fakes made without a graph (so its step
    leaves no gradient in the generator), then the generator on fresh fakes scored as "real" (its
    backward also fills the discriminator's gradients, which that optimizer zeroes before its next
    step). For two discriminator steps per generator step, subclass with
    ``optimizer_order = ("discriminator", "discriminator", "generator")``.
    """

    optimizer_order = ("discriminator", "generator")
    monitor = ("sample_confident", "max")
    hyperparameters = {"optimizer": "adam", "lr": 2e-4, "beta1": 0.5, "beta2": 0.999,  # noqa: RUF012
                       "generator_steps": 1, "classifier_run": "", "classifier_model": "cnn"}

    def data_args(self, spec: ModelSpec, data: DataInfo) -> dict[str, Any]:
        args: dict[str, Any] = {"in_channels": data.channels, "image_size": [data.height, data.width],
                                "mean": data.mean, "std": data.std}
        if "num_classes" in spec.model_args:
            args["num_classes"] = data.num_classes
        return args

    def optimizer_steps(self, ctx: RunContext) -> tuple[str, ...]:
        """One discriminator step, then ``generator_steps`` generator steps, every batch."""
        steps = ctx.hyperparameters.get("generator_steps", 1)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
            raise ZooError(f"--hp generator_steps must be a positive whole number, got {steps!r}")
        return ("discriminator", *["generator"] * steps)

    def configure_optimizers(self, model: torch.nn.Module, ctx: RunContext) -> dict[str, Any]:
        hp = ctx.hyperparameters
        return {"discriminator": make_optimizer(model.discriminator.parameters(), hp),
                "generator": make_optimizer(model.generator.parameters(), hp)}

    def training_step(self, model: torch.nn.Module, batch: Any, optimizer: str,
                      ctx: RunContext) -> dict[str, torch.Tensor]:
        images, labels = batch
        noise, fake_labels = _noise(model, len(images), images.device)
        if optimizer == "discriminator":
            with torch.no_grad():  # fakes carry no graph back to the generator
                fakes = model.generator(noise, fake_labels)
            real_logits = model.discriminator(images, labels if model.num_classes else None)
            fake_logits = model.discriminator(fakes, fake_labels)
            loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                    + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
            return {"loss": loss, "real_accuracy": (real_logits > 0).float().mean(),
                    "fake_accuracy": (fake_logits < 0).float().mean()}
        fake_logits = model.discriminator(model.generator(noise, fake_labels), fake_labels)
        # non-saturating: maximise log D(G(z)) instead of minimising log(1 - D(G(z)))
        loss = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        return {"loss": loss}

    def evaluate(self, model: torch.nn.Module, ctx: RunContext) -> dict[str, float]:
        data, device = ctx.data, ctx.device
        images = torch.from_numpy(data.x_val).to(device)
        labels = torch.from_numpy(data.y_val).to(device)
        real_logits = model.discriminator(images, labels if model.num_classes else None)
        noise, fake_labels = _noise(model, len(images), device, seed=0)
        fake_logits = model.discriminator(model.generator(noise, fake_labels), fake_labels)
        loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        return {"val_discriminator_loss": float(loss),
                "val_discriminator_real_accuracy": float((real_logits > 0).float().mean()),
                "val_discriminator_fake_accuracy": float((fake_logits < 0).float().mean())}

    def epoch_end(self, model: torch.nn.Module, ctx: RunContext) -> dict[str, float]:
        """A grid of the same 100 noise vectors every epoch (one row per class if conditional)."""
        from zoo.toolkit.images import save_grid, to_pixels

        noise, labels = _noise(model, GRID_SAMPLES, ctx.device, seed=1, ordered_labels=True)
        grid = model.generator(noise, labels).cpu().numpy()
        info = ctx.data_info
        save_grid(to_pixels(grid, info.mean, info.std), _samples_dir(ctx.run_dir) / f"epoch-{ctx.epoch:03d}.png",
                  columns=10)
        return _quality(model, ctx, per_class=False)

    def final_metrics(self, model: torch.nn.Module, ctx: RunContext) -> dict[str, Any]:
        """Quality of the trained generator, and the Fréchet distance of an untrained one for scale."""
        untrained = copy.deepcopy(model)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            dcgan_init(untrained)
        reference = _quality(untrained, ctx)["sample_fd"]
        metrics = _quality(model, ctx)
        return {**metrics, "sample_fd_untrained": reference, "sample_fd_ratio": metrics["sample_fd"] / reference}

    def graphs(self, model: torch.nn.Module, data: DataInfo) -> list[GraphSpec]:
        return gan_graphs(model, data)

    def report_sections(self, context: ReportContext) -> list[ReportSection]:
        """The fixed-noise sample grid over the epochs (from the run folder; no model needed)."""
        images = ReportImage.series(Path(context.run_dir) / SAMPLES_DIR, "samples")
        return [ReportSection("Samples over epochs", text="" if images else "No sample grid was written.",
                              images=images)]


def gan_graphs(model: GAN, data: DataInfo) -> list[GraphSpec]:
    """``generator`` (noise [, label] → image) and ``discriminator`` (image [, label] → logit)."""
    conditional = bool(model.num_classes)
    shape, latent, classes = data.shape, model.latent_dim, model.num_classes

    def generator_inputs(batch: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        noise = rng.standard_normal((batch, latent)).astype(np.float32)
        return (noise, rng.integers(0, classes, batch, dtype=np.int64)) if conditional else (noise,)

    def discriminator_inputs(batch: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        images = rng.standard_normal((batch, *shape)).astype(np.float32)
        return (images, rng.integers(0, classes, batch, dtype=np.int64)) if conditional else (images,)

    label = ["label"] if conditional else []
    return [
        GraphSpec(
            name="generator", module=model.generator, input_names=["noise", *label], output_names=["image"],
            random_inputs=generator_inputs,
            role=GraphRole.SAMPLER,
            role_info=sampler_info(latent_input="noise", latent_dim=latent, output="image",
                                   label_input="label" if conditional else None, num_classes=classes),
        ),
        GraphSpec(
            name="discriminator", module=model.discriminator, input_names=["image", *label], output_names=["logit"],
            random_inputs=discriminator_inputs,
            real_inputs=lambda splits: (splits.x_val, splits.y_val) if conditional else (splits.x_val,),
            # int8 is calibrated on real images: random ones miss the ranges real digits reach
            calibration_inputs=lambda splits: (splits.x_train, splits.y_train) if conditional else (splits.x_train,),
        ),
    ]


def _noise(model: GAN, n: int, device: Any, seed: int | None = None,
           ordered_labels: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Latent noise and (conditional models) uniformly drawn labels; ``seed`` keeps the global RNG untouched."""
    if seed is None:  # training: the global RNG, on the device
        noise = torch.randn(n, model.latent_dim, device=device)
        labels = torch.randint(0, model.num_classes, (n,), device=device) if model.num_classes else None
        return noise, labels
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, model.latent_dim, generator=generator).to(device)
    if not model.num_classes:
        return noise, None
    if ordered_labels:
        labels = torch.arange(n) * model.num_classes // n
    else:
        labels = torch.randint(0, model.num_classes, (n,), generator=generator)
    return noise, labels.to(device)


def _quality(model: GAN, ctx: RunContext, per_class: bool = True) -> dict[str, float]:
    noise, labels = _noise(model, QUALITY_SAMPLES, ctx.device, seed=2)
    return sample_quality(judge_for(ctx), model.generator(noise, labels), ctx.data, per_class)


def _samples_dir(run_dir: Path) -> Path:
    path = Path(run_dir) / SAMPLES_DIR
    path.mkdir(exist_ok=True)
    return path
