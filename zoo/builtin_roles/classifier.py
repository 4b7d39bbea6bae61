"""The ``classifier`` role: image files → class and probabilities (``zoo predict``), a graph that takes 8-bit
images of any size (``zoo deploy``), and a variant gate on top-1 agreement and accuracy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.role_handlers import (
    DeployPlan,
    DeployRequest,
    GateEvidence,
    GateResult,
    GraphEntry,
    PredictRequest,
    PredictRow,
    RoleHandlers,
    class_rows,
)


class ClassifierHandlers(RoleHandlers):
    """Image classifiers (``role_info["input_kind"] == "image"``, one input)."""

    def accepts(self, graph: GraphEntry, tool: str) -> bool:
        image = graph.role_info.get("input_kind", "image") == "image" and len(graph.inputs) == 1
        return image and (tool != "deploy" or "normalization" in graph.metadata)

    def predict(self, request: PredictRequest) -> list[PredictRow]:
        graph, info = request.graph, request.graph.role_info
        labels = list(info["class_names"])
        batch = np.concatenate([preprocess(path, graph.metadata) for path in request.inputs])
        logits = request.session().run([info["output"]], {graph.input_names[0]: batch})[0].astype(np.float64)
        if logits.ndim != 2 or logits.shape[1] != len(labels):
            raise ZooError(f"{request.bundle.path}: classifier output {info['output']!r} has shape "
                           f"{list(logits.shape)}, not batch × {len(labels)} classes; export the bundle again")
        return class_rows(request.inputs, logits, labels, request.top, key="image")

    def deploy(self, request: DeployRequest) -> DeployPlan:
        from zoo.deploy.images import image_plan

        return image_plan(request, "classifier")

    def gate(self, evidence: GateEvidence) -> GateResult:
        """Top-1 agreement with the fp32 graph, and at most ``zoo.bundles.variants.MAX_ACCURACY_DROP`` of accuracy
        lost (real samples with labels), a larger drop counting only beyond chance
        (:func:`zoo.bundles.graph_checks.accuracy_gate`); without labelled samples, the element tolerance alone
        decides."""
        from zoo.bundles.graph_checks import accuracy_gate
        from zoo.bundles.variants import MAX_ACCURACY_DROP

        output = evidence.role_info.get("output")
        rule = (f"accuracy drop ≤ {100 * MAX_ACCURACY_DROP:g} pt on labelled real samples, or within chance "
                "(net samples lost ≤ 2·√(lost + gained))")
        cases = [c for c in evidence.real_cases() if output in c.reference]
        for case in sorted(cases, key=lambda c: c.labels is None):  # labelled samples first
            ref, got = case.reference[output].argmax(axis=1), case.outputs[output].argmax(axis=1)
            metrics: dict[str, float] = {"top1_agreement": float((ref == got).mean())}
            if case.labels is None:
                return GateResult(True, rule, metrics)
            gate = accuracy_gate(case.reference[output], case.outputs[output], case.labels, MAX_ACCURACY_DROP)
            metrics.update(gate,
                           max_accuracy_drop=MAX_ACCURACY_DROP)
            return GateResult(bool(gate["accuracy_passed"]), rule, metrics)
        return GateResult(True, rule)


def preprocess(path: Path, meta: dict[str, Any]) -> np.ndarray:
    """One image file → the model's 1×C×H×W float32 input, using the bundle's recorded preprocessing (the squash,
    or the evaluation transform when the graph's ``preprocessing`` metadata holds a ``crop``)."""
    from zoo.data.crop import graph_crop, resize_crop
    from zoo.data.preprocess import resize
    from zoo.data.readers import load_image
    from zoo.data.units import from_8bit_factor

    _, channels, height, width = json.loads(meta["input_shape"])
    norm = json.loads(meta["normalization"])
    crop = graph_crop(meta)
    pixels = load_image(path, mode="L" if channels == 1 else "RGB").transpose(2, 0, 1)[None]
    # resized as 8-bit (as training resized 8-bit files), then 8-bit → the dataset's raw unit → × scale
    sized = resize(pixels, (height, width)) if crop is None else resize_crop(pixels, (height, width), crop)
    raw = sized.astype(np.float32) * np.float32(from_8bit_factor(norm))
    array = raw * np.float32(norm["scale"])
    mean = np.asarray(norm["mean"], dtype=np.float32)[None, :, None, None]
    std = np.asarray(norm["std"], dtype=np.float32)[None, :, None, None]
    return ((array - mean) / std).astype(np.float32)
