"""The catalogue and the Python API: listing, lookup, building, spec validation."""

from __future__ import annotations

import pytest

import zoo
from zoo.errors import UnknownNameError, ZooError
from zoo.specs import DatasetSpec, FamilySpec, InputSpec, ModelSpec


def test_builtin_models_are_listed_with_their_plugin() -> None:
    names = [spec.name for spec in zoo.list_models()]
    assert {"cnn", "resnet-small"} <= set(names)
    assert names == sorted(names)
    assert zoo.get_spec("cnn").plugin == "cnn"


def test_list_models_takes_wildcards_and_family() -> None:
    assert [s.name for s in zoo.list_models("cn?")] == ["cnn"]
    assert [s.name for s in zoo.list_models("resnet*")] == ["resnet-small", "resnet18", "resnet34", "resnet50"]
    assert all(s.family == "classifier" for s in zoo.list_models(family="classifier"))
    assert zoo.list_models("no-such-*") == []


def test_unknown_name_suggests_closest_matches() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'cnn'"):
        zoo.get_spec("cnnn")


def test_create_model_applies_overrides_and_rejects_unknown_arguments() -> None:
    import torch

    model = zoo.create_model("cnn", in_channels=3, num_classes=4, image_size=[16, 16])
    assert model(torch.zeros(2, 3, 16, 16)).shape == (2, 4)
    with pytest.raises(ZooError, match="does not take colour"):
        zoo.create_model("cnn", colour=True)
    with pytest.raises(ZooError, match="too small"):
        zoo.create_model("cnn", image_size=[2, 2])


@pytest.mark.parametrize(
    "spec, message",
    [
        (ModelSpec("Bad Name", "classifier", "s", "m:f", InputSpec(1, 8, 8)), "invalid"),
        (ModelSpec("ok", "classifier", "", "m:f", InputSpec(1, 8, 8)), "summary"),
        (ModelSpec("ok", "classifier", "s", "not a ref", InputSpec(1, 8, 8)), "module:attribute"),
        (ModelSpec("ok", "classifier", "s", "m:f", InputSpec(0, 8, 8)), "channels"),
        (ModelSpec("ok", "classifier", "s", "m:f", InputSpec(1, 8, 8), defaults=[1]), "defaults"),  # type: ignore[arg-type]
        (FamilySpec("fam", "", "m:f"), "summary"),
        (DatasetSpec("data", "s", 42), "loader"),  # type: ignore[arg-type]
    ],
)
def test_spec_validation(spec: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spec.validate()  # type: ignore[attr-defined]


def test_listing_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, zoo; zoo.list_models(); zoo.list_plugins(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
