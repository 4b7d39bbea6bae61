"""Data kinds and targets: typed, never cast silently, backwards compatible, and checked against what a family
takes before a run folder exists."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli
from zoo.data import (
    AudioInfo,
    DataInfo,
    RawAudio,
    RawTable,
    TargetInfo,
    class_targets,
    real_targets,
    split_and_normalise,
)
from zoo.errors import ZooError

from .helpers import assert_one_line_error


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_float_targets_stay_floats_with_their_statistics() -> None:
    targets = np.linspace(0, 1, 10)
    data = split_and_normalise("ramp", np.zeros((10, 1, 2, 2)), targets, seed=0, val_fraction=0.2, scale=1.0,
                               class_names=[])
    assert data.y_train.dtype == np.float32 and data.y_train.shape == (8, 1)
    together = np.sort(np.concatenate([data.y_train, data.y_val]).ravel())
    np.testing.assert_allclose(together, targets, rtol=1e-6)  # not [0 0 0 0 1 0 0 0]
    assert data.info.target.kind == "real" and data.info.target.names == ["target"]
    assert data.info.target.mean == pytest.approx([float(data.y_train.mean())])


def test_float_class_labels_are_refused_not_truncated() -> None:
    with pytest.raises(ZooError, match="whole numbers"):
        split_and_normalise("odd", np.zeros((10, 1, 2, 2)), np.linspace(0, 1, 10), seed=0, val_fraction=0.2,
                            scale=1.0, class_names=["a", "b"])
    whole = class_targets(np.array([0.0, 1.0, 1.0]), 3, 2, source="s")
    assert whole.dtype == np.int64 and whole.tolist() == [0, 1, 1]
    with pytest.raises(ZooError, match="NaN or infinite"):
        real_targets(np.array([0.5, np.nan]), 2, source="s")


def test_older_config_json_loads_as_images_with_classes() -> None:
    old = {"name": "digits", "channels": 1, "height": 8, "width": 8, "num_classes": 10, "class_names": ["0"],
           "scale": 0.0625, "mean": [0.3], "std": [0.4], "source_shape": [1, 8, 8], "kind": "image", "text": None}
    info = DataInfo.from_dict(old)
    assert info.kind == "image" and info.target == TargetInfo("class") and info.sample_shape == (1, 8, 8)
    text = DataInfo.from_dict({"name": "t", "channels": 1, "height": 1, "width": 1, "num_classes": 0, "kind": "text",
                               "text": {"tokenizer": "bytes", "vocab_size": 256, "context": 16}})
    assert text.target.kind == "tokens" and text.sample_shape == (16,)
    audio = DataInfo(name="a", kind="audio", audio=AudioInfo(16000, 8000), target=TargetInfo("none"))
    assert DataInfo.from_dict(json.loads(json.dumps(audio.to_dict()))) == audio
    assert audio.sample_shape == (8000,) and audio.audio.seconds == 0.5


def test_bad_kinds_are_refused_where_they_are_made() -> None:
    with pytest.raises(ZooError, match="target kind 'regression'"):
        TargetInfo("regression")
    with pytest.raises(ZooError, match="one name, mean and std per column"):
        TargetInfo("real", names=["y"])
    with pytest.raises(ZooError, match="sample_rate"):
        AudioInfo(0, 100)
    from zoo.specs import FamilySpec

    with pytest.raises(ValueError, match="data_kinds has 'table'"):
        FamilySpec("f", "s", "m:F", data_kinds=("table",)).validate()
    FamilySpec("f", "s", "m:F", data_kinds=("myplugin:graph",)).validate()  # a plugin's own kind


def test_tables_are_standardised_with_training_statistics() -> None:
    from zoo.data.tabular import prepare_table

    rng = np.random.default_rng(0)
    raw = RawTable(rng.normal(50, 10, (40, 3)), rng.normal(5, 2, 40), ["a", "b", "c"], ["y"], "t.csv")
    data = prepare_table("t", raw, seed=1, val_fraction=0.25)
    assert data.x_train.dtype == np.float32 and data.x_train.shape == (30, 3)
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0, atol=1e-5)
    assert data.y_train.dtype == np.float32 and data.y_train.shape == (30, 1)
    assert data.info.kind == "features" and data.info.features.names == ["a", "b", "c"]
    with pytest.raises(ZooError, match=r"t\.csv: features hold NaN"):
        prepare_table("t", RawTable(np.full((4, 1), np.nan), np.zeros(4), ["a"], ["y"], "t.csv"), seed=0,
                      val_fraction=0.5)


def test_audio_must_be_float_waveforms() -> None:
    from zoo.data.audio import prepare_audio

    waves = np.zeros((6, 100), np.float32)
    data = prepare_audio("a", RawAudio(waves, np.arange(6) % 2, ["no", "yes"], 8000, "clips"), seed=0,
                         val_fraction=0.5)
    assert data.info.audio == AudioInfo(8000, 100) and data.info.target.kind == "class"
    with pytest.raises(ZooError, match="int16 PCM / 32768"):
        prepare_audio("a", RawAudio(waves.astype(np.int16), np.zeros(6), [], 8000, "clips"), seed=0,
                      val_fraction=0.5)


@pytest.mark.parametrize(("model", "data", "fragments"), [
    ("gpt-nano", "digits", ("'gpt-nano' (plugin 'lm') trains on text data", "8×8 grayscale images")),
    ("cnn", "pydoc-topics", ("'cnn' (plugin 'cnn') trains on image data", "holds text")),
    ("tab-mlp", "digits", ("'tab-mlp' (plugin 'tabular') trains on features data",)),
])
def test_a_model_refuses_data_of_another_kind_before_a_run_folder(model: str, data: str, fragments: tuple,
                                                                   tmp_path: Path) -> None:
    result = invoke("train", model, "--data", data, "--smoke", "--out", str(tmp_path / "runs"))
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "runs").exists()


CLASS_ROWS_PLUGIN = '''
import numpy as np
from zoo.data import DataInfo, DataSplits, FeatureInfo
from zoo.hookspecs import hookimpl
from zoo.specs import DatasetSpec


def rows(*, seed, val_fraction):
    info = DataInfo(name="class-rows", num_classes=2, class_names=["a", "b"], kind="features",
                    features=FeatureInfo(["x", "y"], [0.0, 0.0], [1.0, 1.0]))
    x = np.zeros((20, 2), np.float32)
    return DataSplits(info, x[:16], np.arange(16) % 2, x[16:], np.arange(4) % 2)


def classless(*, seed, val_fraction):
    info = DataInfo(name="classless", channels=1, height=8, width=8, mean=[0.0], std=[1.0])  # num_classes 0
    x = np.zeros((20, 1, 8, 8), np.float32)
    return DataSplits(info, x[:16], np.zeros(16, np.int64), x[16:], np.zeros(4, np.int64))


@hookimpl
def register_datasets(register):
    register(DatasetSpec(name="class-rows", summary="feature rows with class labels", loader=rows))
    register(DatasetSpec(name="classless", summary="images without classes", loader=classless))
'''


def test_a_regressor_refuses_class_labels_and_image_flags_are_refused(make_plugin, tmp_path: Path) -> None:
    make_plugin("rows", CLASS_ROWS_PLUGIN)
    out = tmp_path / "runs"
    assert_one_line_error(invoke("train", "tab-mlp", "--data", "class-rows", "--out", str(out)),
                          "learns real targets", "has 2 classes (a, b) (target kind 'class')")
    assert_one_line_error(invoke("train", "tab-mlp", "--data", "class-rows", "--channels", "3", "--image-size",
                                 "4x4", "--out", str(out)),
                          "--channels and --image-size convert images", "'class-rows' (plugin 'rows')")
    assert_one_line_error(invoke("train", "cnn", "--data", "classless", "--out", str(out)),
                          "'cnn' (plugin 'cnn') learns class targets", "has no targets")
    assert_one_line_error(invoke("train", "tab-mlp", "--augment", "--out", str(out)),
                          "--augment is for images only", "rows of 10 features")
    assert_one_line_error(invoke("train", "gpt-nano", "--image-size", "4x4", "--out", str(out)),
                          "--image-size convert", "gives text")
    assert not out.exists()


def test_data_args_reach_the_loader_and_unknown_ones_are_refused(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i * 0.5}\n" for i in range(20)))
    out = tmp_path / "runs"
    assert_one_line_error(invoke("train", "tab-linear", "--data", f"csv:{table}", "--data-arg", "colour=red",
                                 "--out", str(out)), "takes no --data-arg colour=", "features, target")
    assert_one_line_error(invoke("train", "tab-linear", "--data", f"csv:{table}", "--data-arg", "target=z",
                                 "--out", str(out)), "names no column", "a, b, y")
    result = zoo.train("tab-linear", dataset=f"csv:{table}", data_args={"target": "a"}, epochs=1, out=out,
                       progress=False)
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["data_options"]["args"] == {"target": "a"}
    assert config["data"]["target"]["names"] == ["a"]
    assert config["data"]["features"]["names"] == ["b", "y"]


FLOAT64_ROWS_PLUGIN = '''
import numpy as np
from zoo.data import DataInfo, DataSplits, FeatureInfo, TargetInfo
from zoo.hookspecs import hookimpl
from zoo.specs import DatasetSpec


def rows(*, seed, val_fraction):
    info = DataInfo(name="rows64", kind="features", features=FeatureInfo(["x", "y"], [0.0, 0.0], [1.0, 1.0]),
                    target=TargetInfo("real", ["t"], [0.0], [1.0]))
    x, y = np.zeros((20, 2), np.float64), np.zeros((20, 1), np.float32)
    return DataSplits(info, x[:16], y[:16], x[16:], y[16:])


@hookimpl
def register_datasets(register):
    register(DatasetSpec(name="rows64", summary="float64 feature rows", loader=rows))
'''


def test_first_batch_blames_the_dataset_for_float64_samples(make_plugin, tmp_path: Path) -> None:
    make_plugin("rows64", FLOAT64_ROWS_PLUGIN)
    with pytest.raises(ZooError, match=r"dataset 'rows64' of plugin 'rows64': training samples are float64"):
        zoo.train("tab-linear", dataset="rows64", epochs=1, out=tmp_path, progress=False)


def test_info_counts_flops_per_row() -> None:
    result = invoke("info", "tab-mlp", "--flops")
    assert result.exit_code == 0 and "FLOPs per row at 10" in result.output
