"""Errors meant for people.

Anything raised as a :class:`ZooError` is shown by the CLI as one line (what is wrong and how to fix
it) with a non-zero exit and no traceback, unless ``--debug`` is given.
"""

from __future__ import annotations


class ZooError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""

    exit_code = 2


class UnknownNameError(ZooError, KeyError):
    """A model, family or dataset name that nothing registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class PluginError(ZooError):
    """A plugin failed to load, raised in a hook or registered something invalid."""


class ParityError(ZooError):
    """The exported graph does not compute what the PyTorch model computes; ``report`` says where."""

    exit_code = 1

    def __init__(self, message: str, report: dict | None = None) -> None:
        super().__init__(message)
        self.report = report
