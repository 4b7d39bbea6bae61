"""Classifying image files with a bundle, the way a deployment would: ONNX Runtime, numpy, Pillow; no torch.

The bundle's manifest carries the preprocessing the model was trained with (channels, size,
scale, mean, std); it is applied here exactly as training applied it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError


def _classifier_graph(bundle: Path) -> dict[str, Any]:
    from zoo.bundles.bundle import MANIFEST, check_files

    if not (bundle / MANIFEST).is_file():
        raise ZooError(f"{bundle} is not a zoo bundle (no {MANIFEST}); pass the folder that `zoo export` printed")
    try:
        manifest = json.loads((bundle / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ZooError(f"{bundle / MANIFEST} is corrupted ({exc}); export again") from None
    check_files(bundle, manifest)
    for graph in manifest.get("graphs", {}).values():
        meta = graph.get("metadata", {})
        is_classifier = "class_labels" in meta and "normalization" in meta and len(graph.get("inputs", [])) == 1
        if is_classifier and graph.get("variant", "fp32") == "fp32":  # int8/fp16 variants are for other targets
            return graph
    raise ZooError(f"{bundle} holds no image classifier graph; `zoo predict` needs a classifier bundle")


def preprocess(path: Path, meta: dict[str, Any]) -> np.ndarray:
    """One image file → the model's 1×C×H×W float32 input, using the bundle's recorded preprocessing."""
    from zoo.data.preprocess import resize
    from zoo.data.readers import load_image
    from zoo.data.units import from_8bit_factor

    _, channels, height, width = json.loads(meta["input_shape"])
    norm = json.loads(meta["normalization"])
    pixels = load_image(path, mode="L" if channels == 1 else "RGB").transpose(2, 0, 1)[None]
    # resized as 8-bit (as training resized 8-bit files), then 8-bit → the dataset's raw unit → × scale
    raw = resize(pixels, (height, width)).astype(np.float32) * np.float32(from_8bit_factor(norm))
    array = raw * np.float32(norm["scale"])
    mean = np.asarray(norm["mean"], dtype=np.float32)[None, :, None, None]
    std = np.asarray(norm["std"], dtype=np.float32)[None, :, None, None]
    return ((array - mean) / std).astype(np.float32)


def predict_images(bundle_dir: str | Path, images: list[str]) -> list[dict[str, Any]]:
    """Class and probabilities for each image file."""
    from zoo.runtime import CPU, session

    bundle = Path(bundle_dir)
    if not bundle.is_dir():
        raise ZooError(f"bundle {bundle} does not exist; pass the folder that `zoo export` printed")
    graph = _classifier_graph(bundle)
    meta = graph["metadata"]
    labels = json.loads(meta["class_labels"])
    sess = session(str(bundle / graph["file"]), CPU)
    batch = np.concatenate([preprocess(Path(p), meta) for p in images])
    logits = sess.run(None, {graph["inputs"][0]["name"]: batch})[0].astype(np.float64)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    return [
        {"image": str(path), "class": labels[int(p.argmax())], "index": int(p.argmax()),
         "probabilities": {label: float(v) for label, v in zip(labels, p, strict=True)}}
        for path, p in zip(images, probabilities, strict=True)
    ]
