"""The built-in regressor family: a non-image task trained, exported, verified on every runtime, reported and
compared through the same tools as the image families."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli

from .helpers import assert_one_line_error


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("regressor")
    return zoo.train("tab-mlp", epochs=3, out=out / "runs", progress=False)


def test_errors_in_target_units_beside_the_baseline(trained) -> None:
    metrics = trained.summary["metrics"]
    assert {"val_mae", "val_rmse", "val_r2", "val_baseline_mae", "val_baseline_rmse"} <= set(metrics)
    assert metrics["val_rmse"] > 1.0, "errors are in the target's units (diabetes progression), not standardised"
    assert metrics["val_rmse"] < metrics["val_baseline_rmse"], "three epochs already beat predicting the mean"
    config = json.loads((trained.run_dir / "config.json").read_text())
    target = config["data"]["target"]
    assert target["kind"] == "real" and target["names"] == ["progression"] and 100 < target["mean"][0] < 200
    assert config["model_args"]["target_mean"] == target["mean"], "the statistics reach the model as arguments"
    assert len(config["data"]["features"]["names"]) == 10


def test_export_verify_every_runtime_report_and_compare(trained, tmp_path: Path) -> None:
    result = zoo.export(trained.run_dir, out=tmp_path / "exports", providers=["cpu"])
    assert result.parity["passed"]
    meta = {k: json.loads(v) if v[:1] in "[{" else v for k, v in result.manifest["graphs"]["model"]["metadata"].items()}
    assert meta["data_kind"] == "features" and meta["target"]["names"] == ["progression"]
    assert meta["normalization"]["formula"] == "(x[i] - mean[i]) / std[i]" and "pixel_unit" not in meta
    card = (result.bundle_dir / "card.md").read_text()
    assert "rows of 10 features" in card and "real values of 'progression'" in card and "images" not in card
    verified = invoke("verify", result.bundle_dir, "--runtimes", "all")
    assert verified.exit_code == 0, verified.output
    assert "runtimes: PASSED" in verified.output
    report = invoke("report", trained.run_dir, "--out", tmp_path / "report.html")
    assert report.exit_code == 0, report.output
    page = (tmp_path / "report.html").read_text()
    assert "Regression" in page and "baseline RMSE" in page and "predicted (up) against true" in page
    second = zoo.train("tab-linear", epochs=1, out=trained.run_dir.parent, progress=False)
    runs = invoke("runs", "--root", trained.run_dir.parent)
    assert runs.exit_code == 0 and "val_rmse=" in runs.output
    compared = invoke("runs", "--compare", trained.run_dir, second.run_dir)
    assert compared.exit_code == 0 and "val_r2" in compared.output


def test_csv_target_column_and_broken_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = x @ np.array([2.0, -1.0, 0.5]) + 10
    table = tmp_path / "rows.csv"
    table.write_text("a,b,c,y\n" + "".join(f"{r[0]},{r[1]},{r[2]},{t}\n" for r, t in zip(x, y, strict=True)))
    run = zoo.train("tab-linear", dataset=f"csv:{table}", data_args={"target": "y"}, epochs=30, lr=0.05,
                    out=tmp_path / "runs", progress=False)
    assert run.summary["metrics"]["val_r2"] > 0.9, "a linear model fits a linear table"
    broken = tmp_path / "broken.csv"
    broken.write_text("a,y\n1,2\n3,oops\n4,5\n")
    assert_one_line_error(invoke("train", "tab-linear", "--data", f"csv:{broken}", "--out", tmp_path / "r2"),
                          "row 3, column 'y' is 'oops', not a number")
    assert_one_line_error(invoke("train", "tab-linear", "--data", f"csv:{tmp_path / 'missing.csv'}", "--out",
                                 tmp_path / "r2"), "no such file")
    assert not (tmp_path / "r2").exists()
