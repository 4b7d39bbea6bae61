"""Audio: mono waveforms of one length at one sample rate, split by seed, kept as float32 samples."""

from __future__ import annotations

import numpy as np

from zoo.data import DataInfo, DataSplits, RawAudio, split_indices
from zoo.data.kinds import AudioInfo, SampleKind, TargetInfo, TargetKind, class_targets
from zoo.errors import ZooError


def prepare_audio(name: str, raw: RawAudio, *, seed: int, val_fraction: float) -> DataSplits:
    """N×S float waveforms in [-1, 1] → split by ``seed``; float32 samples, unchanged (a family that wants
    spectrograms computes them in its model or ``prepare_data``). Integer PCM is refused rather than rescaled
    by guess: convert it to floats (int16 / 32768) in the loader."""
    waves = np.asarray(raw.waveforms)
    if waves.ndim != 2:
        raise ZooError(f"{raw.source}: waveforms must be clips × samples (mono, one length), got {waves.shape}")
    if len(waves) < 2:
        raise ZooError(f"{raw.source}: needs at least 2 clips to split into training and validation")
    if not np.issubdtype(waves.dtype, np.floating):
        raise ZooError(f"{raw.source}: waveforms are {waves.dtype}; give floats in [-1, 1] (int16 PCM / 32768)")
    if not np.isfinite(waves).all() or np.abs(waves).max() > 1.0:
        raise ZooError(f"{raw.source}: waveform samples must be finite and within [-1, 1]")
    audio = AudioInfo(sample_rate=int(raw.sample_rate), num_samples=int(waves.shape[1]))
    if raw.class_names:
        labels = class_targets(np.asarray(raw.labels), len(waves), len(raw.class_names), source=raw.source)
        target = TargetInfo(TargetKind.CLASS)
    else:
        labels, target = np.zeros(len(waves), np.int64), TargetInfo(TargetKind.NONE)
    train_idx, val_idx = split_indices(len(waves), seed=seed, val_fraction=val_fraction)
    waves = waves.astype(np.float32)
    info = DataInfo(name=name, kind=SampleKind.AUDIO, num_classes=len(raw.class_names),
                    class_names=list(raw.class_names), source_shape=[audio.num_samples], audio=audio, target=target)
    return DataSplits(info, waves[train_idx], labels[train_idx], waves[val_idx], labels[val_idx])
