"""The shared training engine: every family trains through :func:`train`.

The names below load on first use, so importing a submodule (``zoo.engine.options`` for the CLI's flags)
stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Interrupted", "RunResult", "train"]


def __getattr__(name: str) -> Any:
    if name in ("RunResult", "train"):
        from zoo.engine import entry

        return getattr(entry, name)
    if name == "Interrupted":
        from zoo.engine.loop import Interrupted

        return Interrupted
    raise AttributeError(f"module 'zoo.engine' has no attribute {name!r}")
