"""Classifying WAV files with an audio bundle: the decoding and resampling of training (:mod:`zoo_audio.wav`),
then the bundle's waveform → logits graph under ONNX Runtime; no torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError


def audio_graph(bundle: Any) -> Any:
    """The bundle's fp32 classifier graph whose input is audio; a one-line ZooError when it has none."""
    for graph in bundle.manifest.with_role("classifier"):
        if graph.role_info.get("input_kind") == "audio" and len(graph.inputs) == 1:
            return graph
    raise ZooError(f"{bundle.path} holds no audio classifier graph; `zoo predict` with WAV files needs a bundle of "
                   "the audio family (zoo list --family audio)")


def clips(paths: list[str], role_info: dict[str, Any]) -> np.ndarray:
    """WAV files → the graph's batch × samples input (:func:`zoo_audio.wav.read_clip`)."""
    from zoo_audio.wav import read_clip

    rate, length = int(role_info["sample_rate"]), int(role_info["samples"])
    return np.stack([read_clip(Path(p), rate, length) for p in paths]).astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def predict_wavs(bundle_dir: str | Path, paths: list[str]) -> list[dict[str, Any]]:
    """Class and probabilities for each WAV file (the same dicts as image prediction, under ``"file"``)."""
    from zoo.bundles.manifest import Bundle
    from zoo.runtime import CPU, session

    bundle = Bundle.open(bundle_dir)
    graph = audio_graph(bundle)
    info = graph.role_info
    labels = list(info["class_names"])
    batch = clips(paths, info)
    sess = session(str(bundle.graph_path(graph)), CPU)
    logits = sess.run([info["output"]], {graph.input_names[0]: batch})[0].astype(np.float64)
    probabilities = softmax(logits)
    return [{"file": str(path), "class": labels[int(p.argmax())], "index": int(p.argmax()),
             "probabilities": {label: float(v) for label, v in zip(labels, p, strict=True)}}
            for path, p in zip(paths, probabilities, strict=True)]
