"""Attributions that are checked, not just drawn.

- **Completeness** (Integrated Gradients): the attributions sum to the output at the input minus the output at
  the baseline, both computed here by forward passes, within ``COMPLETENESS_ATOL + COMPLETENESS_RTOL × |difference|``;
  Captum's own convergence delta is reported beside it.
- **Model-parameter randomisation** (Adebayo et al., 2018): the top half of the model's layers (those holding
  parameters, nearest the output) are re-initialised in a copy, and the attributions computed again. Their
  Spearman rank correlation with the trained model's must fall below ``SANITY_MAX_CORRELATION``: an attribution
  that does not change when the model forgets what it learnt explains the input, not the model.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: Completeness tolerance: |sum of attributions − (f(input) − f(baseline))| ≤ ATOL + RTOL × |f(input) − f(baseline)|.
COMPLETENESS_RTOL = 0.05
COMPLETENESS_ATOL = 1e-3
#: The randomisation check passes when the rank correlation of |attributions| drops below this.
SANITY_MAX_CORRELATION = 0.5
#: Share of the parameterised layers, counted from the output, that the randomisation check re-initialises.
SANITY_TOP_SHARE = 0.5


@dataclass
class CheckResult:
    """One check of one attribution: its name, whether it passed, the measured value against its threshold."""

    name: str
    passed: bool
    value: float
    threshold: float
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        return asdict(self)


def completeness(attributions: np.ndarray, output: float, baseline_output: float,
                 captum_delta: float | None = None) -> CheckResult:
    """Integrated Gradients' completeness: ``sum(attributions)`` against ``output − baseline_output``."""
    total = float(np.sum(attributions, dtype=np.float64))
    difference = float(output) - float(baseline_output)
    error = abs(total - difference)
    allowed = COMPLETENESS_ATOL + COMPLETENESS_RTOL * abs(difference)
    delta = "" if captum_delta is None else f"; Captum's convergence delta {captum_delta:+.2e}"
    return CheckResult("completeness", error <= allowed, error, allowed,
                       f"sum of attributions {total:+.4f}, f(input) − f(baseline) {difference:+.4f}, "
                       f"error {error:.2e} (allowed {allowed:.2e}){delta}")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two arrays, flattened (ties get their average rank); 0 when one is constant."""
    from scipy.stats import rankdata

    ra, rb = rankdata(np.ravel(a)), rankdata(np.ravel(b))
    if np.ptp(ra) == 0 or np.ptp(rb) == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def top_layers(model: Any, share: float = SANITY_TOP_SHARE) -> list[str]:
    """Names of the modules holding parameters of their own, nearest the output first: the top ``share`` of them
    (at least one). "Nearest the output" is the last registered, the order in which models declare their layers."""
    names = [name for name, module in model.named_modules() if name and any(True for _ in module.parameters(False))]
    count = max(1, int(np.ceil(len(names) * share)))
    return names[::-1][:count]


def randomised_copy(model: Any, seed: int = 0, share: float = SANITY_TOP_SHARE) -> tuple[Any, list[str]]:
    """A copy of ``model`` whose top layers (:func:`top_layers`) are re-initialised: ``reset_parameters()`` where
    the layer has it, else normal(0, 0.02) weights; drawn from ``seed`` without touching the global RNG."""
    import torch

    clone = copy.deepcopy(model)
    names = top_layers(clone, share)
    modules = dict(clone.named_modules())
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for name in names:
            module = modules[name]
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
            else:
                for parameter in module.parameters(False):
                    parameter.normal_(0.0, 0.02)
    return clone.eval(), names


def randomisation(trained: np.ndarray, randomised: np.ndarray, layers: list[str]) -> CheckResult:
    """The randomisation check of one attribution: the rank correlation of the magnitudes of ``trained`` (the
    trained model's) and ``randomised`` (the same input and target on :func:`randomised_copy`)."""
    if np.ptp(np.abs(trained)) == 0:  # a constant map (all zeros: a dead model) ranks nothing
        return CheckResult("randomisation", False, float("nan"), SANITY_MAX_CORRELATION,
                           "the trained model's attribution is constant: there is nothing to rank, so the check "
                           "cannot show that it depends on the model")
    rho = spearman(np.abs(trained), np.abs(randomised))
    shown = ", ".join(layers[:4]) + (f" and {len(layers) - 4} more" if len(layers) > 4 else "")
    return CheckResult("randomisation", rho < SANITY_MAX_CORRELATION, rho, SANITY_MAX_CORRELATION,
                       f"Spearman rank correlation {rho:+.3f} with {len(layers)} top layers re-initialised ({shown}); "
                       f"must be below {SANITY_MAX_CORRELATION}")
