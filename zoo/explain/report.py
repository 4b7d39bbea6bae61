"""Attribution sections for ``zoo report``, for families to add to their ``report_sections`` (built-ins do).

Each returns a :class:`zoo.reports.sections.ReportSection`; when Captum is missing or the attribution cannot be
made, the section says why instead of failing the report.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.reports.sections import ReportImage, ReportSection, ReportTable

TITLE = "Attributions (Integrated Gradients)"


def image_attribution_section(model: Any, family: Any, data: Any, probabilities: np.ndarray, worst: int = 4,
                              correct: int = 4) -> ReportSection:
    """IG attributions of the ``worst`` validation images with the lowest true-class probability and the
    ``correct`` most confidently right ones, each as input | map | overlay, with the completeness check."""
    from zoo.explain.explainer import explain_images
    from zoo.explain.render import overlay_png
    from zoo.explain.source import black_image

    info = data.info
    truth = np.asarray(data.y_val)
    chosen = worst_and_correct(truth, probabilities, worst, correct)
    names = [f"val:{i}" for i in chosen]
    try:
        results = explain_images(model, family, list(info.class_names), black_image(info.mean, info.std, info.shape),
                                 np.asarray(data.x_val[chosen], np.float32), names, "ig", None, sanity=False)
    except ZooError as exc:
        return ReportSection(TITLE, text=f"Not available: {exc}")
    text = (f"Which pixels drove the predicted class, for the {worst} worst-classified and {len(chosen) - worst} "
            "confidently correct validation images: the input, |attribution| summed over channels, and the two "
            "overlaid. Baseline: a black image. Completeness: the attributions sum to the logit's difference from "
            "the baseline within the tolerance shown.")
    return _checked_section(text, results, [info.class_names[int(truth[i])] for i in chosen],
                            lambda item: overlay_png(item.image, item.values, info.mean, info.std))


def _checked_section(text: str, results: list[Any], labels: list[str], picture: Any) -> ReportSection:
    """The attribution section: a row per explanation (input, true label, prediction, completeness check) and
    its picture (``picture(explanation)`` → PNG bytes, or no pictures when ``None``)."""
    rows, images = [], []
    for item, label in zip(results, labels, strict=True):
        check = item.checks[0]
        rows.append([item.input, label, item.predicted_name, item.probability, check.value, check.threshold,
                     "passed" if check.passed else "FAILED"])
        if picture is not None:
            images.append(ReportImage(picture(item), f"{item.input}: true {label}, predicted {item.predicted_name}"))
    return ReportSection(
        TITLE, text=text,
        tables=[ReportTable(["input", "true", "predicted", "p(predicted)", "completeness error", "allowed", "check"],
                            rows)],
        images=images)


def worst_and_correct(truth: np.ndarray, probabilities: np.ndarray, worst: int, correct: int) -> list[int]:
    """Validation indices: the ``worst`` with the lowest true-class probability, then the ``correct`` most
    confidently right ones not already chosen."""
    p_true = probabilities[np.arange(len(truth)), truth]
    right = np.flatnonzero(probabilities.argmax(axis=1) == truth)
    chosen = [int(i) for i in np.argsort(p_true, kind="stable")[:worst]]
    return chosen + [int(i) for i in right[np.argsort(-p_true[right], kind="stable")][:correct] if i not in chosen]


def space_attribution_section(model: Any, family: Any, data: Any, probabilities: np.ndarray, worst: int = 4,
                              correct: int = 4) -> ReportSection:
    """For a classifier whose family describes its input (``Family.input_space``: audio): IG attributions of the
    ``worst`` worst-classified and ``correct`` most confidently right validation samples, drawn by the family,
    with the completeness check."""
    from zoo.explain.explainer import explain_space

    space = family.input_space(model, data.info)
    if space is None or not space.classes:
        return ReportSection(TITLE, text="Not available: the family describes no class-score input space")
    truth = np.asarray(data.y_val)
    chosen = worst_and_correct(truth, probabilities, worst, correct)
    try:
        results = explain_space(model, family, data.info, space, np.asarray(data.x_val[chosen], np.float32),
                                [f"val:{i}" for i in chosen], "ig", None, sanity=False)
    except ZooError as exc:
        return ReportSection(TITLE, text=f"Not available: {exc}")
    text = (f"What drove the predicted class ({space.kind}), for the {min(worst, len(chosen))} worst-classified and "
            f"{max(0, len(chosen) - worst)} confidently correct validation samples, in the representation the "
            "family names. Completeness: the attributions sum to the logit's difference from the baseline within "
            "the tolerance shown.")
    names = list(space.output_names)
    return _checked_section(text, results, [names[int(truth[i])] for i in chosen], space.picture)


def token_attribution_section(model: Any, family: Any, data_info: Any, prompt: str) -> ReportSection:
    """IG attributions of the next token the model predicts after ``prompt``, token by token."""
    from zoo.explain.explainer import explain_prompt
    from zoo.explain.source import Subject

    token_model = family.token_model(model, data_info)
    if token_model is None:
        return ReportSection(TITLE, text="Not available: the family gives no token model for this run")
    run = _RunView(family, data_info)
    try:
        item = explain_prompt(Subject("report", run, model, {}, token_model), prompt, "ig", None, sanity=False)
    except ZooError as exc:
        return ReportSection(TITLE, text=f"Not available: {exc}")
    check = item.checks[0]
    top = float(np.abs(item.values).max()) or 1.0
    rows = [[i, repr(token), float(value), float(value) / top] for i, (token, value)
            in enumerate(zip(item.tokens or [], item.values, strict=True))]
    return ReportSection(
        TITLE, text=(f"Which prompt tokens drove the next token {item.predicted_name!r} (p = {item.probability:.3f}) "
                     f"after a validation prompt of {len(rows)} tokens; baseline: every token a space. "
                     f"Completeness: {check.detail}."),
        tables=[ReportTable(["position", "token", "attribution", "share of largest"], rows)])


class _RunView:
    """What :class:`zoo.explain.source.Subject` reads of a run, for a model and data already loaded."""

    def __init__(self, family: Any, data_info: Any) -> None:
        self.family, self.data_info = family, data_info
