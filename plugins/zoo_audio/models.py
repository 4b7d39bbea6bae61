"""Keyword-spotting models that take raw waveforms (batch × samples) and return class logits.

The spectrogram models compute their log-mel features inside (:class:`zoo_audio.frontend.LogMel`), so the
exported graph takes the waveform too. ``forward(waveform, mask=None)``: ``mask`` (batch × n_mels × frames of
0/1, SpecAugment) multiplies the normalised features during training; the exported graph has no such input.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo_audio.frontend import FrontEnd, LogMel


def _front(sample_rate: int, n_mels: int) -> tuple[LogMel, nn.BatchNorm2d]:
    return LogMel(FrontEnd(sample_rate=sample_rate, n_mels=n_mels)), nn.BatchNorm2d(1)


class M5(nn.Module):
    """Raw-waveform 1-D CNN after Dai et al. 2017 ("M5"): a wide strided first convolution (80 taps at
    16 kHz), then three conv/pool blocks, global average pooling and a linear layer."""

    takes_mask = False

    def __init__(self, num_classes: int = 10, samples: int = 16000, sample_rate: int = 16000, width: int = 32,
                 ) -> None:
        super().__init__()
        self.sample_rate, self.samples = sample_rate, samples

        def block(cin: int, cout: int, kernel: int, stride: int = 1) -> list[nn.Module]:
            return [nn.Conv1d(cin, cout, kernel, stride=stride, padding=kernel // 2), nn.BatchNorm1d(cout),
                    nn.ReLU(), nn.MaxPool1d(4)]

        self.features = nn.Sequential(*block(1, width, 80, stride=4), *block(width, width, 3),
                                      *block(width, 2 * width, 3), *block(2 * width, 2 * width, 3))
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, waveform: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.features(waveform.unsqueeze(1))
        return self.head(x.mean(dim=2))


class _Residual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout))
        self.skip = (nn.Identity() if cin == cout and stride == 1 else
                     nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class KWSResNet(nn.Module):
    """Log-mel keyword spotter: log-mel → batch norm → a 3×3 stem → residual stages → global average pooling
    → dropout → linear (a small ResNet over the time-frequency image, in the spirit of res8/res15)."""

    takes_mask = True

    def __init__(self, num_classes: int = 10, samples: int = 16000, sample_rate: int = 16000, n_mels: int = 40,
                 width: int = 16, dropout: float = 0.1) -> None:
        super().__init__()
        self.sample_rate, self.samples = sample_rate, samples
        self.logmel, self.norm = _front(sample_rate, n_mels)
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        # halving time and frequency early keeps a training step cheap on a CPU (the front end costs as much)
        self.stages = nn.Sequential(_Residual(width, width, 2), _Residual(width, 2 * width, 2),
                                    _Residual(2 * width, 2 * width, 1))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, waveform: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.classify(self.logmel(waveform), mask)

    def classify(self, logmel: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits from the log-mel spectrogram (batch × n_mels × frames): all of the model after its front end."""
        x = self.norm(logmel.unsqueeze(1))
        if mask is not None:
            x = x * mask.unsqueeze(1)
        x = self.stages(self.stem(x))
        return self.head(self.dropout(x.mean(dim=(2, 3))))


class CRNN(nn.Module):
    """Convolutional-recurrent model: log-mel → two strided conv blocks → a GRU over time → the mean of its
    states → linear."""

    takes_mask = True

    def __init__(self, num_classes: int = 10, samples: int = 16000, sample_rate: int = 16000, n_mels: int = 40,
                 width: int = 16, hidden: int = 64) -> None:
        super().__init__()
        self.sample_rate, self.samples = sample_rate, samples
        self.logmel, self.norm = _front(sample_rate, n_mels)
        self.convs = nn.Sequential(
            nn.Conv2d(1, width, 3, stride=(2, 1), padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=(2, 2), padding=1, bias=False), nn.BatchNorm2d(2 * width),
            nn.ReLU())
        self.gru = nn.GRU(2 * width * ((n_mels + 3) // 4), hidden, batch_first=True)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, waveform: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.classify(self.logmel(waveform), mask)

    def classify(self, logmel: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits from the log-mel spectrogram (batch × n_mels × frames): all of the model after its front end."""
        x = self.norm(logmel.unsqueeze(1))
        if mask is not None:
            x = x * mask.unsqueeze(1)
        x = self.convs(x)  # B × C × mels/4 × frames/2
        x = x.flatten(1, 2).transpose(1, 2)  # B × time × features
        states, _ = self.gru(x)
        return self.head(states.mean(dim=1))
