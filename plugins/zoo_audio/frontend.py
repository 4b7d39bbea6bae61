"""The log-mel front end, as layers that export to portable ONNX operators.

The short-time Fourier transform is a strided ``Conv1d`` whose kernels are the periodic Hann window times
cosines and sines (the real and imaginary DFT rows), the mel filter bank a ``MatMul`` with a constant matrix,
then ``log``: no ``STFT`` or ``DFT`` operator, which not every runtime has. The settings and the filter bank are
librosa's (``librosa.feature.melspectrogram`` with ``center=True, pad_mode="constant"``, Slaney mel scale and
area normalisation, ``power=2``), so ``logmel = log(librosa_mel + eps)``; ``tests/test_audio.py`` compares
with librosa. For samples in [-1, 1] the power is at most ``(n_fft / 2)²`` (57,600 at ``n_fft=480``) and the
mel energies at most ~1,700: both fit fp16 (largest 65,504), so the fp16 variant needs no rescaling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class FrontEnd:
    """Log-mel settings (librosa's names)."""

    sample_rate: int = 16000
    n_fft: int = 480  # 30 ms at 16 kHz (a larger n_fft would let the power overflow fp16, see above)
    hop_length: int = 320  # 20 ms
    n_mels: int = 40
    fmin: float = 20.0
    fmax: float = 7600.0
    eps: float = 1e-6

    def frames(self, samples: int) -> int:
        """Frames of a clip of ``samples`` samples (centred frames, as librosa's ``center=True``)."""
        return 1 + samples // self.hop_length

    def to_dict(self) -> dict:
        return asdict(self)


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's ``htk=False``): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_part = hz >= 1000.0
    return np.where(log_part, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """The inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * (200.0 / 3))


def mel_filters(cfg: FrontEnd) -> np.ndarray:
    """``n_mels × (n_fft // 2 + 1)`` triangular filters, Slaney area-normalised (librosa.filters.mel's defaults)."""
    bins = np.linspace(0.0, cfg.sample_rate / 2, 1 + cfg.n_fft // 2)
    edges = mel_to_hz(np.linspace(hz_to_mel(cfg.fmin), hz_to_mel(cfg.fmax), cfg.n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def dft_kernels(cfg: FrontEnd) -> np.ndarray:
    """``2K × 1 × n_fft`` Conv1d kernels: K = n_fft // 2 + 1 windowed cosine rows, then K (negated) sine rows."""
    n = np.arange(cfg.n_fft)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / cfg.n_fft)  # periodic Hann, as scipy's get_window("hann")
    k = np.arange(cfg.n_fft // 2 + 1)[:, None]
    angle = 2 * np.pi * k * n[None, :] / cfg.n_fft
    rows = np.concatenate([np.cos(angle), -np.sin(angle)]) * window
    return rows[:, None, :]


class LogMel(nn.Module):
    """Waveform batch × samples → log-mel batch × n_mels × frames (see the module docstring for the formula)."""

    def __init__(self, cfg: FrontEnd) -> None:
        super().__init__()
        self.cfg = cfg
        self.bins = cfg.n_fft // 2 + 1
        # not persistent: constants of the settings, not learned (they stay out of the weights file)
        self.register_buffer("dft", torch.tensor(dft_kernels(cfg), dtype=torch.float32), persistent=False)
        self.register_buffer("mel", torch.tensor(mel_filters(cfg), dtype=torch.float32), persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        half = self.cfg.n_fft // 2
        padded = nn.functional.pad(waveform.unsqueeze(1), (half, half))  # librosa center=True, zeros
        spectrum = nn.functional.conv1d(padded, self.dft, stride=self.cfg.hop_length)  # B × 2K × frames
        real, imag = spectrum[:, : self.bins], spectrum[:, self.bins :]
        power = real * real + imag * imag
        return torch.log(torch.matmul(self.mel, power) + self.cfg.eps)
