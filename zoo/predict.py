"""`zoo predict`: a bundle run on the user's input files the way a deployment would: ONNX Runtime, numpy and
what the role reads its inputs with; no torch.

The graph is picked by role (:func:`zoo.role_handlers.graph_for`); its role's handlers turn the files into
feeds and the outputs into :class:`zoo.role_handlers.PredictRow` s (an image classifier: class and
probabilities, with the preprocessing the bundle recorded, applied exactly as training applied it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.role_handlers import PredictRequest, PredictRow


def predict_files(bundle_dir: str | Path, inputs: list[str], *, top: int = 3) -> list[PredictRow]:
    """Run the bundle's predictable graph on each input file; the result rows, in input order."""
    from zoo.bundles.manifest import Bundle
    from zoo.role_handlers import graph_for

    if not inputs:
        raise ZooError("give at least one input file to predict")
    bundle = Bundle.open(bundle_dir)
    graph, handlers = graph_for(bundle, "predict")
    return list(handlers.predict(PredictRequest(bundle, graph, tuple(Path(p) for p in inputs), top)))


def predict_images(bundle_dir: str | Path, images: list[str]) -> list[dict[str, Any]]:
    """Class and probabilities for each image file (the rows of :func:`predict_files` as dictionaries)."""
    return [dict(row.values) for row in predict_files(bundle_dir, images)]


def __getattr__(name: str) -> Any:
    if name == "preprocess":  # moved to the classifier role's handlers; kept importable from here
        from zoo.builtin_roles.classifier import preprocess

        return preprocess
    raise AttributeError(name)
