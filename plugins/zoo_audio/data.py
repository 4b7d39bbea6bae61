"""Audio data sets as :class:`zoo.data.DataSplits` of waveforms: float32 N×samples at :data:`RATE` Hz, int64 labels.

``DataInfo.kind`` is ``"audio"`` and ``DataInfo.audio`` holds the rate and clip length; nothing is normalised
(the models' front ends and batch norms take raw waveforms in [-1, 1]). The loaders return ``DataSplits``
themselves (not ``RawAudio``) because the split is by speaker, not by clip:
Validation speakers never speak in training: the split is by voice (spoken-digits) or by the speaker part of
Speech Commands file names (``<speaker>_nohash_<n>.wav``), picked by the run's seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo.data import DataInfo, DataSplits
from zoo.data.kinds import AudioInfo, SampleKind
from zoo.data.readers import DataError
from zoo.errors import ZooError
from zoo_audio.synth import CLIP, RATE

#: Folders of a ``wav:DIR`` tree that are not classes (Speech Commands' noise recordings).
NOT_CLASSES = ("_background_noise_",)


def audio_info(name: str, class_names: list[str], samples: int = CLIP, rate: int = RATE) -> DataInfo:
    """The :class:`DataInfo` of one-channel clips of ``samples`` samples at ``rate`` Hz."""
    return DataInfo(name=name, kind=SampleKind.AUDIO, num_classes=len(class_names), class_names=list(class_names),
                    source_shape=[samples], audio=AudioInfo(sample_rate=int(rate), num_samples=int(samples)))


def split_by_group(groups: np.ndarray, *, seed: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices with whole groups (speakers) on one side; ``val_fraction`` of the groups,
    at least one, picked by ``seed``, are validation."""
    if not 0.0 < val_fraction < 1.0:
        raise ZooError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    names = np.unique(groups)
    if len(names) < 2:
        raise ZooError("audio data needs at least 2 speakers to hold one out for validation")
    n_val = min(len(names) - 1, max(1, round(len(names) * val_fraction)))
    held = set(np.random.default_rng(seed).permutation(names)[:n_val].tolist())
    is_val = np.array([g in held for g in groups.tolist()])
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def splits(name: str, audio: np.ndarray, labels: np.ndarray, groups: np.ndarray, class_names: list[str], *,
           seed: int, val_fraction: float) -> DataSplits:
    """Clips and labels → speaker-disjoint training and validation splits."""
    train, val = split_by_group(groups, seed=seed, val_fraction=val_fraction)
    info = audio_info(name, class_names, samples=audio.shape[1])
    return DataSplits(info, audio[train], labels[train], audio[val], labels[val])


def load_spoken_digits(*, seed: int = 0, val_fraction: float = 0.2) -> DataSplits:
    """The embedded spoken digits (:mod:`zoo_audio.synth`), synthesised on first use and cached."""
    from zoo.cache import cached_arrays
    from zoo_audio import synth

    arrays = cached_arrays("spoken-digits", synth.cache_key(), synth.synthesise)
    audio = arrays["audio"].astype(np.float32) / np.float32(32768.0)
    return splits("spoken-digits", audio, arrays["labels"].astype(np.int64), arrays["voice"], list(synth.WORDS),
                  seed=seed, val_fraction=val_fraction)


def speaker_of(path: Path) -> str:
    """The speaker of a Speech Commands file (``<speaker>_nohash_<n>.wav``); else the file itself."""
    stem = path.stem
    return stem.split("_nohash_")[0] if "_nohash_" in stem else stem


def wav_files(root: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """The ``*.wav`` files of ``root/<class>/``, their labels and the class names (sorted folder names)."""
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; give wav:DIR with one sub-folder of .wav files per class")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and d.name not in NOT_CLASSES
                     and not d.name.startswith("."))
    files, labels = [], []
    for label, name in enumerate(classes):
        found = sorted(p for p in (root / name).iterdir() if p.suffix.lower() == ".wav" and p.is_file())
        files += found
        labels += [label] * len(found)
    if len(classes) < 2 or not files:
        raise DataError(f"{root}: found {len(classes)} class folder(s) and {len(files)} .wav file(s); need at "
                        "least 2 folders of .wav files (the Speech Commands layout: DIR/<word>/<clip>.wav)")
    return files, np.asarray(labels, np.int64), classes


def load_wav_folder(path: str, *, seed: int = 0, val_fraction: float = 0.2) -> DataSplits:
    """``wav:DIR``: every WAV file decoded, mixed to mono, resampled to :data:`RATE` and made one second long."""
    from zoo_audio.wav import read_clip

    root = Path(path).expanduser()
    files, labels, classes = wav_files(root)
    audio = np.stack([read_clip(f, RATE, CLIP) for f in files])
    groups = np.asarray([speaker_of(f) for f in files])
    return splits("wav", audio, labels, groups, classes, seed=seed, val_fraction=val_fraction)
