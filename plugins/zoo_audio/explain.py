"""``zoo explain`` for keyword spotters: attributions on a time-frequency map (the family's
:meth:`~zoo.family.Family.input_space`; docs/explain.md).

- Models with a log-mel front end (kws-res, crnn) are attributed on the log-mel spectrogram they compute
  (``model.logmel``'s output; the rest of the model is ``model.classify``): one value per mel band and frame.
- A raw-waveform model (m5) is attributed on the short-time Fourier transform of its input: the waveform is
  ``istft(stft(x))`` exactly, so the model reads ``model(istft(S))`` and every complex coefficient (its real and
  imaginary parts) gets an attribution; the map is their sum per frequency bin and frame.

The baseline is silence (its log-mel is ``log(eps)`` everywhere, its STFT zero). WAV files are read exactly as
``zoo predict`` reads them (:func:`zoo_audio.predict.clips`). The picture is the spectrogram with the attribution
heat map over it, time in seconds across and frequency in Hz up.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.data import DataInfo
from zoo.family import InputSpace

#: The STFT a raw-waveform model is attributed on: 30 ms windows every 10 ms at 16 kHz (scaled to other rates).
STFT_WINDOW_S, STFT_HOP_S = 0.030, 0.010
#: Plot area of each panel of the picture, in pixels.
PLOT_WIDTH, PLOT_HEIGHT = 408, 200
LEFT, TOP, GAP, BOTTOM = 52, 18, 18, 30


@dataclass(frozen=True)
class Axes:
    """What the rows and columns of a time-frequency map are: each row's frequency in Hz (lowest first), the
    seconds from one column to the next, and the name of the frequency axis."""

    hz: np.ndarray
    seconds_per_frame: float
    name: str


class Stft:
    """A waveform batch ↔ its STFT as a real tensor (batch × 2 × bins × frames: real parts, imaginary parts)."""

    def __init__(self, sample_rate: int, samples: int) -> None:
        self.n_fft = round(STFT_WINDOW_S * sample_rate)
        self.hop = round(STFT_HOP_S * sample_rate)
        self.samples = samples
        self.window = torch.hann_window(self.n_fft)
        self.axes = Axes(np.arange(self.n_fft // 2 + 1) * sample_rate / self.n_fft, self.hop / sample_rate,
                         "frequency (Hz)")

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        spectrum = torch.stft(waveform, self.n_fft, self.hop, window=self.window, center=True, return_complex=True)
        return torch.view_as_real(spectrum).permute(0, 3, 1, 2).contiguous()

    def inverse(self, parts: torch.Tensor) -> torch.Tensor:
        spectrum = torch.view_as_complex(parts.permute(0, 2, 3, 1).contiguous())
        return torch.istft(spectrum, self.n_fft, self.hop, window=self.window, center=True, length=self.samples)

    def power_db(self, parts: np.ndarray) -> np.ndarray:
        """The log power (dB) of one STFT (2 × bins × frames): the picture's background."""
        return 10 * np.log10((parts**2).sum(axis=0) + 1e-10)


