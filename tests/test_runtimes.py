"""Pixel units, independent runtimes (`zoo verify --runtimes`) and the portable export they rely on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from zoo.bundles import export_run
from zoo.bundles.vectors import read_test_set
from zoo.cli import cli

from .helpers import assert_one_line_error


@pytest.fixture(scope="module")
def cnn_bundle(train_briefly: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The briefly trained CNN exported with its int8 and fp16 variants."""
    return export_run(train_briefly("cnn").run_dir, out=tmp_path_factory.mktemp("bundles"), providers=["cpu"],
                      quantize="int8", fp16=True).bundle_dir


def raw_digits(bundle: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The bundle's real validation samples back in the digits' raw unit (0–16), and their stored logits."""
    meta = json.loads((bundle / "manifest.json").read_text())["graphs"]["model"]["metadata"]
    norm = json.loads(meta["normalization"])
    (x,), (logits,) = read_test_set(bundle / "model" / "test_data_set_2")
    mean = np.asarray(norm["mean"], dtype=np.float32)[None, :, None, None]
    std = np.asarray(norm["std"], dtype=np.float32)[None, :, None, None]
    return (x * std + mean) / np.float32(norm["scale"]), logits, meta


def test_digits_declare_their_pixel_unit_and_the_bundle_records_it(cnn_bundle: Path) -> None:
    from zoo.data import load_dataset

    assert load_dataset("digits").info.pixel_max == 16.0
    manifest = json.loads((cnn_bundle / "manifest.json").read_text())
    assert manifest["pixel_unit"]["pixel_max"] == 16.0
    norm = json.loads(manifest["graphs"]["model"]["metadata"]["normalization"])
    assert norm["pixel_max"] == 16.0 and norm["from_8bit"] == pytest.approx(16 / 255)
    assert "16 is white" in (cnn_bundle / "card.md").read_text()


def test_predict_on_8bit_pngs_of_validation_digits_agrees_with_the_stored_outputs(cnn_bundle: Path,
                                                                                   tmp_path: Path) -> None:
    from PIL import Image

    from zoo.predict import predict_images

    raw, logits, meta = raw_digits(cnn_bundle)
    assert np.abs(raw - raw.round()).max() < 1e-3 and raw.max() <= 16  # really the 0–16 digits
    files = []
    for i, image in enumerate(raw.round()):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.round(image[0] * 255 / 16).astype(np.uint8), "L").save(path)  # an ordinary 8-bit PNG
        files.append(str(path))
    results = predict_images(cnn_bundle, files)
    assert [r["index"] for r in results] == logits.argmax(1).tolist()  # every image
    labels = json.loads(meta["class_labels"])
    probabilities = np.array([[r["probabilities"][c] for c in labels] for r in results])
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    assert np.abs(probabilities - expected).max() < 0.02  # 8-bit rounding of 0–16 values only


def test_bundles_without_a_recorded_unit_fall_back_to_one_over_scale() -> None:
    from zoo.data.units import from_8bit_factor, white_value
    from zoo.errors import ZooError

    assert from_8bit_factor({"scale": 1 / 16}) == pytest.approx(16 / 255)
    assert from_8bit_factor({"scale": 1 / 255, "pixel_max": 255.0}) == pytest.approx(1.0)
    with pytest.raises(ZooError, match="pixel_max"):
        white_value(0.0, 1.0)


def test_exported_graphs_are_portable(cnn_bundle: Path) -> None:
    import onnx

    for name in ("model", "model.int8", "model.fp16"):
        model = onnx.load(str(cnn_bundle / name / "model.onnx"))
        assert not model.graph.value_info, name  # no batch-bound intermediate shapes
        opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        assert opset >= (19 if name.endswith("int8") else 18), name
        if name.endswith("fp16"):
            assert "Gemm" not in {n.op_type for n in model.graph.node}  # biased Gemm as MatMul + Add (tract loads it)


def test_verify_runtimes_pass_every_graph_on_every_runtime(cnn_bundle: Path) -> None:
    out = CliRunner().invoke(cli, ["verify", str(cnn_bundle), "--bundle-only", "--providers", "cpu", "--runtimes",
                                   "onnxruntime,reference,openvino,tract", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)["runtimes"]
    runtimes, graphs = ("onnxruntime", "reference", "openvino", "tract"), ("model", "model.int8", "model.fp16")
    assert {(r["runtime"], r["graph"]) for r in rows} == {(rt, g) for rt in runtimes for g in graphs}
    assert all(r["status"] == "passed" for r in rows), rows


def test_a_graph_a_runtime_cannot_load_is_unsupported_with_its_reason_not_failed(cnn_bundle: Path,
                                                                                 tmp_path: Path) -> None:
    import onnx
    from onnx import helper

    from zoo.bundles.graph_checks import Case, GraphCheck
    from zoo.bundles.runtime_checks import check_graph_on, format_runtimes

    model = helper.make_model(helper.make_graph(
        [helper.make_node("NoSuchOp", ["x"], ["y"], domain="zoo.test")], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 2])]),
        opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("zoo.test", 1)])
    path = tmp_path / "odd.onnx"
    onnx.save(model, str(path))
    x = np.ones((1, 2), np.float32)
    check = GraphCheck("odd", path, ["x"], ["y"], 1e-5, 1e-5, cases=[Case("one", [x], [x])])
    row = check_graph_on("reference", check)
    assert row.status == "unsupported" and "NoSuchOp" in row.reason
    assert "unsupported" in format_runtimes([row]) and "FAILED" not in format_runtimes([row])
    # and a graph that runs but computes something else fails
    wrong = GraphCheck("model", cnn_bundle / "model" / "model.onnx", ["input"], ["logits"], 1e-5, 1e-5)
    (inputs,), (logits,) = read_test_set(cnn_bundle / "model" / "test_data_set_0")
    wrong.input_names = [json.loads((cnn_bundle / "manifest.json").read_text())["graphs"]["model"]["inputs"][0]["name"]]
    wrong.cases = [Case("shifted", [inputs], [logits + 1.0])]
    assert check_graph_on("tract", wrong).status == "failed"


def test_an_unknown_or_missing_runtime_is_a_one_line_error(cnn_bundle: Path, monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    import sys

    out = CliRunner().invoke(cli, ["verify", str(cnn_bundle), "--bundle-only", "--runtimes", "tensorflow"])
    assert_one_line_error(out, "unknown runtime 'tensorflow'")
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed
    out = CliRunner().invoke(cli, ["verify", str(cnn_bundle), "--bundle-only", "--runtimes", "openvino"])
    assert_one_line_error(out, "openvino is not installed", "plugzoo[openvino]")


def test_openvino_at_its_default_precision_is_shown_and_never_decides(cnn_bundle: Path) -> None:
    """OpenVINO's own default (bf16 on CPUs that have it) is what a user who does not pin f32 gets: its own rows,
    for information; the verdict stays with the runtimes that are judged."""
    out = CliRunner().invoke(cli, ["verify", str(cnn_bundle), "--bundle-only", "--providers", "cpu", "--runtimes",
                                   "openvino,openvino-default", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)["runtimes"]
    assert {r["runtime"] for r in rows} == {"openvino", "openvino-default"}
    assert all(r["status"] in ("passed", "failed") for r in rows if r["runtime"] == "openvino-default")
    text = CliRunner().invoke(cli, ["verify", str(cnn_bundle), "--bundle-only", "--providers", "cpu", "--runtimes",
                                    "openvino-default"]).output
    assert "openvino-default: for information only" in text
