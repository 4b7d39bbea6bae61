"""The shared training engine: every family trains through :func:`train`."""

from zoo.engine.entry import RunResult, train
from zoo.engine.signals import Interrupted

__all__ = ["Interrupted", "RunResult", "train"]
