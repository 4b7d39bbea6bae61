"""Classifying image files with a bundle, the way a deployment would: ONNX Runtime, numpy, Pillow; no torch.

The bundle's manifest carries the preprocessing the model was trained with (channels, size,
scale, mean, std); it is applied here exactly as training applied it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from zoo.bundles.manifest import Bundle, GraphEntry
from zoo.errors import ZooError
from zoo.roles import GraphRole


def classifier_graph(bundle: Bundle) -> GraphEntry:
    """The bundle's fp32 image classifier graph (role ``classifier``); a one-line ZooError when it has none."""
    for graph in bundle.manifest.with_role(GraphRole.CLASSIFIER):
        if graph.role_info.get("input_kind", "image") == "image" and len(graph.inputs) == 1:
            return graph
    raise ZooError(f"{bundle.path} holds no image classifier graph (family {bundle.manifest.family!r}; graph roles: "
                   f"{', '.join(bundle.manifest.roles())}); `zoo predict` needs a bundle with a classifier graph")


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
    from zoo.ort import CPU, session

    bundle = Bundle.open(bundle_dir)
    graph = classifier_graph(bundle)
    info = graph.role_info
    labels = list(info["class_names"])
    sess = session(str(bundle.graph_path(graph)), CPU)
    batch = np.concatenate([preprocess(Path(p), graph.metadata) for p in images])
    logits = sess.run([info["output"]], {graph.input_names[0]: batch})[0].astype(np.float64)
    if logits.ndim != 2 or logits.shape[1] != len(labels):
        raise ZooError(f"{bundle.path}: classifier output {info['output']!r} has shape {list(logits.shape)}, not "
                       f"batch × {len(labels)} classes; export the bundle again")
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    return [
        {"image": str(path), "class": labels[int(p.argmax())], "index": int(p.argmax()),
         "probabilities": {label: float(v) for label, v in zip(labels, p, strict=True)}}
        for path, p in zip(images, probabilities, strict=True)
    ]
