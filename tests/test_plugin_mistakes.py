"""Mistakes in a plugin's code are reported in one line naming THAT plugin and the fix: model, dataset and
family may come from three plugins, and a plain model name two plugins share is never taken silently."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli

from .helpers import assert_one_line_error


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


#: A model plugin whose forward is wrong in the way ``{mistake}`` says, registered in the built-in classifier family.
BAD_MODEL_PLUGIN = '''
from zoo.hookspecs import hookimpl
from zoo.specs import InputSpec, ModelSpec


def build(in_channels=1, num_classes=10, image_size=(8, 8)):
    import torch
    from torch import nn

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = {layer}
            self.flat = nn.Flatten()

        def forward(self, x):
            logits = self.fc(self.flat(x))
            return {returned}

    return Model(){after}


@hookimpl
def register_models(register):
    register(ModelSpec(name="bad", family="classifier", summary="a broken model", builder=build,
                       input=InputSpec(1, 8, 8), model_args={{"in_channels": 1, "num_classes": 10,
                                                             "image_size": [8, 8]}}))
'''

MISTAKES = {
    "tuple": ({"layer": "nn.Linear(64, 10)", "returned": "logits, logits.sum()", "after": ""},
              ("model 'bad' of plugin 'tuplebad': forward returned a tuple of 2", "family (plugin 'cnn') takes one "
               "tensor ('logits')", "return one tensor")),
    "dict": ({"layer": "nn.Linear(64, 10)", "returned": "{'logits': logits}", "after": ""},
             ("model 'bad' of plugin 'dictbad': forward returned a dict (keys ['logits'])",)),
    "lazy": ({"layer": "nn.LazyLinear(10)", "returned": "logits", "after": ""},
             ("model 'bad' of plugin 'lazybad' has lazy layers (LazyLinear at 'fc')", "nn.Linear(in_features")),
    "float64": ({"layer": "nn.Linear(64, 10)", "returned": "logits", "after": ".double()"},
                ("model 'bad' of plugin 'float64bad' holds float64 tensors ('fc.weight')", "build it in float32")),
    "double-output": ({"layer": "nn.Linear(64, 10)", "returned": "logits.double()", "after": ""},
                      ("output 'logits' of graph 'model' is float64 for float32 inputs", "plugin 'doublebad'")),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_a_wrong_model_is_one_line_naming_its_plugin_not_the_family(
        mistake: str, make_plugin: Callable[..., Path], tmp_path: Path) -> None:
    parts, fragments = MISTAKES[mistake]
    make_plugin(f"{mistake.split('-')[0]}bad", BAD_MODEL_PLUGIN.format(**parts))
    result = invoke("train", "bad", "--smoke", "--out", tmp_path / "runs")
    assert_one_line_error(result, *fragments)
    assert "internal error" not in result.output and not (tmp_path / "runs").exists()


#: Three plugins: a dataset, a family and a model, each of which can be told to fail in its own code.
DATASET_PLUGIN = '''
import os
import numpy as np
from zoo.data import RawData
from zoo.hookspecs import hookimpl
from zoo.specs import DatasetSpec


def load(*, seed, val_fraction):
    if os.environ.get("FAIL") == "dataset":
        raise RuntimeError("the dataset broke")
    images = np.random.default_rng(0).integers(0, 16, (40, 1, 8, 8)).astype({dtype})
    return RawData(images, np.arange(40) % 2, ["a", "b"], 1 / 16, "blobs")


def load64(*, seed, val_fraction):
    from zoo.data import DataInfo, DataSplits

    info = DataInfo(name="blobs64", channels=1, height=8, width=8, num_classes=2, class_names=["a", "b"],
                    mean=[0.0], std=[1.0])
    x = np.zeros((40, 1, 8, 8))  # float64: the model would fail on it, but the dataset is at fault
    return DataSplits(info, x[:32], np.arange(32) % 2, x[32:], np.arange(8) % 2)


@hookimpl
def register_datasets(register):
    register(DatasetSpec(name="blobs", summary="random blobs", loader=load))
    register(DatasetSpec(name="blobs64", summary="float64 blobs", loader=load64))
'''

FAMILY_PLUGIN = '''
import os
from zoo.hookspecs import hookimpl
from zoo.specs import FamilySpec


def plain_family():
    import torch.nn.functional as F
    from zoo.family import Family

    class Plain(Family):
        monitor = ("{monitor}", "max")

        def data_args(self, spec, data):
            return {{"in_channels": data.channels, "num_classes": data.num_classes}}

        def training_step(self, model, batch, optimizer, ctx):
            if os.environ.get("FAIL") == "family":
                raise RuntimeError("the family broke")
            x, y = batch
            return {{"loss": F.cross_entropy(model(x), y)}}

        def evaluate(self, model, ctx):
            return {{"val_loss": 1.0}}

    return Plain()


@hookimpl
def register_families(register):
    register(FamilySpec(name="plain", summary="a plain family", factory=plain_family))
'''

MODEL_PLUGIN = '''
import os
from zoo.hookspecs import hookimpl
from zoo.specs import InputSpec, ModelSpec


def net(in_channels=1, num_classes=2):
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64 * in_channels, num_classes)

        def forward(self, x):
            if os.environ.get("FAIL") == "model":
                raise RuntimeError("the model broke")
            return self.fc(x.flatten(1))

    return Net()


@hookimpl
def register_models(register):
    register(ModelSpec(name="net", family="plain", summary="a linear net", builder=net, input=InputSpec(1, 8, 8),
                       dataset="blobs"))
'''


@pytest.fixture
def three_plugins(make_plugin: Callable[..., Path]) -> None:
    make_plugin("mydata", DATASET_PLUGIN.format(dtype="np.uint8"))
    make_plugin("myfamily", FAMILY_PLUGIN.format(monitor="val_loss"))
    make_plugin("mymodel", MODEL_PLUGIN)


@pytest.mark.parametrize(("failing", "plugin"), [("dataset", "mydata"), ("family", "myfamily"),
                                                   ("model", "mymodel")])
def test_an_error_in_each_plugins_code_names_that_plugin(three_plugins: None, failing: str, plugin: str,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIL", failing)
    result = invoke("train", "net", "--epochs", "1", "--out", tmp_path / "runs")
    assert_one_line_error(result, f"plugin {plugin!r} failed in its own code", f"the {failing} broke")


def test_a_float64_dataset_is_blamed_not_the_model(three_plugins: None, tmp_path: Path) -> None:
    result = invoke("train", "net", "--data", "blobs64", "--epochs", "1", "--out", tmp_path / "runs")
    assert_one_line_error(result, "dataset 'blobs64' of plugin 'mydata': training samples are float64, not float32")


def test_a_family_without_its_monitored_metric_is_refused_at_the_first_validation(
        make_plugin: Callable[..., Path], tmp_path: Path) -> None:
    make_plugin("mydata", DATASET_PLUGIN.format(dtype="np.uint8"))
    make_plugin("myfamily", FAMILY_PLUGIN.format(monitor="val_accuracy"))
    make_plugin("mymodel", MODEL_PLUGIN)
    result = invoke("train", "net", "--epochs", "3", "--out", tmp_path / "runs")
    assert_one_line_error(result, "family 'plain' of plugin 'myfamily' monitors 'val_accuracy'",
                          "returned ['val_loss']", "return 'val_accuracy' from evaluate")
    assert not list((tmp_path / "runs").glob("*/metrics.jsonl")), "no run is left behind as if it had trained"


COPYCAT = '''
from zoo.hookspecs import hookimpl
from zoo.specs import InputSpec, ModelSpec

@hookimpl
def register_models(register):
    register(ModelSpec(name="cnn", family="classifier", summary="someone else's cnn",
                       builder="zoo_cnn.models:SmallResNet", input=InputSpec(1, 8, 8), model_args={"width": 4}))
'''


def test_a_shared_plain_name_is_never_taken_silently(make_plugin: Callable[..., Path], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    stopped = zoo.train("cnn", epochs=2, max_steps=3, batch_size=256, out=runs, progress=False)
    make_plugin("aaa", COPYCAT)  # installed later, sorts before 'cnn'
    refused = invoke("train", "cnn", "--smoke", "--out", tmp_path / "other")
    assert refused.exit_code == 2 and refused.output.splitlines()[-1] == (  # after the registry's clash warning
        "Error: model name 'cnn' is registered by 2 plugins: aaa:cnn, cnn:cnn; train one of them by its full name "
        "(zoo train PLUGIN:NAME)")
    assert not (tmp_path / "other").exists()
    resumed = zoo.train(resume=stopped.run_dir, progress=False)  # the run's own plugin, not aaa's ResNet
    assert json.loads((resumed.run_dir / "config.json").read_text())["plugin"] == "cnn"
    exported = zoo.export(resumed.run_dir, out=tmp_path / "exports", providers=["cpu"])
    assert exported.manifest["plugin"] == "cnn" and exported.parity["passed"]
    other = zoo.train("aaa:cnn", smoke=True, batch_size=256, out=runs, progress=False)
    table = invoke("runs", "--root", runs).output.splitlines()
    assert table[0].split()[:3] == ["RUN", "MODEL", "PLUGIN"]
    plugins = {line.split()[0]: line.split()[2] for line in table[1:]}
    assert plugins == {stopped.run_dir.name: "cnn", other.run_dir.name: "aaa"}
