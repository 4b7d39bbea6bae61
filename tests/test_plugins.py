"""Plugin loading through real entry points: isolation, strictness, selection, clashes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import zoo
from zoo.errors import PluginError
from zoo.registry import list_plugins
from zoo.version import CONTRACT_VERSION

from .conftest import TINY_CLASSIFIER_PLUGIN

#: What the plugzoo distribution itself registers (classifier, GAN and VAE families).
BUILTIN_MODELS = ["beta-vae", "cgan", "cnn", "gan", "gpt-micro", "gpt-mini", "gpt-nano", "gpt2-small", "resnet-small",
                  "resnet18", "resnet34", "resnet50", "tab-linear", "tab-mlp", "vae", "vit-base", "vit-small",
                  "vit-tiny"]


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
    assert set(BUILTIN_MODELS) <= {s.name for s in zoo.list_models()}  # robust to other installed plugins
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


#: Each failure of point 6 of the plugin issue: the plugin's source and the one line it must produce.
BROKEN_PLUGINS = {
    "raises-on-import": ("import this_module_does_not_exist\n",
                         "failed to import (ModuleNotFoundError: No module named 'this_module_does_not_exist')"),
    "exits-on-import": ("import sys\nsys.exit(3)\n", "failed to import (SystemExit: 3)"),
    "raises-in-hook": ("""
        from zoo.hookspecs import hookimpl
        from zoo.specs import InputSpec, ModelSpec
        @hookimpl
        def register_models(register):
            register(ModelSpec("half", "classifier", "x", "zoo_cnn.models:ArticleCNN", InputSpec(1, 8, 8)))
            raise RuntimeError("boom")
    """, "raised in register_models (RuntimeError: boom); none of its registrations were used"),
    "invalid-spec": ("""
        from zoo.hookspecs import hookimpl
        from zoo.specs import InputSpec, ModelSpec
        @hookimpl
        def register_models(register):
            register(ModelSpec("Has Spaces", "classifier", "x", "m:f", InputSpec(1, 8, 8)))
    """, "registered an invalid spec: model name 'Has Spaces' is invalid"),
    "duplicate-name": (TINY_CLASSIFIER_PLUGIN.format(name="cnn"),
                       "model name 'cnn' is already registered by plugin 'cnn'"),
    "misspelt-hook": ("""
        from zoo.hookspecs import hookimpl
        @hookimpl
        def register_model(register):
            pass
    """, "implements unknown hook 'register_model' (did you mean 'register_models'?)"),
    "unknown-hook-argument": ("""
        from zoo.hookspecs import hookimpl
        @hookimpl
        def register_models(register, context):
            pass
    """, "invalid hook implementation (Plugin 'unknown-hook-argument' for hook 'register_models'; "
         "hookimpl definition: register_models(register, context); Argument(s) {'context'} are declared in the "
         "hookimpl but can not be found in the hookspec); it was not loaded"),
    "newer-contract": ("ZOO_CONTRACT = 3\n" + TINY_CLASSIFIER_PLUGIN.format(name="from-the-future"),
                       "zoo-test-newer-contract 1.0 is written for plugin contract 3, this zoo (plugzoo) speaks "
                       "contract 2"),
    "unmarked-hook": ("""
        from zoo.specs import InputSpec, ModelSpec
        def register_models(register):
            register(ModelSpec(name="never", family="classifier", summary="x", builder="m:f", input=InputSpec(1, 8, 8)))
    """, "register_models looks like a hook but lacks @hookimpl, so zoo never calls it"),
    "command-clash": ("""
        import click
        from zoo.hookspecs import hookimpl
        @hookimpl
        def register_commands(cli):
            @cli.command("list")
            def hijack():
                click.echo("hijacked")
    """, "command 'list' already exists in zoo; the plugin's one was not added"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_PLUGINS))
def test_broken_plugin_is_one_line_and_zoo_list_still_works(case: str, make_plugin: Callable[..., Path]) -> None:
    source, message = BROKEN_PLUGINS[case]
    site = make_plugin(case, source, module=f"zoo_test_{case.replace('-', '_')}")
    env = {**os.environ, "PYTHONPATH": str(site)}

    def zoo(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True,
                              env={**env, **extra})

    listed = zoo("list")
    assert listed.returncode == 0, listed.stderr
    assert any(line.startswith("cnn ") for line in listed.stdout.splitlines()) and "hijacked" not in listed.stdout
    lines = listed.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"zoo: warning: plugin '{case}': "), listed.stderr
    assert message in lines[0]
    record = next(p for p in json.loads(zoo("plugins", "--json").stdout) if p["name"] == case)
    assert message in record["error"]
    strict = zoo("list", ZOO_STRICT_PLUGINS="1")
    assert strict.returncode == 2 and "Traceback" not in strict.stderr
    assert strict.stderr.strip().startswith(f"Error: plugin '{case}': ") and len(strict.stderr.splitlines()) == 1
    for without in (zoo("--no-plugins", "list"), zoo("list", ZOO_LOAD_PLUGINS=""), zoo("list", ZOO_BLOCK_PLUGINS=case)):
        assert without.returncode == 0 and without.stderr == "" and "cnn" in without.stdout


def test_a_hook_that_raises_leaves_nothing_half_registered(make_plugin: Callable[..., Path],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    make_plugin("half", BROKEN_PLUGINS["raises-in-hook"][0])
    assert "half" not in [s.name for s in zoo.list_models()]
    assert _record("half").status == "failed" and _record("half").registered == {}


def test_plugin_stating_no_valid_contract_is_refused(make_plugin: Callable[..., Path],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    make_plugin("odd", "ZOO_CONTRACT = '1'\n" + TINY_CLASSIFIER_PLUGIN.format(name="odd-model"))
    assert "odd-model" not in [s.name for s in zoo.list_models()]
    assert "ZOO_CONTRACT = '1' is not a contract version" in capsys.readouterr().err


def test_plugin_for_the_current_contract_loads(make_plugin: Callable[..., Path]) -> None:
    make_plugin("current", f"ZOO_CONTRACT = {CONTRACT_VERSION}\n" + TINY_CLASSIFIER_PLUGIN.format(name="now"))
    assert zoo.get_spec("now").plugin == "current"


def test_clashing_model_trains_and_exports_under_its_qualified_name(
    make_plugin: Callable[..., Path], tmp_path: Path
) -> None:
    make_plugin("copycat", TINY_CLASSIFIER_PLUGIN.format(name="cnn").replace("ArticleCNN", "SmallResNet"))
    run = zoo.train("copycat:cnn", epochs=1, batch_size=256, out=tmp_path / "runs", progress=False,
                    model_args={"width": 4})
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["plugin"] == "copycat" and config["model_args"]["width"] == 4
    exported = zoo.export(run.run_dir, out=tmp_path / "exports", providers=["cpu"])
    assert exported.manifest["plugin"] == "copycat" and exported.parity["passed"]
    # The run is rebuilt from copycat's builder (a ResNet), not from the built-in that owns "cnn".
    assert zoo.verify(exported.bundle_dir, providers=["cpu"])["passed"]


def test_plugins_requirements_pin_every_loaded_distribution(make_plugin: Callable[..., Path],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from zoo.cli import cli

    make_plugin("extra", TINY_CLASSIFIER_PLUGIN.format(name="tiny"))
    make_plugin("unwanted", TINY_CLASSIFIER_PLUGIN.format(name="tiny2"))
    monkeypatch.setenv("ZOO_BLOCK_PLUGINS", "unwanted")
    out = CliRunner().invoke(cli, ["plugins", "--requirements"])
    assert out.exit_code == 0
    assert out.output.splitlines() == [f"plugzoo=={zoo.__version__}", "zoo-test-extra==1.0"]


def test_trace_prints_every_hook_call_with_plugin_and_result(make_plugin: Callable[..., Path]) -> None:
    site = make_plugin("raiser", """
        from zoo.hookspecs import hookimpl
        @hookimpl
        def register_models(register):
            raise RuntimeError("boom")
    """)
    env = {**os.environ, "PYTHONPATH": str(site)}
    plain = subprocess.run([sys.executable, "-m", "zoo", "list"], capture_output=True, text=True, env=env)
    traced = subprocess.run([sys.executable, "-m", "zoo", "list"], capture_output=True, text=True,
                            env={**env, "ZOO_TRACE_PLUGINS": "1"})
    assert traced.returncode == 0 and traced.stdout == plain.stdout, "tracing goes to stderr only"
    lines = traced.stderr.splitlines()
    assert "zoo: trace: cnn: loaded (plugzoo " + zoo.__version__ + ")" in lines
    assert "zoo: trace: cnn.register_models(register)" in lines
    assert "zoo: trace:   cnn registers model 'resnet-small'" in lines
    assert any(line.startswith("zoo: trace: cnn.register_models -> [] (") for line in lines)
    assert any(line.startswith("zoo: trace: raiser.register_models raised RuntimeError: boom (") for line in lines)
    assert "zoo: trace: digits.register_datasets(register)" in lines


def test_hooks_get_only_the_arguments_they_ask_for(make_plugin: Callable[..., Path]) -> None:
    # What lets hooks grow new arguments: an implementation written for fewer arguments still loads.
    make_plugin("minimal", """
        from zoo.hookspecs import hookimpl
        CALLED = []
        @hookimpl
        def register_datasets():
            CALLED.append(True)
    """)
    zoo.list_models()
    assert _record("minimal").status == "loaded" and sys.modules["zoo_test_minimal"].CALLED == [True]


def test_a_misspelt_name_in_the_plugin_lists_is_reported(make_plugin: Callable[..., Path], monkeypatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    make_plugin("one", TINY_CLASSIFIER_PLUGIN.format(name="model-one"))
    monkeypatch.setenv("ZOO_BLOCK_PLUGINS", "onee")
    assert "model-one" in [s.name for s in zoo.list_models()], "nothing was blocked"
    err = capsys.readouterr().err
    assert err.startswith("zoo: warning: ZOO_BLOCK_PLUGINS names 'onee', which is not an installed plugin (installed:")
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    zoo.registry.reset()
    with pytest.raises(PluginError, match="ZOO_BLOCK_PLUGINS names 'onee'"):
        zoo.list_models()


def test_unknown_model_names_the_plugins_that_did_not_load(make_plugin: Callable[..., Path],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    make_plugin("one", TINY_CLASSIFIER_PLUGIN.format(name="model-one"))
    monkeypatch.setenv("ZOO_BLOCK_PLUGINS", "zoo-test-one")  # a distribution name works too
    with pytest.raises(zoo.errors.UnknownNameError, match=r"unknown model 'model-one'; .*not loaded: one \(blocked\)"):
        zoo.get_spec("model-one")


def test_qualified_names_that_match_nothing_say_which_part_is_wrong() -> None:
    assert zoo.get_spec("cnn:resnet-small").name == "resnet-small"
    with pytest.raises(zoo.errors.UnknownNameError, match=r"^no plugin 'cnnn' \(in 'cnnn:cnn'\); installed plugins: "):
        zoo.get_spec("cnnn:cnn")
    with pytest.raises(zoo.errors.UnknownNameError, match=r"^unknown model 'resnet' from plugin 'cnn'; did you mean"):
        zoo.get_spec("cnn:resnet")


def test_what_a_plugin_prints_cannot_corrupt_json_output(make_plugin: Callable[..., Path]) -> None:
    site = make_plugin("chatty", 'print("hello from import")\n' + TINY_CLASSIFIER_PLUGIN.format(name="chatty")
                       .replace("    register(", '    print("hello from a hook")\n    register('))
    out = subprocess.run([sys.executable, "-m", "zoo", "list", "--json"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(site)})
    assert "chatty" in [row["name"] for row in json.loads(out.stdout)]
    assert out.stderr.splitlines() == ["hello from import", "hello from a hook"]
