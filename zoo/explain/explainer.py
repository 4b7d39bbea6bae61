"""Explain inputs of a :class:`zoo.explain.source.Subject`: attributions, their checks, the typed results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.explain.attribute import (
    IG_STEPS,
    METHODS,
    TEXT_METHODS,
    Attributions,
    attribute_images,
    attribute_space,
    attribute_tokens,
)
from zoo.explain.checks import CheckResult, completeness, randomisation, randomised_copy


@dataclass
class Explanation:
    """The attribution of one input: what the model predicted, the class (next token, output value) explained,
    the raw attributions (C×H×W for an image, one per token for text, the family's representation otherwise:
    mels × frames, one per column), and the checks run on them. ``probability`` is ``None`` for outputs that
    are values, not classes; ``output`` is the explained output itself (a logit, a predicted value)."""

    input: str
    kind: str
    method: str
    target: int
    target_name: str
    predicted: int
    predicted_name: str
    probability: float | None
    values: np.ndarray
    image: np.ndarray | None = None
    tokens: list[str] | None = None
    checks: list[CheckResult] = field(default_factory=list)
    output: float | None = None
    representation: np.ndarray | None = None
    features: list[str] | None = None
    feature_values: list[float] | None = None

    @property
    def passed(self) -> bool:
        """True when every check run on it passed (and when none ran)."""
        return all(check.passed for check in self.checks)

    def to_dict(self, with_values: bool = True) -> dict[str, Any]:
        """Plain JSON data (``values`` as nested lists, rounded to 7 significant digits)."""
        out: dict[str, Any] = {
            "input": self.input, "kind": self.kind, "method": self.method, "target": self.target,
            "target_name": self.target_name, "predicted": self.predicted, "predicted_name": self.predicted_name,
            "probability": self.probability, "checks": [c.to_dict() for c in self.checks], "passed": self.passed,
        }
        if self.output is not None:
            out["output"] = self.output
        if self.tokens is not None:
            out["tokens"] = self.tokens
        if self.features is not None:
            out["features"] = self.features
            out["feature_values"] = self.feature_values
        if with_values:
            out["shape"] = list(self.values.shape)
            out["attributions"] = np.vectorize(lambda v: float(f"{v:.7g}"))(self.values).tolist()
        return out


def explain(subject: Any, inputs: list[str], *, method: str = "ig", target: str | None = None,
            sanity: bool = False, steps: int | None = None) -> list[Explanation]:
    """Explain each input (image files or ``val:INDEX`` for classifiers, prompts for language models, the files
    a family's input space reads). ``steps``: Integrated Gradients' steps (default: the input space's
    ``ig_steps``, else ``IG_STEPS``)."""
    if method not in METHODS:
        raise ZooError(f"unknown --method {method!r}; use one of {', '.join(METHODS)}")
    if steps is None:
        steps = (subject.space.ig_steps if subject.space is not None else None) or IG_STEPS
    if steps < 2:
        raise ZooError(f"--steps must be at least 2, got {steps}")
    if subject.kind == "text":
        return [explain_prompt(subject, prompt, method, target, sanity, steps) for prompt in inputs]
    if subject.space is not None:
        names, raw = subject.samples(inputs)
        return explain_space(subject.model, subject.family, subject.data_info, subject.space, raw, names, method,
                             target, sanity, steps)
    return explain_images(subject.model, subject.family, subject.class_names, subject.baseline(),
                          subject.images(inputs), inputs, method, target, sanity, steps)


def explain_images(model: Any, family: Any, classes: list[str], baseline_image: np.ndarray, images: np.ndarray,
                   names: list[str], method: str, target: str | None, sanity: bool,
                   steps: int = IG_STEPS) -> list[Explanation]:
    """Attributions of a batch of model-input images (N×C×H×W) of a classifier, checked. ``baseline_image``
    (1×C×H×W, model units) is where Integrated Gradients starts and what occlusion paints in."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images, np.float32))
    baseline = torch.from_numpy(np.ascontiguousarray(baseline_image, np.float32))
    with torch.no_grad():
        logits = model(x).float()
        baseline_logits = model(baseline).float()[0]
    probabilities = logits.softmax(dim=1).numpy()
    predicted = logits.argmax(dim=1).tolist()
    targets = predicted if target is None else [class_index(target, classes)] * len(x)
    found = attribute_images(model, family, x, targets, method, baseline, steps)
    randomised = layers = None
    if sanity:
        clone, layers = randomised_copy(model)
        randomised = attribute_images(clone, family, x, targets, method, baseline, steps).values
    explanations = []
    for i, name in enumerate(names):
        t = targets[i]
        checks = checked(found, i, float(logits[i, t]), float(baseline_logits[t]), randomised, layers)
        explanations.append(Explanation(
            input=name, kind="image", method=method, target=t, target_name=_name(classes, t),
            predicted=predicted[i], predicted_name=_name(classes, predicted[i]), probability=float(probabilities[i, t]),
            values=found.values[i], image=images[i], checks=checks))
    return explanations


def explain_space(model: Any, family: Any, data_info: Any, space: Any, raw: np.ndarray, names: list[str],
                  method: str, target: str | None, sanity: bool, steps: int | None = None) -> list[Explanation]:
    """Attributions of a batch of raw inputs (``N × …``, as the model takes them) in the representation the
    family's :class:`zoo.explain.types.InputSpace` names, checked. Class scores: the predicted class (or
    ``target``) of each input; values: every output of each input, one explanation each. ``steps``: Integrated
    Gradients' (default: the space's ``ig_steps``, else ``IG_STEPS``)."""
    import torch

    steps = steps or space.ig_steps or IG_STEPS

    x = torch.from_numpy(np.ascontiguousarray(raw, np.float32))
    with torch.no_grad():
        represented = space.represent(x).float()
        baseline = space.represent(torch.from_numpy(np.ascontiguousarray(space.baseline, np.float32))).float()
        outputs = space.forward(represented).float().reshape(len(x), -1)
        baseline_outputs = space.forward(baseline).float().reshape(1, -1)[0]
        _check_space(outputs, model(x).float().reshape(len(x), -1))
    labels = list(space.output_names)
    if space.classes:
        probabilities = outputs.softmax(dim=1).numpy()
        predicted = outputs.argmax(dim=1).tolist()
        chosen = predicted if target is None else [class_index(target, labels)] * len(x)
        pairs = list(enumerate(chosen))
    else:
        if target is not None:
            raise ZooError(f"--target picks a class, and this model's outputs are values, not classes "
                           f"({', '.join(labels)}); leave --target out: every output is explained")
        probabilities = None
        predicted = [0] * len(x)
        pairs = [(i, t) for i in range(len(x)) for t in range(outputs.shape[1])]
    rows, targets = [i for i, _ in pairs], [t for _, t in pairs]
    found = attribute_space(space.forward, represented[rows], targets, method, baseline, space.occlusion,
                            space.kind, steps)
    randomised = layers = None
    if sanity:
        clone, layers = randomised_copy(model)
        clone_space = family.input_space(clone, data_info)
        randomised = attribute_space(clone_space.forward, represented[rows], targets, method, baseline,
                                     space.occlusion, space.kind, steps).values
    explanations = []
    for k, (i, t) in enumerate(pairs):
        checks = checked(found, k, float(outputs[i, t]), float(baseline_outputs[t]), randomised, layers)
        shown = represented[i].numpy()
        best = predicted[i] if space.classes else t
        explanations.append(Explanation(
            input=names[i], kind=space.kind, method=method, target=t, target_name=_name(labels, t), predicted=best,
            predicted_name=_name(labels, best),
            probability=None if probabilities is None else float(probabilities[i, t]), values=found.values[k],
            checks=checks, output=float(outputs[i, t]), representation=shown,
            features=None if space.elements is None else list(space.elements),
            feature_values=None if space.elements is None else
            [float(f"{v:.7g}") for v in np.ravel(space.shown(shown) if space.shown else shown)]))
    return explanations


def checked(found: Attributions, k: int, output: float, baseline_output: float, randomised: np.ndarray | None,
            layers: list[str] | None) -> list[CheckResult]:
    """The checks of the ``k``-th attribution: completeness when it is Integrated Gradients' (it has a convergence
    delta), randomisation when the same attribution of a randomised copy was computed."""
    results = []
    if found.delta is not None:
        results.append(completeness(found.values[k], output, baseline_output, float(found.delta[k])))
    if randomised is not None:
        results.append(randomisation(found.values[k], randomised[k], layers or []))
    return results


def _check_space(through: Any, direct: Any) -> None:
    """The family's representation and forward must give the model's own outputs (a bug in its hook if not)."""
    import torch

    scale = max(1.0, float(direct.abs().max()))
    if through.shape != direct.shape or not torch.allclose(through, direct, rtol=1e-3, atol=1e-3 * scale):
        gap = float((through - direct).abs().max()) if through.shape == direct.shape else float("inf")
        raise ZooError(f"the family's input space does not reproduce the model's outputs (largest difference "
                       f"{gap:.3g}); its Family.input_space must give forward(represent(x)) == model(x)")


def explain_prompt(subject: Any, prompt: str, method: str, target: str | None, sanity: bool,
                   steps: int = IG_STEPS) -> Explanation:
    """Which tokens of ``prompt`` drove the model's next token (or the ``target`` token), checked."""
    import torch

    if method not in TEXT_METHODS:
        raise ZooError(f"--method {method} does not apply to a language model; use one of {', '.join(TEXT_METHODS)}")
    tm = subject.token_model
    ids = list(tm.encode(prompt))
    if tm.context:
        ids = ids[-tm.context:]
    if not ids:
        raise ZooError("the prompt is empty; give some text to explain")
    x = torch.tensor([ids], dtype=torch.long)
    with torch.no_grad():
        logits = tm.next_token_logits(x).float()[0]
        baseline_logits = tm.next_token_logits(torch.full_like(x, int(tm.baseline_token))).float()[0]
    predicted = int(logits.argmax())
    t = predicted if target is None else token_index(tm, target, logits.shape[0])
    found = attribute_tokens(tm, x, t, method, steps)
    checks = []
    if method == "ig":
        delta = None if found.delta is None else float(found.delta[0])
        checks.append(completeness(found.values[0], float(logits[t]), float(baseline_logits[t]), delta))
    if sanity:
        clone, layers = randomised_copy(subject.model)
        clone_tm = subject.family.token_model(clone, subject.data_info)
        checks.append(randomisation(found.values[0], attribute_tokens(clone_tm, x, t, method, steps).values[0],
                                    layers))
    return Explanation(input=prompt, kind="text", method=method, target=t, target_name=tm.token_text(t),
                       predicted=predicted, predicted_name=tm.token_text(predicted),
                       probability=float(logits.softmax(dim=0)[t]), values=found.values[0],
                       tokens=[tm.token_text(i) for i in ids], checks=checks)


def class_index(target: str, classes: list[str]) -> int:
    """``--target`` as a class index: a class name, else a number below the class count."""
    if target in classes:
        return classes.index(target)
    if target.isdigit() and int(target) < len(classes):
        return int(target)
    raise ZooError(f"--target {target!r} is not a class of this model; use one of {', '.join(classes)} "
                   f"(or an index from 0 to {len(classes) - 1})")


def token_index(tm: Any, target: str, vocab: int) -> int:
    """``--target`` for a language model: text that is exactly one token, or ``#ID`` for a token id."""
    if target.startswith("#") and target[1:].isdigit() and int(target[1:]) < vocab:
        return int(target[1:])
    ids = list(tm.encode(target))
    if len(ids) != 1:
        raise ZooError(f"--target {target!r} is {len(ids)} tokens; give text that is one token, or #ID for a "
                       f"token id below {vocab}")
    return ids[0]


def _name(classes: list[str], index: int) -> str:
    return classes[index] if index < len(classes) else str(index)
