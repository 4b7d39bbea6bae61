"""Convolutional VAE with a discretised-logistic pixel likelihood, sized from the image size."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zoo.toolkit.layers import PixelsToInput, check_latent, doubling_plan

#: Floor of a pixel's log-scale: keeps the likelihood finite once the decoder is very sure.
MIN_LOG_SCALE = -7.0


class Encoder(nn.Module):
    """image (model-input space) → (mean, log-variance) of q(z | x)."""

    def __init__(self, channels: int, image_size: Sequence[int], features: int, latent_dim: int) -> None:
        super().__init__()
        base_h, base_w, doublings = doubling_plan(image_size)
        width = features
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.LeakyReLU(0.2)]
        for _ in range(doublings):
            layers += [nn.Conv2d(width, width * 2, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            width *= 2
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(width * base_h * base_w, 2 * latent_dim)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_variance = self.head(self.body(images)).chunk(2, dim=1)
        return mean, log_variance


class Decoder(nn.Module):
    """latent → image: the location of p(x | z), as pixels in [0, 1] (``pixels``) or normalised (``forward``).

    ``likelihood`` also gives the per-pixel log-scale of p(x | z); the exported graph is ``forward``.
    """

    def __init__(self, channels: int, image_size: Sequence[int], features: int, latent_dim: int,
                 mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        base_h, base_w, doublings = doubling_plan(image_size)
        width = features * 2**doublings
        self.base = (width, base_h, base_w)
        self.project = nn.Linear(latent_dim, width * base_h * base_w)
        layers: list[nn.Module] = [nn.LeakyReLU(0.2)]
        for _ in range(doublings):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            width //= 2
        self.body = nn.Sequential(*layers, nn.Conv2d(width, 2 * channels, 3, padding=1))
        self.to_input = PixelsToInput(mean, std)

    def likelihood(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Location in [0, 1] and log-scale (at least ``MIN_LOG_SCALE``) of each pixel's logistic."""
        location, log_scale = self.body(self.project(latent).view(-1, *self.base)).chunk(2, dim=1)
        return torch.sigmoid(location), log_scale.clamp_min(MIN_LOG_SCALE)

    def pixels(self, latent: torch.Tensor) -> torch.Tensor:
        return self.likelihood(latent)[0]

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.to_input(self.pixels(latent))


class VAE(nn.Module):
    """Encoder and decoder; the decoder gives each pixel's likelihood a location and a scale.

    p(x | z) is a discretised logistic over the data's ``levels`` intensity levels (17 for digits:
    0–16), so log-likelihoods are of the actual discrete pixels and the ELBO is in nats per image.
    """

    def __init__(self, in_channels: int = 1, image_size: Sequence[int] = (8, 8), latent_dim: int = 16,
                 features: int = 32, levels: int = 256, mean: Sequence[float] = (0.0,),
                 std: Sequence[float] = (1.0,)) -> None:
        super().__init__()
        check_latent(latent_dim)
        if in_channels <= 0 or features <= 0:
            raise ValueError("in_channels and features must be positive")
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
            raise ValueError(f"levels must be a whole number of at least 2, got {levels!r}")
        if len(mean) != in_channels:
            raise ValueError(f"mean and std need one value per channel ({in_channels})")
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(int(v) for v in image_size)
        self.latent_dim, self.levels = latent_dim, levels
        self.encoder = Encoder(in_channels, size, features, latent_dim)
        self.decoder = Decoder(in_channels, size, features, latent_dim, mean, std)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction (model-input space, from the posterior mean), mean and log-variance."""
        mean, log_variance = self.encoder(images)
        return self.decoder(mean), mean, log_variance

    def quantise(self, images: torch.Tensor) -> torch.Tensor:
        """Model-input images back to their discrete pixel values in [0, 1]."""
        pixels = self.decoder.to_input.inverse(images).clamp(0, 1)
        return torch.round(pixels * (self.levels - 1)) / (self.levels - 1)

    def log_likelihood(self, pixels: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """log p(pixels | latent) per image (nats), summed over pixels; ``pixels`` on the level grid."""
        location, log_scale = self.decoder.likelihood(latent)
        return discretised_logistic_log_prob(pixels, location, log_scale, self.levels).flatten(1).sum(1)


def discretised_logistic_log_prob(x: torch.Tensor, mu: torch.Tensor, log_scale: torch.Tensor,
                                  levels: int) -> torch.Tensor:
    """log P(x) of pixels on a grid of ``levels`` values in [0, 1] under a logistic(mu, e^log_scale)
    discretised into bins (the lowest and highest bins reach to ∓infinity), as in PixelCNN++."""
    half_bin = 0.5 / (levels - 1)
    inv_scale = torch.exp(-log_scale)
    upper = inv_scale * (x - mu + half_bin)
    lower = inv_scale * (x - mu - half_bin)
    log_cdf_upper = upper - F.softplus(upper)          # log sigmoid(upper)
    log_one_minus_cdf_lower = -F.softplus(lower)       # log (1 - sigmoid(lower))
    bin_mass = torch.sigmoid(upper) - torch.sigmoid(lower)
    middle = inv_scale * (x - mu)
    # where the bin mass underflows, use the density at the bin centre times the bin width
    log_density = middle - log_scale - 2 * F.softplus(middle) + math.log(2 * half_bin)
    log_mass = torch.where(bin_mass > 1e-5, torch.log(bin_mass.clamp_min(1e-12)), log_density)
    return torch.where(x < half_bin, log_cdf_upper, torch.where(x > 1 - half_bin, log_one_minus_cdf_lower, log_mass))


def conv_vae(in_channels: int = 1, image_size: Sequence[int] = (8, 8), latent_dim: int = 16, features: int = 32,
             levels: int = 256, mean: Sequence[float] = (0.0,), std: Sequence[float] = (1.0,)) -> VAE:
    """Convolutional VAE (β is a training hyperparameter: 1 for the VAE, 4 for the β-VAE)."""
    return VAE(in_channels, image_size, latent_dim, features, levels, mean, std)
