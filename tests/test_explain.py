"""`zoo explain`: attributions through Captum for classifiers and language models, and their checks
(IG completeness, model-parameter randomisation), each shown to fail for a deliberately broken attribution."""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import zoo
from tests.helpers import assert_one_line_error
from zoo.cli import cli
from zoo.explain import checks
from zoo.explain.attribute import attribute_images
from zoo.explain.source import black_image, open_subject

pytest.importorskip("captum")

#: Small settings for the real-size vision models (as tests/test_vision.py): 3×16×16 digits, small stems.
SMALL = {"image_size": "16x16", "channels": 3, "batch_size": 8, "lr": 0.01, "smoke": True, "progress": False}


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args])


def explain_json(*args: str) -> dict[str, Any]:
    result = invoke("explain", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture(scope="module")
def vision_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("vision-runs")
    return {name: zoo.train(name, **SMALL, model_args={"stem": "small"}, out=out, max_steps=2).run_dir
            for name in ("resnet18", "vit-tiny")}


def test_cnn_integrated_gradients_are_complete_and_written_as_png(train_briefly: Any, tmp_path: Path) -> None:
    run = train_briefly("cnn").run_dir
    data = explain_json(run, "val:0", "val:7", "--method", "ig")
    assert [e["input"] for e in data["explanations"]] == ["val:0", "val:7"]
    for item in data["explanations"]:
        assert item["shape"] == [1, 8, 8] and np.asarray(item["attributions"]).shape == (1, 8, 8)
        (check,) = item["checks"]
        assert check["name"] == "completeness" and check["passed"], check
        assert "Captum's convergence delta" in check["detail"]
    result = invoke("explain", run, "val:0", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    png = tmp_path / "val-0-ig.png"
    assert png.read_bytes().startswith(b"\x89PNG") and "completeness: passed" in result.output


@pytest.mark.parametrize("method", ["saliency", "occlusion", "gradcam"])
def test_cnn_other_methods(train_briefly: Any, method: str) -> None:
    item = explain_json(train_briefly("cnn").run_dir, "val:3", "--method", method, "--target", "3")["explanations"][0]
    values = np.asarray(item["attributions"])
    assert item["target"] == 3 and item["target_name"] == "3"
    assert values.shape == (1, 8, 8) and np.isfinite(values).all() and np.abs(values).sum() > 0


def test_completeness_fails_for_a_broken_attribution(train_briefly: Any) -> None:
    subject = open_subject(train_briefly("cnn").run_dir)
    import torch

    x = torch.from_numpy(subject.images(["val:1"]))
    baseline = torch.from_numpy(subject.baseline())
    with torch.no_grad():
        target = int(subject.model(x).argmax())
        out, base = float(subject.model(x)[0, target]), float(subject.model(baseline)[0, target])
    found = attribute_images(subject.model, subject.family, x, [target], "ig", baseline)
    assert checks.completeness(found.values[0], out, base).passed
    assert not checks.completeness(found.values[0] * 0.5, out, base).passed  # half the attribution: caught
    assert not checks.completeness(found.values[0], out, base + 1.0).passed  # the wrong baseline output: caught


def test_randomisation_check_passes_for_saliency_and_fails_for_an_input_only_attribution(train_briefly: Any) -> None:
    subject = open_subject(train_briefly("cnn").run_dir)
    import torch

    images = subject.images([f"val:{i}" for i in range(4)])
    x, baseline = torch.from_numpy(images), torch.from_numpy(subject.baseline())
    targets = [0, 1, 2, 3]
    clone, layers = checks.randomised_copy(subject.model)
    assert layers == ["fc2", "fc1"]  # the top half of cnn's four layers, nearest the output first
    assert not torch.equal(clone.fc2.weight, subject.model.fc2.weight)
    assert torch.equal(clone.conv1.weight, subject.model.conv1.weight)
    trained = attribute_images(subject.model, subject.family, x, targets, "saliency", baseline).values
    randomised = attribute_images(clone, subject.family, x, targets, "saliency", baseline).values
    results = [checks.randomisation(trained[i], randomised[i], layers) for i in range(4)]
    assert all(r.passed for r in results), [r.detail for r in results]
    # an "attribution" that is the input itself (an edge detector would do the same) ignores the model: caught
    broken = [checks.randomisation(images[i], images[i], layers) for i in range(4)]
    assert not any(r.passed for r in broken) and broken[0].value == pytest.approx(1.0)


def test_sanity_flag_runs_the_randomisation_check(train_briefly: Any) -> None:
    item = explain_json(train_briefly("cnn").run_dir, "val:2", "--method", "gradcam", "--sanity")["explanations"][0]
    assert [c["name"] for c in item["checks"]] == ["randomisation"]
    assert -1.0 <= item["checks"][0]["value"] <= 1.0


def test_bundle_explains_what_the_deployed_graph_sees(train_briefly: Any, export_briefly: Any,
                                                      tmp_path: Path) -> None:
    from PIL import Image

    from zoo.data import load_run_data
    from zoo.toolkit.images import to_pixels

    run = train_briefly("cnn").run_dir
    bundle = export_briefly("cnn").bundle_dir
    data = load_run_data(json.loads((run / "config.json").read_text()))
    pixels = to_pixels(data.x_val[:1], data.info.mean, data.info.std)[0, 0]
    path = tmp_path / "digit.png"
    Image.fromarray((pixels * 255).round().astype(np.uint8)).save(path)
    from_bundle = explain_json(bundle, path)["explanations"][0]
    subject = open_subject(bundle)
    from zoo.predict import preprocess

    assert subject.meta["normalization"] == json.loads((bundle / "manifest.json").read_text())[
        "graphs"]["model"]["metadata"]["normalization"]
    np.testing.assert_array_equal(subject.images([str(path)]), preprocess(path, subject.meta))
    assert from_bundle["checks"][0]["passed"]
    moved = invoke("explain", bundle, path, "--run", tmp_path / "nowhere")
    assert_one_line_error(moved, "is not here", "--run")


def test_resnet18_gradcam_and_vit_attention(vision_runs: dict[str, Path]) -> None:
    cam = explain_json(vision_runs["resnet18"], "val:0", "--method", "gradcam")["explanations"][0]
    assert np.asarray(cam["attributions"]).shape == (1, 16, 16)
    ig = explain_json(vision_runs["vit-tiny"], "val:0", "--method", "ig")["explanations"][0]
    assert np.asarray(ig["attributions"]).shape == (3, 16, 16) and ig["checks"][0]["passed"], ig["checks"]
    rollout = np.asarray(explain_json(vision_runs["vit-tiny"], "val:0", "--method", "attention")[
        "explanations"][0]["attributions"])
    assert rollout.shape == (1, 16, 16) and (rollout > 0).all()
    refused = invoke("explain", vision_runs["vit-tiny"], "val:0", "--method", "gradcam")
    assert_one_line_error(refused, "gradcam", "Family.gradcam_layer")
    refused = invoke("explain", vision_runs["resnet18"], "val:0", "--method", "attention")
    assert_one_line_error(refused, "attention", "Family.attention_maps")


def test_gpt_nano_token_attributions(train_briefly: Any, tmp_path: Path) -> None:
    run = train_briefly("gpt-nano").run_dir
    data = explain_json(run, "The for statement", "--method", "ig")
    item = data["explanations"][0]
    assert item["kind"] == "text" and "".join(item["tokens"]) == "The for statement"
    assert len(item["attributions"]) == len(item["tokens"])
    assert item["checks"][0]["name"] == "completeness" and item["checks"][0]["passed"], item["checks"]
    result = invoke("explain", run, "def f(x):", "--method", "occlusion", "--out", tmp_path, "--sanity")
    assert result.exit_code in (0, 1), result.output  # 1 only if the sanity check failed: it says which
    page = (tmp_path / "tokens-occlusion.html").read_text()
    spans = re.findall(r"<span [^>]*>([^<]*)</span>", page)
    assert html.unescape("".join(spans)) == "def f(x):"
    assert "randomisation:" in result.output
    refused = invoke("explain", run, "abc", "--method", "gradcam")
    assert_one_line_error(refused, "does not apply to a language model")


def test_bad_input_is_one_line(train_briefly: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = train_briefly("cnn").run_dir
    assert_one_line_error(invoke("explain", run, "val:1", "--target", "cat"), "not a class", "0, 1")
    assert_one_line_error(invoke("explain", run, "val:99999"), "val:INDEX")
    assert_one_line_error(invoke("explain", run, tmp_path / "missing.png"), "missing.png")
    assert_one_line_error(invoke("explain", tmp_path, "val:0"), "not a zoo run directory")
    (tmp_path / "val-0-ig.png").write_bytes(b"mine")
    assert_one_line_error(invoke("explain", run, "val:0", "--out", tmp_path), "--force")
    assert (tmp_path / "val-0-ig.png").read_bytes() == b"mine"
    monkeypatch.setitem(sys.modules, "captum", None)
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    assert_one_line_error(invoke("explain", run, "val:0", "--json"), "plugzoo[explain]")


def test_black_baseline_is_raw_zero() -> None:
    baseline = black_image([0.5, 0.25], [0.5, 0.25], (2, 3, 3))
    assert baseline.shape == (1, 2, 3, 3) and (baseline == -1.0).all()


@pytest.mark.parametrize("name", ["cnn", "gpt-nano"])
def test_report_shows_attributions(train_briefly: Any, tmp_path: Path, name: str) -> None:
    from zoo.reports.report import write_report

    page = write_report(train_briefly(name).run_dir, tmp_path / "report.html").read_text()
    assert "Attributions (Integrated Gradients)" in page
    assert "Not available" not in page.split("Attributions (Integrated Gradients)", 1)[1][:400]
    if name == "cnn":
        assert page.count("data:image/png") >= 8 + 2  # the eight overlays besides the other pictures
        assert "completeness error" in page and "FAILED" not in page
    else:
        assert "share of largest" in page
