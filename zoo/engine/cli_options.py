"""``zoo train``'s flags, made from the fields of :class:`zoo.engine.options.TrainOptions` (no torch here)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from zoo.engine.options import TrainOptions, option_type


def train_flags() -> list[Any]:
    """One click option per :class:`TrainOptions` field offered on the command line, in declaration order.

    Every default is None: a flag given counts, the rest comes from ``--config``, the run being resumed,
    or the model's defaults. ``hp`` and ``args`` take ``KEY=VALUE`` and repeat.
    """
    import click

    flags = []
    for f in fields(TrainOptions):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        name = meta.get("flag") or "--" + f.name.replace("_", "-")
        param = meta.get("param") or f.name
        kind = option_type(f.name)
        extra: dict[str, Any] = {"help": meta.get("help") or None, "metavar": meta.get("metavar")}
        if kind is bool:
            extra.update(is_flag=True, default=None)
        elif kind is dict:
            extra.update(multiple=True)
        elif meta.get("choices"):
            extra.update(type=click.Choice(list(meta["choices"])))
        elif meta.get("path"):
            extra.update(type=click.Path())
        elif kind is not str:
            extra.update(type=kind)
        flags.append(click.option(name, param, **{k: v for k, v in extra.items() if v is not None or k == "default"}))
    return flags
