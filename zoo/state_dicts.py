"""Comparing a state dict read from a file with the one a model expects, for one clear error line."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any


def mismatch(expected: Mapping[str, Any], given: Mapping[str, Any], *, optional: Collection[str] = ()) -> str | None:
    """What keeps ``given`` from loading into a model whose state dict is ``expected``, or None when it fits.

    Names the count and the first few keys of each kind: missing (unless ``optional``), unexpected, mis-shaped.
    """
    missing = sorted(set(expected) - set(given) - set(optional))
    unexpected = sorted(set(given) - set(expected))
    wrong = sorted(k for k in set(given) & set(expected) if tuple(given[k].shape) != tuple(expected[k].shape))
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing ({', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])})")
    if wrong:
        parts.append(f"{len(wrong)} mis-shaped (" + ", ".join(
            f"{k} {tuple(given[k].shape)} vs {tuple(expected[k].shape)}" for k in wrong[:3]) + ")")
    return "; ".join(parts) or None
