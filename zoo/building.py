"""Building what a spec names: the model (:func:`create_model`) and its family (:func:`load_family`).

Both import the family and the engine only when called, so anything may import this module.
"""

from __future__ import annotations

import inspect
from typing import Any

from zoo.errors import ZooError
from zoo.registry import get_family_spec, get_spec
from zoo.specs import resolve


def create_model(name: str, **overrides: Any) -> Any:
    """Build model ``name`` (an untrained ``torch.nn.Module``); ``overrides`` replace its model_args."""
    spec = get_spec(name)
    builder = resolve(spec.builder, owner=spec.plugin)
    args = {**spec.model_args, **overrides}
    params = inspect.signature(builder).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = sorted(set(args) - set(params)) if not takes_any else []
    if unknown:
        accepted = ", ".join(n for n in params if n != "self") or "none"
        raise ZooError(f"model {name!r} does not take {', '.join(unknown)}; it accepts: {accepted}")
    try:
        return builder(**args)
    except (ValueError, TypeError) as exc:
        raise ZooError(
            f"cannot build model {name!r} of plugin {spec.plugin!r} with {args}: {exc}; "
            "resize the data with --image-size HxW or change the model's arguments with --arg"
        ) from exc


def load_family(name: str) -> Any:
    """An instance of the family class registered under ``name`` (a v1-style family comes adapted)."""
    from zoo.family import Family
    from zoo.family_v1 import adapt_family

    spec = get_family_spec(name)
    factory = resolve(spec.factory, owner=spec.plugin)
    family = factory()
    if not isinstance(family, Family):
        raise ZooError(
            f"family {name!r} from plugin {spec.plugin!r} is a {type(family).__name__}, not a zoo.family.Family"
        )
    return adapt_family(family, name, spec.plugin)
