"""What ``zoo predict`` does to WAV files for a keyword-spotter graph (:mod:`zoo_audio.roles`): the decoding and
resampling of training (:mod:`zoo_audio.wav`); the rows are :func:`zoo.role_handlers.class_rows`; no torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def clips(paths: list[str], role_info: dict[str, Any]) -> np.ndarray:
    """WAV files → the graph's batch × samples input (:func:`zoo_audio.wav.read_clip`)."""
    from zoo_audio.wav import read_clip

    rate, length = int(role_info["sample_rate"]), int(role_info["samples"])
    return np.stack([read_clip(Path(p), rate, length) for p in paths]).astype(np.float32)
