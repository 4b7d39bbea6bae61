"""One test per hook of the plugin contract, and the two meta-tests that keep it so.

A new hook in ``zoo/hookspecs.py`` fails ``test_every_hook_has_a_test`` until a ``test_hook_<name>``
exists here, and ``test_every_hook_is_documented`` until ``docs/plugins.md`` has a section for it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import zoo
from zoo.plugins import hook_names

from .conftest import TINY_CLASSIFIER_PLUGIN

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def test_every_hook_has_a_test() -> None:
    missing = [name for name in hook_names() if f"test_hook_{name}" not in globals()]
    assert not missing, f"hooks without a test_hook_<name> in {__name__}: {missing}"


def test_every_hook_is_documented() -> None:
    documented = set(re.findall(r"^### `(\w+)\(", GUIDE.read_text(), flags=re.MULTILINE))
    assert documented == set(hook_names()), "docs/plugins.md needs a '### `hook(args)`' section per hook, no others"


def test_hook_names_are_what_pluggy_knows() -> None:
    pm = zoo.registry.catalog().manager
    assert set(hook_names()) == {name for name in dir(pm.hook) if not name.startswith("_")}


def test_hook_register_models(make_plugin: Callable[..., Path]) -> None:
    make_plugin("models", TINY_CLASSIFIER_PLUGIN.format(name="tiny"))
    spec = zoo.get_spec("tiny")
    assert (spec.plugin, spec.family) == ("models", "classifier")
    assert zoo.create_model("tiny").fc2.out_features == 10


def test_hook_register_families(make_plugin: Callable[..., Path]) -> None:
    make_plugin("families", """
        from zoo.family import Family
        from zoo.hookspecs import hookimpl
        from zoo.specs import FamilySpec, InputSpec, ModelSpec

        class Echo(Family):
            monitor = ("val_score", "max")

        @hookimpl
        def register_families(register):
            register(FamilySpec("echo", "a family for the test", "zoo_test_families:Echo"))

        @hookimpl
        def register_models(register):
            register(ModelSpec("echo-model", "echo", "x", "zoo_cnn.models:ArticleCNN", InputSpec(1, 8, 8)))
    """)
    family = zoo.load_family("echo")
    assert type(family).__name__ == "Echo" and family.monitor == ("val_score", "max")
    assert [s.name for s in zoo.list_models(family="echo")] == ["echo-model"]


def test_hook_register_datasets(make_plugin: Callable[..., Path]) -> None:
    make_plugin("rampdata", """
        import numpy as np
        from zoo.data import split_and_normalise
        from zoo.hookspecs import hookimpl
        from zoo.specs import DatasetSpec

        def load(*, seed, val_fraction):
            images = np.arange(40 * 3 * 4 * 4, dtype=np.float32).reshape(40, 3, 4, 4)
            return split_and_normalise("ramp", images, np.arange(40) % 2, seed=seed, val_fraction=val_fraction,
                                       scale=1.0, class_names=["even", "odd"])

        @hookimpl
        def register_datasets(register):
            register(DatasetSpec("ramp", "a ramp of numbers", "zoo_test_rampdata:load", num_classes=2))
    """)
    from zoo.data import load_dataset

    data = load_dataset("ramp", seed=1)
    assert data.info.shape == (3, 4, 4) and len(data.y_val) == 8
    assert zoo.registry.get_dataset_spec("ramp").plugin == "rampdata"


def test_hook_register_commands(make_plugin: Callable[..., Path]) -> None:
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
    listed = subprocess.run([sys.executable, "-m", "zoo", "plugins"], capture_output=True, text=True, env=env)
    assert "    commands: hello" in listed.stdout
    assert "hello" in subprocess.run([sys.executable, "-m", "zoo", "--help"], capture_output=True, text=True,
                                     env=env).stdout


TAGGER_PLUGIN = """
from zoo.hookspecs import hookimpl
from zoo.role_handlers import GateResult, RoleHandlers
from zoo.roles import RoleSpec

class Handlers(RoleHandlers):
    def gate(self, evidence):
        return GateResult(False, "{name} says no")

@hookimpl
def register_roles(register):
    register(RoleSpec("tagger", "tokens -> tags", ("output",), output_keys=("output",),
                      handlers="zoo_test_{name}:Handlers"))
"""


def test_hook_register_roles(make_plugin: Callable[..., Path]) -> None:
    import pytest

    from zoo.errors import ZooError
    from zoo.role_handlers import GateEvidence, handlers_for
    from zoo.roles import known_roles, role_spec

    make_plugin("alpha", TAGGER_PLUGIN.format(name="alpha"))
    spec = zoo.registry.get_role("tagger")
    assert (spec.plugin, spec.qualified, spec.handlers) == ("alpha", "alpha:tagger", "zoo_test_alpha:Handlers")
    assert "alpha" in [p.name for p in zoo.registry.list_plugins() if "tagger" in p.registered.get("roles", [])]
    make_plugin("beta", TAGGER_PLUGIN.format(name="beta"))  # a second plugin, the same plain role name
    assert role_spec("alpha:tagger").plugin == "alpha" and role_spec("beta:tagger").plugin == "beta"
    assert {"alpha:tagger", "beta:tagger"} <= set(known_roles())
    with pytest.raises(ZooError, match=r"registered by plugins 'alpha', 'beta'.*alpha:tagger, beta:tagger"):
        role_spec("tagger")
    evidence = GateEvidence("g", "int8", {}, {}, ())
    assert handlers_for("beta:tagger").gate(evidence).rule == "beta says no"
    assert handlers_for("alpha:tagger").supports("gate") and not handlers_for("alpha:tagger").supports("predict")
    assert role_spec("lm").qualified == "lm:lm", "a built-in plugin's role keeps its plain name"


def test_an_invalid_graph_role_is_reported_and_the_rest_of_the_plugin_used(make_plugin: Callable[..., Path],
                                                                           capsys) -> None:
    make_plugin("gamma", """
        from zoo.hookspecs import hookimpl
        from zoo.roles import RoleSpec

        @hookimpl
        def register_roles(register):
            register(RoleSpec("Bad Role", "no"))
            register(RoleSpec("fine", "yes", handlers="not a reference"))
            register(RoleSpec("good", "yes"))
    """)
    assert zoo.registry.get_role("good").plugin == "gamma"
    err = capsys.readouterr().err
    assert "plugin 'gamma': registered an invalid graph role: graph role name 'Bad Role' is invalid" in err
    assert "handlers 'not a reference' must be a 'module:attr' reference" in err


def test_the_minimal_plugin_in_the_guide_works(tmp_path: Path, monkeypatch) -> None:
    section = GUIDE.read_text().split("## A minimal plugin", 1)[1].split("\n## ", 1)[0]
    init, model = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    package = tmp_path / "zoo_mlp"
    package.mkdir()
    (package / "__init__.py").write_text(init)
    (package / "model.py").write_text(model)
    dist = tmp_path / "zoo_mlp-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-mlp\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[zoo]\nmlp = zoo_mlp\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    zoo.registry.reset()
    assert zoo.get_spec("mlp").plugin == "mlp"
    run = zoo.train("mlp", epochs=1, batch_size=256, out=tmp_path / "runs", progress=False)
    assert zoo.export(run.run_dir, out=tmp_path / "exports", providers=["cpu"]).parity["passed"]