def input_space(model: torch.nn.Module, data: DataInfo) -> InputSpace:
    """The keyword spotter's input space: WAV files read as ``zoo predict`` does, the log-mel (or STFT) map."""
    from zoo_audio.predict import clips

    info = {"sample_rate": int(model.sample_rate), "samples": int(model.samples)}

    def read(path: str) -> tuple[list[str], np.ndarray]:
        return [str(path)], clips([str(Path(path))], info)

    silence = np.zeros((1, info["samples"]), np.float32)
    names = list(data.class_names)
    logmel = getattr(model, "logmel", None)
    if logmel is not None:
        cfg = logmel.cfg
        axes = Axes(mel_centres(cfg), cfg.hop_length / cfg.sample_rate, "mel band (Hz)")
        frames = cfg.frames(info["samples"])
        return InputSpace(kind="audio", read=read, represent=logmel, forward=model.classify, baseline=silence,
                          output_names=names, occlusion=(max(2, cfg.n_mels // 4), max(2, frames // 5)),
                          picture=lambda item: time_frequency_png(item, item.representation, axes))
    stft = Stft(info["sample_rate"], info["samples"])
    frames = 1 + info["samples"] // stft.hop
    return InputSpace(kind="audio", read=read, represent=stft.forward, forward=lambda parts: model(stft.inverse(parts)),
                      baseline=silence, output_names=names,
                      occlusion=(2, max(2, (stft.n_fft // 2 + 1) // 4), max(2, frames // 5)),
                      picture=lambda item: time_frequency_png(item, stft.power_db(item.representation), stft.axes))


def mel_centres(cfg: Any) -> np.ndarray:
    """The centre frequency (Hz) of each mel band of a :class:`zoo_audio.frontend.FrontEnd`, lowest first."""
    from zoo_audio.frontend import hz_to_mel, mel_to_hz

    return mel_to_hz(np.linspace(hz_to_mel(cfg.fmin), hz_to_mel(cfg.fmax), cfg.n_mels + 2))[1:-1]


def time_frequency_png(item: Any, background: np.ndarray, axes: Axes) -> bytes:
    """Two panels, time across and frequency up: the spectrogram (``background``, bins × frames), and the
    magnitude of the attributions (summed over real and imaginary parts) as a heat map over it."""
    from PIL import Image, ImageDraw

    from zoo.explain.render import colour_ramp, heat

    level = heat(np.asarray(item.values))[::-1]
    grey = np.asarray(background, np.float64)
    grey = ((grey - grey.min()) / max(float(np.ptp(grey)), 1e-9))[::-1]
    base = np.repeat(grey[..., None], 3, axis=-1)
    colour = colour_ramp(level)
    blended = np.clip(0.45 * base + 0.55 * colour * level[..., None] + 0.55 * base * (1 - level[..., None]), 0, 1)
    height = TOP + 2 * PLOT_HEIGHT + GAP + BOTTOM + 12
    picture = Image.new("RGB", (LEFT + PLOT_WIDTH + 8, height), "white")
    draw = ImageDraw.Draw(picture)
    value = (f"p={item.probability:.2f}" if item.probability is not None else f"{item.output:.4g}")
    draw.text((2, 2), f"{item.input}: {item.method} of {item.target_name} ({value})", fill="black")
    for row, (panel, title) in enumerate(((base, "spectrogram"), (blended, "attribution over the spectrogram"))):
        top = TOP + 12 + row * (PLOT_HEIGHT + GAP)
        image = Image.fromarray((panel * 255).round().astype(np.uint8)).resize((PLOT_WIDTH, PLOT_HEIGHT),
                                                                               Image.NEAREST)
        picture.paste(image, (LEFT, top))
        draw.text((LEFT, top - 12), f"{title}; up: {axes.name}", fill="black")
        for band in np.linspace(0, len(axes.hz) - 1, 5).round().astype(int):
            y = top + PLOT_HEIGHT - (band + 0.5) / len(axes.hz) * PLOT_HEIGHT
            draw.line([(LEFT - 4, y), (LEFT, y)], fill="black")
            draw.text((2, y - 5), f"{axes.hz[band]:.0f}", fill="black")
    seconds = grey.shape[1] * axes.seconds_per_frame
    bottom = TOP + 12 + 2 * PLOT_HEIGHT + GAP
    for t in np.arange(0.0, seconds + 1e-9, 0.25):
        x = LEFT + t / seconds * PLOT_WIDTH
        draw.line([(x, bottom), (x, bottom + 4)], fill="black")
        draw.text((x - 8, bottom + 6), f"{t:g}", fill="black")
    draw.text((LEFT + PLOT_WIDTH // 2 - 30, bottom + 18), "time (s)", fill="black")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
