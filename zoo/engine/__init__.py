"""The shared training engine: every family trains through :func:`train`."""

from zoo.engine.loop import RunResult, train

__all__ = ["RunResult", "train"]
