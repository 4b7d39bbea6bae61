"""WAV files → float32 mono waveforms at the model's sample rate: the one decoder of training, ``zoo predict``
and ``zoo deploy --target python`` (the node and web programs do the same arithmetic, tested against this).

Decoding is ``scipy.io.wavfile`` (PCM 8/16/24/32-bit integers and 32/64-bit floats, any channel count);
integers are scaled to [-1, 1) by their full scale, channels are averaged, and the rate is changed with
``scipy.signal.resample_poly`` (a polyphase Kaiser-windowed filter, :func:`resample`). A clip is then made
exactly ``samples`` long: longer ones keep their first ``samples``, shorter ones are padded with zeros at
the end (:func:`fix_length`). Each unreadable, damaged or empty file raises one :class:`DataError` naming it.
"""

from __future__ import annotations

import math
import struct
import warnings
from pathlib import Path

import numpy as np

from zoo.data.readers import DataError

#: What integer PCM is divided by: its full scale (8-bit WAV is unsigned, centred on 128).
_FULL_SCALE = {np.dtype("uint8"): 128.0, np.dtype("int16"): 32768.0, np.dtype("int32"): 2147483648.0}


def decode(path: str | Path) -> tuple[np.ndarray, int]:
    """The file's samples as float32 mono in [-1, 1] and its sample rate; one :class:`DataError` line if bad."""
    from scipy.io import wavfile

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)  # unknown chunks (LIST, fact) are fine
            rate, data = wavfile.read(path, mmap=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (ValueError, EOFError, OSError, IndexError, struct.error) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable PCM WAV file ({reason}); re-save it as 16-bit PCM WAV") from None
    return to_mono_float(data, path), int(rate)


def to_mono_float(data: np.ndarray, path: str | Path = "<samples>") -> np.ndarray:
    """Integer or float PCM (N or N×channels) → float32 mono in [-1, 1] (channels averaged)."""
    if data.size == 0:
        raise DataError(f"{path}: the WAV file holds no samples; record or export it again")
    if data.dtype == np.uint8:
        samples = (data.astype(np.float32) - 128.0) / 128.0
    elif data.dtype in _FULL_SCALE:
        samples = data.astype(np.float32) / np.float32(_FULL_SCALE[data.dtype])
    elif np.issubdtype(data.dtype, np.floating):
        samples = data.astype(np.float32)
    else:
        raise DataError(f"{path}: unsupported WAV sample type {data.dtype}; re-save it as 16-bit PCM WAV")
    if samples.ndim == 2:
        samples = samples.mean(axis=1, dtype=np.float32)
    if not np.isfinite(samples).all():
        raise DataError(f"{path}: the WAV file holds NaN or infinite samples; export it again")
    return samples


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``samples`` at ``rate`` Hz → ``target`` Hz with ``scipy.signal.resample_poly`` (float32)."""
    if rate == target:
        return samples.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    up, down = resample_ratio(rate, target)
    return resample_poly(samples.astype(np.float64), up, down).astype(np.float32)


def resample_ratio(rate: int, target: int) -> tuple[int, int]:
    """(up, down), the reduced ratio ``target / rate``."""
    common = math.gcd(int(rate), int(target))
    return int(target) // common, int(rate) // common


def fix_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Exactly ``length`` samples: the first ``length`` of a longer clip, zeros appended to a shorter one."""
    if len(samples) >= length:
        return samples[:length]
    return np.concatenate([samples, np.zeros(length - len(samples), dtype=samples.dtype)])


def read_clip(path: str | Path, rate: int, length: int) -> np.ndarray:
    """A WAV file as the model sees it: decoded, mixed to mono, resampled to ``rate``, ``length`` samples."""
    samples, file_rate = decode(path)
    return fix_length(resample(samples, file_rate, rate), length)
