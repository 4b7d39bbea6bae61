"""Offline quality of generated images, scored by a classifier the zoo trained on the same dataset.

No pretrained Inception network can be downloaded here, so the zoo uses its own judge: a classifier
run (the model the family names in its ``classifier_model`` hyperparameter, with its defaults, trained
once per dataset and seed and cached under ``$ZOO_CACHE_DIR/classifiers/``, default ``~/.cache/zoo``),
or any classifier run a user names (``classifier_run``). A judge is any run whose family exports a graph
with class scores (``GraphSpec.class_output``): the core names no plugin's model.

- ``sample_confident``: share of samples the classifier recognises with probability ≥ 0.9;
- ``sample_class_share_<c>`` and ``sample_min_class_share``: share of samples per predicted class
  (a collapsed generator leaves classes empty);
- ``sample_fd``: the Fréchet distance between Gaussians fitted to the classifier's penultimate-layer
  features of the samples and of the real training images. This is the zoo's own measure: it is
  not comparable with published FID numbers, which use Inception features of much larger images.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.cache import cache_dir
from zoo.errors import ZooError

CONFIDENCE = 0.9


@dataclass
class QualityClassifier:
    """A trained classifier run used as a judge; its penultimate features come from its last Linear layer."""

    run_dir: Path
    model: Any
    data_info: Any
    device: Any
    _reference: dict[str, np.ndarray] = field(default_factory=dict)

    def predict(self, images: Any, source_info: Any, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities and penultimate features of model-input ``images`` (torch or numpy)
        normalised as ``source_info`` says; they are re-normalised the classifier's way first."""
        import torch

        last_linear = [m for m in self.model.modules() if isinstance(m, torch.nn.Linear)][-1]
        captured: list[torch.Tensor] = []
        hook = last_linear.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0].detach()))
        shift, scale = _renormalisation(source_info, self.data_info)
        probs, feats = [], []
        try:
            with torch.no_grad():
                images = torch.as_tensor(images)
                for start in range(0, len(images), batch_size):
                    chunk = images[start:start + batch_size].to(self.device, torch.float32)
                    logits = self.model(chunk * scale.to(self.device) + shift.to(self.device))
                    probs.append(torch.softmax(logits, dim=1).cpu().numpy())
                    feats.append(captured.pop().flatten(1).cpu().numpy())
        finally:
            hook.remove()
        return np.concatenate(probs).astype(np.float64), np.concatenate(feats).astype(np.float64)

    def reference_features(self, data: Any) -> np.ndarray:
        """Penultimate features of the real training images (computed once per distinct training set)."""
        key = hashlib.sha256(np.ascontiguousarray(data.x_train).tobytes()).hexdigest()
        if key not in self._reference:
            self._reference[key] = self.predict(data.x_train, data.info)[1]
        return self._reference[key]


def _renormalisation(source: Any, target: Any) -> tuple[Any, Any]:
    """``shift``, ``scale`` (1×C×1×1) turning ``source``-normalised input into ``target``-normalised input."""
    import torch

    def column(values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)

    if source.shape != target.shape:
        raise ZooError(f"the quality classifier takes {target.shape} images, these are {source.shape}; "
                       "name a classifier trained on this dataset with --hp classifier_run=RUN_DIR")
    # pixel = x·std_s + mean_s; classifier input = (pixel − mean_t) / std_t
    scale = column(source.std) / column(target.std)
    shift = (column(source.mean) - column(target.mean)) / column(target.std)
    return shift, scale


def _is_classifier(run: Any) -> bool:
    """Does the run's family export a graph of class scores?"""
    return any(graph.class_output for graph in run.family.graphs(run.model, run.data_info))


