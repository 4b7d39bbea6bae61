"""The Python API: the same operations as the CLI.

    import zoo
    zoo.list_models("cnn*")
    run = zoo.train("cnn", epochs=5)
    bundle = zoo.export(run.run_dir)
    report = zoo.verify(bundle.bundle_dir)
"""

from __future__ import annotations

from typing import Any

from zoo.building import create_model
from zoo.errors import ZooError
from zoo.registry import get_family_spec, get_spec, list_models
from zoo.specs import resolve

__all__ = ["create_model", "get_spec", "list_models", "load_family"]


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
