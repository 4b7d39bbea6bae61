"""Training-time augmentation of waveform batches, drawn from (seed, epoch, step) so a resumed run sees exactly
what the uninterrupted one saw: a time shift (zeros shifted in), a gain, added Gaussian noise, and for
spectrogram models SpecAugment-style masks (one band of mel channels and one span of frames per clip)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AudioAugment:
    """How strong each augmentation is (family hyperparameters of the same names)."""

    shift: float = 0.1  # seconds, either way
    gain_db: float = 6.0  # up or down
    noise: float = 0.01  # largest noise standard deviation (full scale 1)
    freq_mask: int = 7  # mel channels
    time_mask: int = 20  # frames


def generator(seed: int, epoch: int, step: int) -> torch.Generator:
    """The random stream of one training batch."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 100_003 + step)


def augment_waveforms(x: torch.Tensor, cfg: AudioAugment, sample_rate: int, gen: torch.Generator) -> torch.Tensor:
    """A B × T batch shifted in time (zero-filled), scaled and with noise added."""
    b, t = x.shape
    reach = int(cfg.shift * sample_rate)
    shifts = torch.randint(-reach, reach + 1, (b,), generator=gen) if reach else torch.zeros(b, dtype=torch.long)
    source = torch.arange(t)[None, :] - shifts[:, None]  # output sample i reads input i - shift
    valid = (source >= 0) & (source < t)
    shifted = torch.gather(x, 1, source.clamp(0, t - 1).to(x.device)) * valid.to(x.device, x.dtype)
    gain = 10 ** (torch.empty(b, 1).uniform_(-cfg.gain_db, cfg.gain_db, generator=gen) / 20)
    noise = torch.randn(b, t, generator=gen) * torch.empty(b, 1).uniform_(0, cfg.noise, generator=gen)
    return shifted * gain.to(x.device, x.dtype) + noise.to(x.device, x.dtype)


def spec_masks(b: int, mels: int, frames: int, cfg: AudioAugment, gen: torch.Generator) -> torch.Tensor:
    """B × mels × frames of ones with one zeroed band of up to ``freq_mask`` mel channels and one zeroed span of
    up to ``time_mask`` frames per clip."""
    mask = torch.ones(b, mels, frames)
    for axis, size, most in ((1, mels, cfg.freq_mask), (2, frames, cfg.time_mask)):
        width = torch.randint(0, most + 1, (b,), generator=gen)
        start = (torch.rand(b, generator=gen) * (size - width + 1)).long()
        positions = torch.arange(size)[None, :]
        hit = (positions >= start[:, None]) & (positions < (start + width)[:, None])
        mask = mask * (~hit).float().unsqueeze(3 - axis)
    return mask
