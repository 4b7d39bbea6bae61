"""Checks between the options and the data that must pass before a run folder exists."""

from __future__ import annotations

from typing import Any

from zoo.errors import ZooError


def check_model_args(model: str, defaults: dict[str, Any], args: dict[str, Any], user_args: dict[str, Any],
                     data_info: Any) -> None:
    """``--arg`` values of the right kind, and a class count the data fits into."""
    for key, value in user_args.items():
        default = defaults.get(key)
        if _is_number(default) and not _is_number(value):
            raise ZooError(f"--arg {key}={value!r}: model {model!r} needs a number here (default {default!r})")
    classes = args.get("num_classes")
    have = getattr(data_info, "num_classes", None)
    if "num_classes" in user_args and _is_number(classes) and have and classes < have:
        raise ZooError(f"--arg num_classes={classes} is fewer than the {have} classes in the data "
                       f"({data_info.name}); drop the --arg or give at least {have}")
    for name in getattr(data_info, "class_names", []) or []:
        try:
            str(name).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ZooError(f"class name {str(name).encode('utf-8', 'surrogateescape')!r} in {data_info.name} is "
                           "not valid UTF-8; rename that class folder with UTF-8 characters only") from exc


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
