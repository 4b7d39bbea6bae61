"""Shared fixtures: fresh plugin state, throw-away plugin distributions, and trained runs."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import zoo
from zoo import registry


@pytest.fixture(autouse=True)
def fresh_catalog(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts from the installed plugins only, with no plugin environment variables."""
    for var in ("ZOO_LOAD_PLUGINS", "ZOO_BLOCK_PLUGINS", "ZOO_STRICT_PLUGINS", "ZOO_TRACE_PLUGINS", "ZOO_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    registry.reset()
    yield
    registry.reset()


@pytest.fixture
def make_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Install a throw-away plugin distribution for real: a module plus a dist-info with an entry point.

    ``make_plugin("name", source)`` writes ``source`` as module ``zoo_test_<name>`` and exposes it in
    the ``zoo`` entry-point group of a distribution ``zoo-test-<name>``; returns the site folder
    (put it on PYTHONPATH for subprocesses).
    """
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    monkeypatch.syspath_prepend(str(site))

    def make(name: str, source: str, *, module: str | None = None) -> Path:
        module = module or f"zoo_test_{name}"
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        dist = site / f"zoo_test_{name}-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: zoo-test-{name}\nVersion: 1.0\n")
        (dist / "entry_points.txt").write_text(f"[zoo]\n{name} = {module}\n")
        sys.modules.pop(module, None)
        importlib.invalidate_caches()
        registry.reset()
        return site

    return make


TINY_CLASSIFIER_PLUGIN = '''
from zoo.hookspecs import hookimpl
from zoo.specs import InputSpec, ModelSpec

@hookimpl
def register_models(register):
    register(ModelSpec(name="{name}", family="classifier", summary="a test model",
                       builder="zoo_cnn.models:ArticleCNN", input=InputSpec(1, 8, 8)))
'''


@pytest.fixture(scope="session", autouse=True)
def zoo_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private ZOO_CACHE_DIR for the session: the quality classifier is trained once, never in ~/.cache."""
    import os

    path = tmp_path_factory.mktemp("zoo-cache")
    old = os.environ.get("ZOO_CACHE_DIR")
    os.environ["ZOO_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("ZOO_CACHE_DIR", None)
    else:
        os.environ["ZOO_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


_trained: dict[str, Any] = {}


@pytest.fixture(scope="session")
def train_briefly(runs_dir: Path) -> Callable[[str], Any]:
    """Train a model for one short epoch (once per model per session) and return the RunResult."""

    def train(name: str) -> Any:
        if name not in _trained:
            registry.reset()
            # language models: a small trained BPE, smoke mode (tests/test_lm.py uses this run)
            lm = {"smoke": True, "hyperparameters": {"tokenizer": "bpe:400"}}  # their own default data: text
            _trained[name] = zoo.train(name, epochs=1, out=runs_dir, progress=False,
                                       **(lm if zoo.get_spec(name).family == "lm" else {}))
        return _trained[name]

    return train


_exported: dict[str, Any] = {}


@pytest.fixture(scope="session")
def export_briefly(train_briefly: Callable[[str], Any], tmp_path_factory: pytest.TempPathFactory
                   ) -> Callable[[str], Any]:
    """Export (CPU parity) the run ``train_briefly`` made for a model, once per session; the ExportResult."""
    from zoo.bundles import export_run

    out = tmp_path_factory.mktemp("exports")

    def export(name: str) -> Any:
        if name not in _exported:
            _exported[name] = export_run(train_briefly(name).run_dir, out=out, providers=["cpu"])
        return _exported[name]

    return export
