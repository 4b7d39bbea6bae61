"""What ``zoo predict`` does to WAV files for a keyword-spotter graph (:mod:`zoo_audio.roles`): the decoding and
resampling of training (:mod:`zoo_audio.wav`), then a softmax of the graph's logits; no torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def clips(paths: list[str], role_info: dict[str, Any]) -> np.ndarray:
    """WAV files → the graph's batch × samples input (:func:`zoo_audio.wav.read_clip`)."""
    from zoo_audio.wav import read_clip

    rate, length = int(role_info["sample_rate"]), int(role_info["samples"])
    return np.stack([read_clip(Path(p), rate, length) for p in paths]).astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
