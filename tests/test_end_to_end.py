"""The main job as a user runs it: train the CNN with its defaults on digits, export, verify."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from zoo.cli import cli


def test_cnn_defaults_reach_97_percent_and_export_with_exact_parity(tmp_path: Path) -> None:
    runner = CliRunner()
    trained = runner.invoke(cli, ["train", "cnn", "--out", str(tmp_path / "runs"), "--json"])
    assert trained.exit_code == 0, trained.output
    result = json.loads(trained.output[trained.output.index("{"):])
    run_dir = Path(result["run_dir"])
    assert result["metrics"]["val_accuracy"] >= 0.97
    for name in ("config.json", "metrics.jsonl", "summary.json", "model.safetensors"):
        assert (run_dir / name).is_file(), name
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == list(range(1, result["epochs"] + 1))

    exported = runner.invoke(cli, ["export", str(run_dir), "--out", str(tmp_path / "exports"), "--json"])
    assert exported.exit_code == 0, exported.output
    bundle = json.loads(exported.output)
    cpu = bundle["parity"]["graphs"]["model"]["CPUExecutionProvider"]
    assert bundle["parity"]["passed"] and cpu["atol"] == 1e-5 and cpu["rtol"] == 1e-5
    assert cpu["top1_agreement"] == 1.0
    bundle_dir = Path(bundle["bundle_dir"])
    assert {p.name for p in bundle_dir.iterdir()} == {"model", "manifest.json", "parity.json", "card.md"}
    assert {p.name for p in (bundle_dir / "model").iterdir()} == {
        "model.onnx", "test_data_set_0", "test_data_set_1", "test_data_set_2"}

    verified = runner.invoke(cli, ["verify", str(bundle_dir), "--json"])
    assert verified.exit_code == 0, verified.output
    report = json.loads(verified.output)
    assert report["passed"]
    for provider in report["graphs"]["model"].values():
        assert {"max_abs_diff", "max_rel_diff"} <= set(provider)
    table = runner.invoke(cli, ["verify", str(bundle_dir), "--providers", "cpu"])
    assert "parity: PASSED" in table.output and "top-1 agreement" in table.output


def test_onnx_metadata_and_manifest_describe_the_model(train_briefly, tmp_path: Path) -> None:
    import onnx

    from zoo.bundles import export_run
    from zoo.digest import file_sha256 as sha256

    run = train_briefly("cnn")
    result = export_run(run.run_dir, out=tmp_path)
    model = onnx.load(str(result.bundle_dir / "model" / "model.onnx"))
    props = {p.key: p.value for p in model.metadata_props}
    assert props["model"] == "cnn" and props["family"] == "classifier" and props["run_id"] == run.run_dir.name
    assert json.loads(props["class_labels"]) == [str(i) for i in range(10)]
    assert json.loads(props["input_shape"]) == ["batch", 1, 8, 8]
    assert set(json.loads(props["normalization"])) >= {"scale", "mean", "std"}
    assert "zoo_version" in props
    manifest = json.loads((result.bundle_dir / "manifest.json").read_text())
    assert set(manifest["versions"]) >= {"torch", "onnx", "onnxruntime"}
    for name, digest in manifest["files"].items():
        assert sha256(result.bundle_dir / name) == digest
