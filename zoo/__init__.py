"""zoo: a plugin-based PyTorch model zoo.

The public API (importing ``zoo`` is cheap: torch loads only when a model is built or trained)::

    zoo.list_models(pattern="*", family=None)   zoo.get_spec(name)     zoo.create_model(name, **args)
    zoo.train(name, ...)                        zoo.export(run_dir)    zoo.verify(bundle_dir)
"""

from __future__ import annotations

from typing import Any

from zoo.api import create_model, get_spec, list_models, load_family
from zoo.errors import ZooError
from zoo.registry import list_datasets, list_families, list_plugins
from zoo.version import __version__


def train(model: str | None = None, **kwargs: Any) -> Any:
    """Train a model through the shared engine (or ``resume=RUN_DIR``); see :func:`zoo.engine.train`."""
    from zoo.engine import train as _train

    return _train(model, **kwargs)


def export(run_dir: Any, **kwargs: Any) -> Any:
    """Export a run to an ONNX bundle and verify it; see :func:`zoo.bundles.export_run`."""
    from zoo.bundles import export_run

    return export_run(run_dir, **kwargs)


def load_run(run_dir: Any) -> Any:
    """A finished run rebuilt from its folder: ``config``, ``spec``, ``family``, ``data_info`` and the trained
    ``model`` (CPU); see :class:`zoo.runs.Run`."""
    from zoo.runs import load_run as _load_run

    return _load_run(run_dir)


def verify(bundle_dir: Any, **kwargs: Any) -> Any:
    """Check a bundle's graphs against PyTorch under ONNX Runtime; see :func:`zoo.bundles.verify_bundle`."""
    from zoo.bundles import verify_bundle

    return verify_bundle(bundle_dir, **kwargs)


__all__ = [
    "ZooError",
    "__version__",
    "create_model",
    "export",
    "get_spec",
    "list_datasets",
    "list_families",
    "list_models",
    "list_plugins",
    "load_family",
    "load_run",
    "train",
    "verify",
]
