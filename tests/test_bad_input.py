"""Broken files and bad requests: one clear line, non-zero exit, nothing the user had is lost."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from zoo.cli import cli

from .helpers import assert_one_line_error


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def run_copy(train_briefly, tmp_path: Path) -> Path:
    """A private copy of a trained CNN run, safe to damage."""
    return Path(shutil.copytree(train_briefly("cnn").run_dir, tmp_path / "run"))




def test_truncated_weights(run_copy: Path, tmp_path: Path) -> None:
    weights = run_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert_one_line_error(invoke("export", run_copy, "--out", tmp_path / "ex"), "truncated or corrupted")
    assert not (tmp_path / "ex" / run_copy.name).exists()


def test_garbage_weights(run_copy: Path, tmp_path: Path) -> None:
    (run_copy / "model.safetensors").write_bytes(b"\x00" * 4096)
    assert_one_line_error(invoke("export", run_copy, "--out", tmp_path / "ex"), "truncated or corrupted")


def test_weights_that_do_not_fit_the_model(run_copy: Path, train_briefly, tmp_path: Path) -> None:
    other = train_briefly("resnet-small").run_dir / "model.safetensors"
    shutil.copy(other, run_copy / "model.safetensors")
    assert_one_line_error(invoke("export", run_copy, "--out", tmp_path / "ex"), "do not fit model 'cnn'")


def test_missing_weights_and_broken_config(run_copy: Path, tmp_path: Path) -> None:
    (run_copy / "config.json").write_text("{not json")
    assert_one_line_error(invoke("export", run_copy), "corrupted")
    (run_copy / "config.json").write_text(json.dumps({"model": "cnn"}))
    assert_one_line_error(invoke("export", run_copy), "was not written by this zoo")


def test_unknown_model_in_a_run(run_copy: Path) -> None:
    config = json.loads((run_copy / "config.json").read_text())
    config["model"] = "gone-model"
    (run_copy / "config.json").write_text(json.dumps(config))
    assert_one_line_error(invoke("export", run_copy), "unknown model 'gone-model'")


def test_export_never_overwrites_without_force(run_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "ex"
    assert invoke("export", run_copy, "--out", out).exit_code == 0
    bundle = out / run_copy.name
    marker = bundle / "notes.txt"
    marker.write_text("mine")
    assert_one_line_error(invoke("export", run_copy, "--out", out), "already exists", "--force")
    assert marker.read_text() == "mine"
    assert invoke("export", run_copy, "--out", out, "--force").exit_code == 0
    assert not marker.exists() and (bundle / "model" / "model.onnx").exists()
    assert [p.name for p in out.iterdir()] == [run_copy.name], "no staging folders left behind"


def test_tampered_bundle_is_refused(run_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "ex"
    assert invoke("export", run_copy, "--out", out).exit_code == 0
    graph = out / run_copy.name / "model" / "model.onnx"
    data = bytearray(graph.read_bytes())
    data[-10] ^= 0xFF
    graph.write_bytes(bytes(data))
    assert_one_line_error(invoke("verify", out / run_copy.name), "model/model.onnx does not match its manifest hash")
    graph.unlink()
    assert_one_line_error(invoke("verify", out / run_copy.name), "model/model.onnx is missing")


def test_bundle_whose_run_moved_verifies_alone_and_asks_for_run(run_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "ex"
    assert invoke("export", run_copy, "--out", out).exit_code == 0
    moved = run_copy.rename(tmp_path / "moved-run")
    alone = invoke("verify", out / run_copy.name)
    assert alone.exit_code == 0 and "pass --run" in alone.output and "parity: PASSED" in alone.output
    with_run = invoke("verify", out / run_copy.name, "--run", moved)
    assert with_run.exit_code == 0 and "not compared with PyTorch" not in with_run.output
    assert_one_line_error(invoke("verify", out / run_copy.name, "--run", tmp_path / "nowhere"), "nowhere")


def test_unknown_or_unavailable_provider(run_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "ex"
    assert invoke("export", run_copy, "--out", out).exit_code == 0
    assert_one_line_error(invoke("verify", out / run_copy.name, "--providers", "tpu"), "unknown provider 'tpu'")


def test_onnxruntime_installed_twice_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    from zoo import ort
    from zoo.errors import ZooError

    real_version = metadata.version

    def fake_version(name: str) -> str:
        if name in ("onnxruntime", "onnxruntime-gpu"):
            return "1.0"
        return real_version(name)

    monkeypatch.setattr(ort.metadata, "version", fake_version)
    with pytest.raises(ZooError, match=r"onnxruntime and onnxruntime-gpu are installed together.*pip uninstall"):
        ort.import_onnxruntime()


def test_export_that_fails_parity_exits_1_and_writes_no_bundle(
    run_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zoo_cnn.family import ClassifierFamily

    original = ClassifierFamily.graphs

    def impossible_tolerance(self, model, data):  # type: ignore[no-untyped-def]
        graphs = original(self, model, data)
        for graph in graphs:
            graph.atol = graph.rtol = 1e-15
        return graphs

    monkeypatch.setattr(ClassifierFamily, "graphs", impossible_tolerance)
    out = tmp_path / "ex"
    result = invoke("export", run_copy, "--out", out)
    assert result.exit_code == 1, result.output
    assert "parity: FAILED" in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: exported graphs do not match PyTorch")
    assert list(out.iterdir()) == [], "a failed export leaves nothing behind"


def test_killed_export_leaves_no_bundle_and_the_next_export_cleans_up(run_copy: Path, tmp_path: Path) -> None:
    """SIGKILL an export while it is writing its staging folder: no bundle appears, a later export works."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "ex"
    out.mkdir()
    process = subprocess.Popen([sys.executable, "-m", "zoo", "export", str(run_copy), "--out", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = out / f".{run_copy.name}.staging-{process.pid}"
    deadline = time.monotonic() + 120
    while not staging.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert staging.exists(), "the export should have started staging"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / run_copy.name).exists(), "a killed export publishes nothing"
    assert invoke("export", run_copy, "--out", out).exit_code == 0
    assert [p.name for p in out.iterdir()] == [run_copy.name], "the abandoned staging folder was removed"
