"""The `zoo` command through click's runner (and one real process for import-time checks)."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from zoo.cli import cli


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_list_table_and_json_contract() -> None:
    out = run("list")
    assert out.exit_code == 0 and "cnn" in out.output and "resnet-small" in out.output
    rows = json.loads(run("list", "--json").output)
    assert {"name", "family", "plugin", "summary"} <= set(rows[0])
    assert [r["name"] for r in json.loads(run("list", "res*", "--json").output)] == ["resnet-small", "resnet18",
                                                                                 "resnet34", "resnet50"]
    assert json.loads(run("list", "--family", "classifier", "--json").output)


def test_list_unknown_family_is_one_line_error() -> None:
    out = run("list", "--family", "classifierr")
    assert out.exit_code == 2
    assert "unknown family 'classifierr'; did you mean 'classifier'?" in out.output


def test_info_and_plugins() -> None:
    info = json.loads(run("info", "cnn", "--json").output)
    assert info["family"] == "classifier" and info["input"] == {"channels": 1, "height": 8, "width": 8}
    assert "momentum=0.9" in run("info", "cnn").output
    plugins = json.loads(run("plugins", "--json").output)
    assert {p["name"] for p in plugins} >= {"cnn", "digits"}
    assert all(p["status"] == "loaded" for p in plugins)


def test_unknown_model_is_one_clear_line_without_traceback() -> None:
    out = run("info", "resnet-smal")
    assert out.exit_code == 2
    assert out.output.strip().startswith("Error: unknown model 'resnet-smal'; did you mean 'resnet-small'")


def test_debug_shows_the_traceback() -> None:
    out = run("--debug", "info", "resnet")
    assert out.exit_code != 0 and out.exception is not None


def test_bad_training_flags(tmp_path) -> None:
    for flags, message in [
        (["--epochs", "0"], "--epochs must be a positive whole number, got 0"),
        (["--batch-size", "-4"], "--batch-size must be a positive whole number, got -4"),
        (["--lr", "0"], "--lr must be a positive number, got 0.0"),
        (["--lr", "-1e-3"], "--lr must be a positive number"),
        (["--data", "mnistt"], "unknown dataset 'mnistt'"),
        (["--hp", "nonsense=1"], "unknown hyperparameter nonsense"),
        (["--hp", "novalue"], "--hp takes KEY=VALUE"),
    ]:
        out = run("train", "cnn", "--out", str(tmp_path / "runs"), *flags)
        assert out.exit_code == 2, (flags, out.output)
        assert message in out.output, (flags, out.output)
        assert len(out.output.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "bad input wrote a run"


def test_export_and_verify_on_wrong_folders(tmp_path) -> None:
    out = run("export", str(tmp_path / "missing"))
    assert out.exit_code == 2 and "does not exist" in out.output
    out = run("export", str(tmp_path))
    assert out.exit_code == 2 and "is not a zoo run directory" in out.output
    out = run("verify", str(tmp_path))
    assert out.exit_code == 2 and "is not a zoo bundle" in out.output


def test_help_list_and_plugins_never_import_torch() -> None:
    for args in (["--help"], ["list"], ["plugins"], ["info", "cnn"], ["info", "vit-base"]):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "zoo", *args],
                              capture_output=True, text=True, check=True)
        imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
        assert "torch" not in imported, args
