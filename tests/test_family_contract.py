"""Family contract v2: the run context, the v1 adapter, the engine's scheduler steps, the quality judge."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import zoo
from zoo import family_v1
from zoo.cli import cli
from zoo.data import DataInfo, DataSplits
from zoo.engine.persistence import load_checkpoint
from zoo.errors import ZooError
from zoo.family import RunContext
from zoo.registry import build_catalog
from zoo.roles import known_roles
from zoo.run_layout import CHECKPOINTS, LAST
from zoo.toolkit import quality

from .conftest import TINY_CLASSIFIER_PLUGIN


def test_every_scheduler_steps_once_per_optimizer_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The GAN's generator steps twice a batch, but its schedule must still span the whole run."""
    from zoo_gan.family import GANFamily

    monkeypatch.setattr(GANFamily, "epoch_end", lambda self, model, ctx: {"sample_confident": 0.0})  # no judge here
    monkeypatch.setattr(GANFamily, "final_metrics", lambda self, model, ctx: {})
    run = zoo.train("gan", dataset="digits", epochs=1, smoke=True, schedule="cosine", hyperparameters={
        "generator_steps": 2}, out=tmp_path / "runs", progress=False, model_args={"features": 8})
    state = load_checkpoint(run.run_dir / CHECKPOINTS / LAST).state
    steps = state["step"]
    assert steps > 0
    assert {name: s["last_epoch"] for name, s in state["schedulers"].items()} == {
        "discriminator": steps, "generator": steps}


def _context(**changes: object) -> RunContext:
    info = DataInfo(name="t", channels=1, height=8, width=8, num_classes=2, class_names=["a", "b"])
    empty = np.zeros((0, 1, 8, 8), np.float32)
    labels = np.zeros(0, np.int64)
    return RunContext(hyperparameters={"lr": 0.1, "optimizer": "sgd"}, data=DataSplits(info, empty, labels, empty,
                                                                                           labels), **changes)


def test_the_run_context_is_frozen_and_its_hyperparameters_read_only() -> None:
    ctx = _context(epoch=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.epoch = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        ctx.hyperparameters["lr"] = 1.0  # type: ignore[index]
    moved = ctx.at(epoch=5, step=40)
    assert (moved.epoch, moved.step, ctx.epoch) == (5, 40, 3)
    assert ctx.data_info.num_classes == 2 and ctx.is_main


def test_no_built_in_family_reads_config_json_or_keeps_state_on_self() -> None:
    for path in Path(zoo.__file__).parent.parent.glob("plugins/*/family.py"):
        source = path.read_text()
        assert "config.json" not in source and "CONFIG" not in source, path
        assert not re.search(r"self\.\w+\s*=", source), f"{path} keeps state on self"
    for spec in build_catalog().families.values():
        family = zoo.load_family(spec.name)
        assert not family_v1.is_v1(family), f"built-in family {spec.name} still uses contract 1"


V1_PLUGIN = '''
import torch.nn.functional as F
from zoo.hookspecs import hookimpl
from zoo.specs import FamilySpec, InputSpec, ModelSpec
from zoo.family import Family, make_optimizer

seen = {}

class OldStyle(Family):
    monitor = ("val_loss", "min")

    def configure_optimizers(self, model, hp):
        self.hp = hp
        return {"model": make_optimizer(model.parameters(), hp)}

    def training_step(self, model, batch, optimizer):
        images, labels = batch
        return {"loss": F.cross_entropy(model(images), labels)}

    def evaluate(self, model, data, device):
        seen["evaluate"] = str(device)
        return {"val_loss": 1.0}

    def epoch_end(self, model, data, run_dir, epoch, device):
        seen.setdefault("epochs", []).append(epoch)
        return {}

    def final_metrics(self, model, data, run_dir, device):
        seen["final"] = str(run_dir)
        return {"done": 1.0}

    def data_args(self, spec, data):
        return {"in_channels": data.channels, "num_classes": data.num_classes}

@hookimpl
def register_families(register):
    register(FamilySpec(name="oldstyle", summary="contract 1", factory="zoo_test_old:OldStyle"))

@hookimpl
def register_models(register):
    register(ModelSpec(name="old-cnn", family="oldstyle", summary="a test model",
                       builder="zoo_cnn.models:ArticleCNN", input=InputSpec(1, 8, 8)))
'''


def test_a_contract_1_family_still_trains_with_one_deprecation_line(make_plugin, tmp_path: Path, capsys) -> None:
    make_plugin("old", V1_PLUGIN)
    run = zoo.train("old-cnn", epochs=2, smoke=True, out=tmp_path, progress=False)
    import zoo_test_old

    assert zoo_test_old.seen["epochs"] == [1, 2] and zoo_test_old.seen["final"] == str(run.run_dir)
    assert run.summary["metrics"]["done"] == 1.0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "contract-1" in line]
    assert len(warnings) == 1, warnings
    assert "family 'oldstyle' of plugin 'old'" in warnings[0] and "training_step" in warnings[0]


def test_debug_shows_the_chained_cause(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    plain = CliRunner().invoke(cli, ["train", "cnn", "--config", str(missing)])
    assert plain.exit_code == 2 and plain.output.strip().count("\n") == 0
    debug = CliRunner().invoke(cli, ["--debug", "train", "cnn", "--config", str(missing)])
    assert isinstance(debug.exception, ZooError)
    assert isinstance(debug.exception.__cause__, FileNotFoundError)


def test_the_quality_judge_is_declared_by_the_family_not_the_core(tmp_path: Path) -> None:
    core = Path(zoo.__file__).parent
    plugin_names = {"cnn", "gan", "vae", "classifier", "zoo_cnn", "zoo_gan", "zoo_vae"}
    for path in core.rglob("*.py"):  # string constants in code (a docstring's example is one longer string)
        named = {node.value for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.Constant) and isinstance(node.value, str)} & plugin_names
        if path.name == "roles.py":  # graph role names (GraphRole.CLASSIFIER), not the family of that name
            named -= set(known_roles())
        assert not named, f"{path} names {named}"
    assert zoo.load_family("gan").hyperparameters["classifier_model"] == "cnn"
    with pytest.raises(ZooError, match="classifier_model=NAME"):
        quality.load_classifier("digits", 0, "cpu")