def load_classifier(dataset: str, seed: int, device: Any, classifier_run: str | Path = "",
                    model: str = "") -> QualityClassifier:
    """The judge: the named classifier run, else the cached run of classifier ``model`` for ``dataset``
    and ``seed`` (trained once)."""
    from zoo.runs import load_run

    if classifier_run:
        run = load_run(classifier_run)
        if not _is_classifier(run) or run.dataset != dataset:
            raise ZooError(f"classifier_run {classifier_run} is a {run.spec.family} run on "
                           f"{run.dataset!r}; name a classifier run trained on {dataset!r}")
    else:
        if not model:
            raise ZooError("no quality classifier: name a classifier model with --hp classifier_model=NAME "
                           "or a trained classifier run with --hp classifier_run=RUN_DIR")
        cached = cache_dir() / "classifiers" / f"{dataset.replace('/', '_')}-seed{seed}-{model.replace(':', '_')}"
        run = None
        if cached.is_dir():
            try:
                run = load_run(cached)
            except ZooError:  # a damaged or half-written cache is rebuilt, never trusted
                shutil.rmtree(cached, ignore_errors=True)
        if run is None:
            run = load_run(_train_classifier(model, dataset, seed, device, cached))
            if not _is_classifier(run):
                raise ZooError(f"classifier_model {model!r} is a {run.spec.family} model, not a classifier; "
                               "name a model whose graphs give class scores")
    return QualityClassifier(run.run_dir, run.model.to(device).eval(), run.data_info, device)


def _train_classifier(model: str, dataset: str, seed: int, device: Any, target: Path) -> Path:
    """Train the default classifier into ``target`` (built beside it, renamed into place when done)."""
    import sys

    import torch

    from zoo.engine import train

    staging = target.parent / f".{target.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    print(f"zoo: training the quality classifier ({model} on {dataset}, seed {seed}) once; "
          f"cached in {target}", file=sys.stderr)
    try:
        # the caller's training must not depend on whether the cache existed; hooks run under no_grad
        with preserved_random_state(), torch.enable_grad():
            result = train(model, dataset=dataset, seed=seed, out=staging, progress=False,
                           device=str(device.type if hasattr(device, "type") else device), single_process=True)
        try:
            result.run_dir.rename(target)
        except OSError:  # another process cached one first: use theirs
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@contextmanager
def preserved_random_state() -> Iterator[None]:
    """Restore python, numpy and torch (CPU and CUDA) random state afterwards."""
    import torch

    py, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if torch.cuda.is_available() else []):
        yield
    random.setstate(py)
    np.random.set_state(np_state)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` and ``b`` (rows are samples)."""
    from scipy import linalg

    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # dead ReLU units make the covariances singular; that is expected
        warnings.simplefilter("ignore")
        root = linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(root).all():  # nudge both diagonals, as FID implementations do
            eps = np.eye(len(cov_a)) * 1e-6
            root = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    distance = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root.real)
    return float(max(distance, 0.0))


def sample_quality(judge: QualityClassifier, samples: Any, data: Any, per_class: bool = True) -> dict[str, float]:
    """The quality metrics of model-input ``samples`` (normalised like ``data``), all floats;
    ``per_class=False`` leaves out the share of each class (keeps per-epoch log lines short)."""
    probs, feats = judge.predict(samples, data.info)
    predicted = probs.argmax(axis=1)
    names = data.info.class_names or [str(i) for i in range(probs.shape[1])]
    shares = np.bincount(predicted, minlength=probs.shape[1]) / len(predicted)
    return {
        "sample_confident": float((probs.max(axis=1) >= CONFIDENCE).mean()),
        "sample_min_class_share": float(shares.min()),
        "sample_fd": frechet_distance(feats, judge.reference_features(data)),
        **({f"sample_class_share_{name}": float(share) for name, share in zip(names, shares, strict=False)}
           if per_class else {}),
    }


_judges: dict[tuple[str, int, str, str, str], QualityClassifier] = {}


def judge_for(ctx: Any) -> QualityClassifier:
    """The judge for the run a :class:`zoo.family.RunContext` describes: its dataset and seed, and the
    ``classifier_run`` or ``classifier_model`` hyperparameter; loaded once per process."""
    hp = ctx.hyperparameters
    named, model = str(hp.get("classifier_run") or ""), str(hp.get("classifier_model") or "")
    key = (ctx.dataset, int(ctx.seed), named, model, str(ctx.device))
    if key not in _judges:  # building the judge draws initial weights: the run's random state must not see it
        with preserved_random_state():
            _judges[key] = load_classifier(ctx.dataset, int(ctx.seed), ctx.device, named, model)
    return _judges[key]
