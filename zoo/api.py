"""The Python API: the same operations as the CLI.

    import zoo
    zoo.list_models("cnn*")
    run = zoo.train("cnn", epochs=5)
    bundle = zoo.export(run.run_dir)
    report = zoo.verify(bundle.bundle_dir)
"""

from __future__ import annotations

from zoo.building import create_model, load_family
from zoo.registry import get_spec, list_models

__all__ = ["create_model", "get_spec", "list_models", "load_family"]


