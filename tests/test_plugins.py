"""Plugin loading through real entry points: isolation, strictness, selection, clashes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import zoo
from zoo.errors import PluginError
from zoo.registry import list_plugins

from .conftest import TINY_CLASSIFIER_PLUGIN

#: What the plugzoo distribution itself registers (classifier, GAN and VAE families).
BUILTIN_MODELS = ["beta-vae", "cgan", "cnn", "gan", "resnet-small", "vae"]


def _record(name: str):
    return next(r for r in list_plugins() if r.name == name)


def test_builtins_load_through_the_entry_point_group() -> None:
    records = {r.name: r for r in list_plugins()}
    assert records["cnn"].builtin and records["cnn"].status == "loaded"
    assert records["cnn"].distribution == "plugzoo"
    assert records["cnn"].registered["models"] == ["cnn", "resnet-small"]
    assert records["digits"].registered["datasets"] == ["digits"]


def test_third_party_plugin_adds_a_model(make_plugin: Callable[..., Path]) -> None:
    make_plugin("extra", TINY_CLASSIFIER_PLUGIN.format(name="tiny"))
    spec = zoo.get_spec("tiny")
    assert spec.plugin == "extra" and spec.family == "classifier"
    assert not _record("extra").builtin


def test_plugin_that_fails_to_import_is_reported_and_the_rest_load(
    make_plugin: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    make_plugin("broken", "raise ImportError('needs a missing package')\n")
    assert [s.name for s in zoo.list_models()] == BUILTIN_MODELS
    err = capsys.readouterr().err
    assert "plugin 'broken': failed to import (ImportError: needs a missing package)" in err
    assert len([line for line in err.splitlines() if "broken" in line]) == 1
    assert _record("broken").status == "failed"


def test_plugin_raising_in_a_hook_is_isolated(
    make_plugin: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    make_plugin("raiser", """
        from zoo.hookspecs import hookimpl
        @hookimpl
        def register_models(register):
            raise RuntimeError("boom")
    """)
    assert zoo.get_spec("cnn")
    assert "plugin 'raiser': raised in register_models (RuntimeError: boom)" in capsys.readouterr().err


def test_invalid_spec_is_rejected_with_the_plugin_named(make_plugin: Callable[..., Path],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    make_plugin("sloppy", """
        from zoo.hookspecs import hookimpl
        from zoo.specs import InputSpec, ModelSpec
        @hookimpl
        def register_models(register):
            register(ModelSpec("Has Spaces", "classifier", "x", "m:f", InputSpec(1, 8, 8)))
            register("not a spec")
    """)
    assert "Has Spaces" not in [s.name for s in zoo.list_models()]
    err = capsys.readouterr().err
    assert "plugin 'sloppy': registered an invalid spec: model name 'Has Spaces' is invalid" in err
    assert "expected a ModelSpec" in err


def test_model_of_unknown_family_is_dropped(
    make_plugin: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    make_plugin("orphan", TINY_CLASSIFIER_PLUGIN.format(name="lost").replace('"classifier"', '"no-family"'))
    assert "lost" not in [s.name for s in zoo.list_models()]
    assert "family 'no-family', which no loaded plugin registers" in capsys.readouterr().err


def test_duplicate_model_name_names_both_plugins(make_plugin: Callable[..., Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    make_plugin("copycat", TINY_CLASSIFIER_PLUGIN.format(name="cnn"))
    assert zoo.get_spec("cnn").plugin == "cnn"  # the built-in keeps the plain name
    assert zoo.get_spec("copycat:cnn").plugin == "copycat"  # the other stays reachable, qualified
    err = capsys.readouterr().err
    assert "plugin 'copycat': model name 'cnn' is already registered by plugin 'cnn'" in err


def test_strict_mode_turns_problems_into_errors(make_plugin: Callable[..., Path],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    make_plugin("copycat", TINY_CLASSIFIER_PLUGIN.format(name="cnn"))
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"copycat.*ZOO_STRICT_PLUGINS=1"):
        zoo.list_models()


def test_misspelt_hook_fails_loudly(make_plugin: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    make_plugin("typo", """
        from zoo.hookspecs import hookimpl
        @hookimpl
        def register_model(register):
            pass
    """)
    zoo.list_models()
    err = capsys.readouterr().err
    assert "unknown hook 'register_model' (did you mean 'register_models'?)" in err
    assert _record("typo").status == "failed"


def test_plugin_for_a_newer_contract_is_skipped(make_plugin: Callable[..., Path],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    make_plugin("future", "ZOO_CONTRACT = 99\n" + TINY_CLASSIFIER_PLUGIN.format(name="future-model"))
    assert "future-model" not in [s.name for s in zoo.list_models()]
    assert "written for plugin contract 99" in capsys.readouterr().err


def test_load_and_block_lists(make_plugin: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    make_plugin("one", TINY_CLASSIFIER_PLUGIN.format(name="model-one"))
    make_plugin("two", TINY_CLASSIFIER_PLUGIN.format(name="model-two"))
    names = lambda: {s.name for s in zoo.list_models()}  # noqa: E731
    assert {"model-one", "model-two"} <= names()
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "")
    zoo.registry.reset()
    assert names() == set(BUILTIN_MODELS), "empty ZOO_LOAD_PLUGINS = built-ins only"
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "two")
    zoo.registry.reset()
    assert "model-two" in names() and "model-one" not in names()
    assert _record("one").status == "skipped"
    monkeypatch.delenv("ZOO_LOAD_PLUGINS")
    monkeypatch.setenv("ZOO_BLOCK_PLUGINS", "one")
    zoo.registry.reset()
    assert "model-one" not in names() and _record("one").status == "blocked"


def test_cli_survives_a_broken_plugin_in_a_real_process(make_plugin: Callable[..., Path]) -> None:
    site = make_plugin("broken", "import this_module_does_not_exist\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-m", "zoo", "list"], capture_output=True, text=True, env=env)
    assert out.returncode == 0
    assert "cnn" in out.stdout
    assert out.stderr.count("\n") == 1 and "plugin 'broken': failed to import" in out.stderr
    strict = subprocess.run([sys.executable, "-m", "zoo", "list"], capture_output=True, text=True,
                            env={**env, "ZOO_STRICT_PLUGINS": "1"})
    assert strict.returncode != 0 and "Traceback" not in strict.stderr
    no_plugins = subprocess.run([sys.executable, "-m", "zoo", "--no-plugins", "list"], capture_output=True,
                                text=True, env=env)
    assert no_plugins.returncode == 0 and no_plugins.stderr == ""


def test_plugin_can_add_a_command(make_plugin: Callable[..., Path]) -> None:
    site = make_plugin("cmd", """
        import click
        from zoo.hookspecs import hookimpl
        @hookimpl
        def register_commands(cli):
            @cli.command()
            def hello():
                "Say hello."
                click.echo("hello from a plugin")
    """)
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-m", "zoo", "hello"], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "hello from a plugin"
