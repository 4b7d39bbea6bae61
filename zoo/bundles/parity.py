"""Comparing two sets of outputs element by element (numpy only, no torch)."""

from __future__ import annotations

from typing import Any

import numpy as np


def compare(reference: np.ndarray, actual: np.ndarray, *, atol: float, rtol: float) -> dict[str, Any]:
    """Error statistics of ``actual`` against ``reference``.

    An element fails only when it misses both tolerances (Polygraphy's rule):
    ``|a - r| > atol`` and ``|a - r| > rtol * |r|``.
    """
    if reference.shape != actual.shape:
        return {"passed": False, "error": f"shape {list(actual.shape)} != reference {list(reference.shape)}"}
    if reference.dtype != actual.dtype:
        return {"passed": False, "error": f"dtype {actual.dtype} != reference {reference.dtype}"}
    ref = reference.astype(np.float64)
    diff = np.abs(actual.astype(np.float64) - ref)
    scale = np.abs(ref)
    rel = diff / np.maximum(scale, np.finfo(np.float32).tiny)
    failing = (diff > atol) & (diff > rtol * scale)
    nonfinite = int((~np.isfinite(actual.astype(np.float64))).sum())
    if diff.size == 0:  # every key a non-empty comparison has: the report and its table read them all
        return {"passed": True, "elements": 0, "mismatched": 0, "nonfinite": 0, **dict.fromkeys(
            ("max_abs_diff", "mean_abs_diff", "p99_abs_diff", "max_rel_diff", "mean_rel_diff", "p99_rel_diff",
             "min_passing_atol", "min_passing_rtol"), 0.0)}
    return {
        "passed": bool(not failing.any() and nonfinite == 0),
        "elements": int(diff.size),
        "mismatched": int(failing.sum()),
        "nonfinite": nonfinite,
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "p99_abs_diff": float(np.percentile(diff, 99)),
        "max_rel_diff": float(rel.max()),
        "mean_rel_diff": float(rel.mean()),
        "p99_rel_diff": float(np.percentile(rel, 99)),
        # The smallest tolerance that would have passed, the other one held as given (as Polygraphy reports).
        "min_passing_atol": float(np.where(diff > rtol * scale, diff, 0.0).max()),
        "min_passing_rtol": float(np.where(diff > atol, rel, 0.0).max()),
    }


def top1_agreement(reference: np.ndarray, actual: np.ndarray) -> float:
    """Share of rows whose arg-max class is the same in both."""
    if len(reference) == 0:
        return 1.0
    return float((reference.argmax(axis=1) == actual.argmax(axis=1)).mean())
