"""Building a registered model from its spec: no family, no engine, so anything may import it."""

from __future__ import annotations

import inspect
from typing import Any

from zoo.errors import ZooError
from zoo.registry import get_spec
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
            f"cannot build model {name!r} with {args}: {exc}; "
            "resize the data with --image-size HxW or change the model's arguments with --arg"
        ) from exc
