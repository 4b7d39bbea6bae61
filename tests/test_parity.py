"""The comparison rule, and that verification catches a graph that computes something else."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from zoo.bundles.parity import compare, top1_agreement
from zoo.cli import cli
from zoo.digest import file_sha256 as sha256


def test_element_fails_only_when_it_misses_both_tolerances() -> None:
    ref = np.array([1000.0, 0.0], dtype=np.float32)
    # 1e-3 on 1000 is within rtol; 1e-3 on 0 misses both tolerances
    assert compare(ref, ref + np.float32(1e-3), atol=1e-5, rtol=1e-5)["passed"] is False
    assert compare(ref, ref + np.array([5e-3, 5e-6], np.float32), atol=1e-5, rtol=1e-5)["passed"]
    bad = compare(ref, ref + np.array([0.0, 2e-5], np.float32), atol=1e-5, rtol=1e-5)
    assert not bad["passed"] and bad["mismatched"] == 1 and bad["max_abs_diff"] > 1e-5


def test_shape_mismatch_and_nan_fail() -> None:
    assert not compare(np.zeros((2, 3)), np.zeros((3, 2)), atol=1, rtol=1)["passed"]
    assert not compare(np.zeros(3), np.array([0, np.nan, 0]), atol=1, rtol=1)["passed"]


def test_top1_agreement() -> None:
    a = np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32)
    b = np.array([[1, 0], [0, 1], [0, 1]], dtype=np.float32)
    assert top1_agreement(a, b) == 2 / 3


def test_verify_catches_a_graph_that_differs_from_pytorch(train_briefly, tmp_path: Path) -> None:
    """Perturb one weight inside the exported graph (and re-sign the manifest, as a buggy exporter would)."""
    import onnx
    from onnx import numpy_helper

    from zoo.bundles import export_run

    result = export_run(train_briefly("cnn").run_dir, out=tmp_path)
    path = result.bundle_dir / "model" / "model.onnx"
    model = onnx.load(str(path))
    init = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    array = numpy_helper.to_array(init).copy()
    array.flat[0] += 0.05
    init.CopyFrom(numpy_helper.from_array(array, init.name))
    onnx.save(model, str(path))
    manifest = json.loads((result.bundle_dir / "manifest.json").read_text())
    manifest["files"]["model/model.onnx"] = sha256(path)
    (result.bundle_dir / "manifest.json").write_text(json.dumps(manifest))

    out = CliRunner().invoke(cli, ["verify", str(result.bundle_dir)])
    assert out.exit_code == 1, out.output
    assert "FAIL" in out.output and "parity: FAILED" in out.output
    # the stored test vectors catch it too, without PyTorch
    alone = CliRunner().invoke(cli, ["verify", str(result.bundle_dir), "--bundle-only"])
    assert alone.exit_code == 1 and "test_data_set_0" in alone.output and "parity: FAILED" in alone.output


def test_report_gives_mean_p99_and_the_smallest_passing_tolerance() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(1000).astype(np.float32)
    got = ref + rng.normal(0, 1e-4, 1000).astype(np.float32)
    stats = compare(ref, got, atol=1e-5, rtol=1e-5)
    assert not stats["passed"]
    assert stats["mean_abs_diff"] <= stats["p99_abs_diff"] <= stats["max_abs_diff"]
    assert stats["mean_rel_diff"] <= stats["p99_rel_diff"] <= stats["max_rel_diff"]
    # the reported smallest tolerances really are enough (and just enough)
    assert compare(ref, got, atol=stats["min_passing_atol"], rtol=1e-5)["passed"]
    assert compare(ref, got, atol=1e-5, rtol=stats["min_passing_rtol"])["passed"]
    assert not compare(ref, got, atol=0.9 * stats["min_passing_atol"], rtol=1e-5)["passed"]
    assert not compare(ref, got.astype(np.float64), atol=1, rtol=1)["passed"], "dtype must match"


def test_a_gpu_check_process_that_dies_is_one_clear_error(tmp_path: Path, monkeypatch) -> None:
    import pytest

    from zoo import ort
    from zoo.errors import ZooError

    monkeypatch.setattr(ort.sys, "executable", "/bin/false")
    with pytest.raises(ZooError, match=r"the CUDAExecutionProvider check process died \(exit 1\)"):
        ort.run_graph(tmp_path / "model.onnx", ort.CUDA, [{"x": np.zeros(1, np.float32)}])