def test_every_train_option_is_a_flag_made_from_its_field() -> None:
    from dataclasses import fields

    from zoo.engine.options import TrainOptions

    train = cli.commands["train"]
    by_param = {p.name: p for p in train.params}
    for f in fields(TrainOptions):
        if not f.metadata.get("cli", True):
            assert f.name not in by_param
            continue
        param = by_param[f.metadata.get("param") or f.name]
        assert param.help == f.metadata["help"] and param.help, f.name
        if f.metadata.get("choices"):
            assert list(param.type.choices) == list(f.metadata["choices"])
    assert by_param["dataset"].opts == ["--data"] and by_param["model_args"].opts == ["--arg"]
    assert by_param["hparams"].multiple and by_param["smoke"].is_flag


def test_a_plugin_that_imports_torch_at_load_is_told_the_cost(make_plugin, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    site = make_plugin("heavy", "import torch\n" + TINY_CLASSIFIER_PLUGIN.format(name="heavy-model"))
    listed = subprocess.run([sys.executable, "-m", "zoo", "list"], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(site)})
    assert listed.returncode == 0 and "heavy-model" in listed.stdout
    (line,) = [line for line in listed.stderr.splitlines() if "torch" in line]
    assert re.search(r"plugin 'heavy': loading it imported torch \(\d+\.\d s", line), line


WIDE_AND_BAD_DATA_PLUGIN = '''
import numpy as np
from zoo.data import DataInfo, DataSplits
from zoo.hookspecs import hookimpl
from zoo.specs import DatasetSpec, InputSpec, ModelSpec


def wide(in_channels=1, num_classes=10):
    from zoo_cnn.models import ArticleCNN

    return ArticleCNN(in_channels=in_channels, num_classes=num_classes + 1)  # one score too many


def mislabelled(*, seed, val_fraction):
    info = DataInfo(name="mislabelled", channels=1, height=8, width=8, num_classes=2, class_names=["a", "b"],
                    mean=[0.0], std=[1.0])
    x = np.zeros((20, 1, 8, 8), np.float32)
    return DataSplits(info, x[:16], np.arange(16) % 3, x[16:], np.zeros(4, np.int64))


@hookimpl
def register_models(register):
    register(ModelSpec(name="wide", family="classifier", summary="too many scores", builder="zoo_test_wide:wide",
                       input=InputSpec(1, 8, 8)))


@hookimpl
def register_datasets(register):
    register(DatasetSpec(name="mislabelled", summary="labels beyond its classes", loader=mislabelled))
'''


def test_first_batch_checks_name_the_plugin_at_fault(make_plugin, tmp_path: Path) -> None:
    make_plugin("wide", WIDE_AND_BAD_DATA_PLUGIN)
    with pytest.raises(ZooError, match=r"model 'wide' of plugin 'wide' gives 11 class scores .* 10 classes"):
        zoo.train("wide", smoke=True, out=tmp_path, progress=False)
    with pytest.raises(ZooError, match=r"dataset 'mislabelled' of plugin 'wide': training labels reach 2 but its "
                                       r"DataInfo has 2 classes"):
        zoo.train("cnn", dataset="mislabelled", smoke=True, out=tmp_path, progress=False)


def test_no_import_cycle_between_the_api_and_the_family_contract() -> None:
    """``load_family`` lives beside ``create_model`` in building.py and imports the family modules only when called;
    the family modules never import the API."""
    import ast

    core = Path(zoo.__file__).parent
    for contract in ("family.py", "family_v1.py"):
        assert "zoo.api" not in (core / contract).read_text()
    top_level = [node for node in ast.parse((core / "building.py").read_text()).body
                 if isinstance(node, ast.Import | ast.ImportFrom)]
    assert not [ast.unparse(node) for node in top_level if "zoo.family" in ast.unparse(node)]
    assert "zoo.family" not in (core / "api.py").read_text()


def test_make_optimizer_fuses_its_step_on_cuda_only() -> None:
    """On the CPU the step stays torch's default (bitwise what a plain torch.optim call gives); parameters all on
    CUDA get the fused step (checked without a GPU on stand-ins: torch refuses fused=True for CPU tensors)."""
    import torch

    from zoo.family import _fused_step_options, make_optimizer

    cpu = [torch.nn.Parameter(torch.ones(2))]
    for name in ("sgd", "adam", "adamw"):
        assert not make_optimizer(cpu, {"optimizer": name, "lr": 0.1}).defaults.get("fused")
    assert make_optimizer([{"params": iter(cpu), "lr": 0.5}], {"optimizer": "sgd", "lr": 0.1}).param_groups[0]["params"]

    class OnCuda:
        is_cuda = True

        def __init__(self, floating: bool = True) -> None:
            self.floating = floating

        def is_floating_point(self) -> bool:
            return self.floating

    assert _fused_step_options([OnCuda(), {"params": [OnCuda()]}]) == {"fused": True}
    assert _fused_step_options([OnCuda(), cpu[0]]) == {}
    assert _fused_step_options([OnCuda(floating=False)]) == {}
    assert _fused_step_options([]) == {}
