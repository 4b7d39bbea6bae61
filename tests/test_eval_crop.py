"""The evaluation transform (``crop_pct``): resize to cover size / crop_pct keeping the aspect ratio, then the centre
crop, in data preparation, ``zoo predict`` and inside the deployed graph, checked against a reference written here
with Pillow (torchvision's ``Resize(int)`` + ``CenterCrop`` arithmetic) on non-square images.

The end-to-end case is the issue's: a folder laid out like the local Hugging Face cache holding a timm-layout resnet50
and vit-tiny with timm's ``config.json`` (mean, std, input size, crop_pct, interpolation), fine-tuned offline with
``--init hf:...`` on non-square images."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli

from .helpers import assert_one_line_error
from .test_hub_weights import cached_model, zoo_cli

#: Non-square sizes (height, width): taller and wider than square, odd margins, smaller and larger than the model.
SIZES = [(48, 36), (36, 52), (41, 70), (90, 33), (20, 27)]
SIZE = 32


def pillow_reference(path: Path, size: int, crop_pct: float | None, interpolation: str = "bicubic") -> np.ndarray:
    """H×W×3 uint8 as timm's eval transform makes it with Pillow: the shorter side to floor(size / crop_pct), the
    longer one truncated (torchvision's Resize(int)), then the centre size×size (torchvision's CenterCrop); with
    ``crop_pct`` None the squash to size×size."""
    from PIL import Image

    method = Image.BICUBIC if interpolation == "bicubic" else Image.BILINEAR
    with Image.open(path) as image:
        image = image.convert("RGB")
        if crop_pct is None:
            return np.asarray(image.resize((size, size), method))
        short = math.floor(size / crop_pct)
        width, height = image.size
        if width <= height:
            new_w, new_h = short, int(short * height / width)
        else:
            new_w, new_h = int(short * width / height), short
        image = image.resize((new_w, new_h), method)
        top, left = round((new_h - size) / 2.0), round((new_w - size) / 2.0)
        return np.asarray(image.crop((left, top, left + size, top + size)))


def write_images(folder: Path, count: int, seed: int) -> list[Path]:
    """RGB PNGs at the non-square SIZES: a gradient with noise, so squash and crop give different pixels."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(count):
        height, width = SIZES[i % len(SIZES)]
        ramp = np.linspace(0, 200, width)[None, :, None] + np.linspace(0, 55, height)[:, None, None]
        pixels = np.clip(ramp + rng.normal(0, 25, (height, width, 3)), 0, 255).astype(np.uint8)
        files.append(folder / f"image{i}_{height}x{width}.png")
        Image.fromarray(pixels, "RGB").save(files[-1])
    return files


def test_resize_crop_matches_the_pillow_reference_and_differs_from_the_squash(tmp_path: Path) -> None:
    from zoo.data.crop import EvalCrop, resize_crop
    from zoo.data.preprocess import resize
    from zoo.data.readers import load_image

    for interpolation in ("bilinear", "bicubic"):
        for crop_pct in (0.875, 0.9, 1.0):
            crop = EvalCrop(crop_pct, interpolation)
            for file in write_images(tmp_path / f"{interpolation}{crop_pct}", len(SIZES), seed=1):
                pixels = load_image(file, mode="RGB").transpose(2, 0, 1)[None]
                ours = resize_crop(pixels, (SIZE, SIZE), crop)[0].transpose(1, 2, 0).astype(int)
                reference = pillow_reference(file, SIZE, crop_pct, interpolation).astype(int)
                assert ours.shape == reference.shape == (SIZE, SIZE, 3)
                assert np.abs(ours - reference).max() <= 1, (file.name, interpolation, crop_pct)
                squashed = resize(pixels, (SIZE, SIZE))[0].transpose(1, 2, 0).astype(int)
                assert np.abs(squashed - reference).max() > 20  # a crop ignored would be caught


def test_the_covering_size_and_centre_follow_torchvision() -> None:
    from zoo.data.crop import EvalCrop, centre_offset, covering_size

    crop = EvalCrop(0.875)
    assert crop.scale_size((224, 224)) == (256, 256) and crop.scale_size((32, 32)) == (36, 36)
    assert covering_size(480, 640, (256, 256)) == (256, 341)  # int(256 * 640 / 480) = 341
    assert covering_size(640, 480, (256, 256)) == (341, 256)
    assert covering_size(256, 256, (256, 256)) == (256, 256)
    assert covering_size(10, 40, (8, 16)) == (8, 32)  # a non-square size: the smallest cover keeping the aspect
    assert [centre_offset(have, 32) for have in (33, 35, 36, 37)] == [0, 2, 2, 2]  # round halves to even


def test_crop_pct_is_refused_in_one_line_when_it_cannot_apply(tmp_path: Path) -> None:
    for bad in ("1.5", "0", "abc", "-0.5"):
        result = CliRunner().invoke(cli, ["train", "cnn", "--smoke", "--crop-pct", bad, "--out", str(tmp_path / "x")])
        assert_one_line_error(result, "--crop-pct")
    text = subprocess.run([sys.executable, "-m", "zoo", "train", "gpt-nano", "--smoke", "--crop-pct", "0.9",
                           "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=300)
    assert text.returncode == 2 and "--crop-pct" in text.stderr and "Traceback" not in text.stderr
    assert not (tmp_path / "x").exists()


def test_without_the_crop_nothing_is_recorded_and_crop_pct_none_is_the_squash(tmp_path: Path) -> None:
    plain = zoo.train("cnn", smoke=True, epochs=1, out=tmp_path, progress=False)
    config = json.loads((plain.run_dir / "config.json").read_text())
    assert "crop" not in config["data"] and "crop" not in config["data_options"]
    squash = zoo.train("cnn", crop_pct="none", smoke=True, epochs=1, out=tmp_path, progress=False)
    assert "crop" not in json.loads((squash.run_dir / "config.json").read_text())["data"]
    cropped = zoo.train("cnn", crop_pct=0.875, smoke=True, epochs=1, out=tmp_path, progress=False)
    config = json.loads((cropped.run_dir / "config.json").read_text())
    assert config["data"]["crop"] == config["data_options"]["crop"] == {
        "crop_pct": 0.875, "interpolation": "bilinear", "source": "given"}
    # a resumed or exported run prepares its data again the same way: the crop comes back from config.json
    from zoo.data import load_run_data
    from zoo.data.crop import EvalCrop

    assert load_run_data(config).info.crop == EvalCrop(0.875, "bilinear", "given")
    assert load_run_data(json.loads((plain.run_dir / "config.json").read_text())).info.crop is None


def test_the_weights_crop_is_taken_checked_and_overridden(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from zoo.data.crop import EvalCrop
    from zoo.engine.assembly import weights_inputs
    from zoo.engine.options import TrainOptions

    def stated(cfg: dict[str, Any], **options: Any) -> Any:
        folder = tmp_path / f"weights{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"pretrained_cfg": {"mean": [0.5] * 3, "std": [0.5] * 3,
                                                                         "input_size": [3, 32, 32], **cfg}}))
        return weights_inputs(TrainOptions(model="resnet18", init=str(folder), **options), say=True)[2]

    assert stated({"crop_pct": 0.95, "interpolation": "bicubic"}).crop_pct == 0.95
    assert stated({"crop_pct": 0.95}).interpolation == "bilinear"  # no interpolation stated
    odd = stated({"crop_pct": 0.9, "interpolation": "random"})  # timm's train-time choice: not an eval filter
    assert odd.interpolation == "bilinear" and "for their 'random'" in capsys.readouterr().err
    assert stated({"crop_pct": 1.5}) is None and "not a fraction in (0, 1]" in capsys.readouterr().err
    assert stated({"crop_pct": 0.9}, crop_pct="none") is None  # the user's word wins
    assert stated({"crop_pct": 0.9}, crop_pct="0.8") == EvalCrop(0.8, "bilinear", "given")
    assert stated({}) is None


def test_resume_is_exact_with_the_crop_and_the_random_resized_crop(tmp_path: Path) -> None:
    """Training through the evaluation transform with timm's training augmentation (--crop-flip, drawn from seed,
    epoch and batch): a stopped and resumed run ends bitwise where the uninterrupted one does."""
    from .test_engine import STEPS_PER_EPOCH, TINY, assert_bitwise_equal

    options = {**TINY, "crop_pct": "0.875", "crop_flip": True}
    whole = zoo.train("cnn", out=tmp_path, **options)
    part = zoo.train("cnn", out=tmp_path, max_steps=STEPS_PER_EPOCH + 3, **options)
    resumed = zoo.train(resume=part.run_dir, progress=False)
    assert_bitwise_equal(whole, resumed)
    assert json.loads((resumed.run_dir / "config.json").read_text())["data"]["crop"]["crop_pct"] == 0.875


# --- the case: timm weights from a local Hugging Face cache, fine-tuned, predicted and deployed -----------

TIMM = {
    "resnet50": ("timm/resnet50.test", [], {
        "architecture": "resnet50", "num_classes": 1000, "pretrained_cfg": {
            "input_size": [3, SIZE, SIZE], "interpolation": "bicubic", "crop_pct": 0.875, "crop_mode": "center",
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "num_classes": 1000,
            "first_conv": "conv1", "classifier": "fc"}}),
    "vit-tiny": ("timm/vit_tiny.test", ["--arg", "stem=small"], {
        "architecture": "vit_tiny_patch16_224", "num_classes": 1000, "pretrained_cfg": {
            "input_size": [3, SIZE, SIZE], "interpolation": "bicubic", "crop_pct": 0.9, "crop_mode": "center",
            "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "num_classes": 1000,
            "first_conv": "patch_embed.proj", "classifier": "head"}}),
}


@pytest.fixture(scope="module")
def hub_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Both models fine-tuned from the cache on a two-class folder of non-square images, and exported."""
    tmp = tmp_path_factory.mktemp("evalcrop")
    for index, name in enumerate(("a", "b")):
        write_images(tmp / "data" / name, 5, seed=index)
    probes = write_images(tmp / "probes", len(SIZES), seed=7)
    runs: dict[str, Any] = {"probes": probes, "tmp": tmp}
    for model, (repo, args, config) in TIMM.items():
        extra = {"stem": "small", "image_size": [SIZE, SIZE]} if model == "vit-tiny" else {}
        source = zoo.create_model(model, in_channels=3, num_classes=1000, **extra)
        cached_model(tmp / "hub", repo, source.state_dict(), config)
        result = zoo_cli(tmp / "hub", "train", model, "--init", f"hf:{repo}", *args, "--data",
                         f"imagefolder:{tmp / 'data'}", "--smoke", "--batch-size", "4", "--out", str(tmp / model))
        assert result.returncode == 0, result.stderr
        run_dir = next((tmp / model).iterdir())
        bundle = zoo.export(run_dir, out=tmp / "exports", providers=["cpu"]).bundle_dir
        runs[model] = {"stderr": result.stderr, "run_dir": run_dir, "bundle": bundle, "repo": repo,
                       "config": config["pretrained_cfg"]}
    return runs


@pytest.mark.parametrize("model", sorted(TIMM))
def test_the_weights_crop_and_statistics_reach_the_run_manifest_and_card(model: str, hub_runs: dict[str, Any]) -> None:
    from zoo.bundles.manifest import Bundle

    run, cfg = hub_runs[model], hub_runs[model]["config"]
    origin = f"weights: hf:{run['repo']}"
    assert f"crop_pct {cfg['crop_pct']:g} (bicubic)" in run["stderr"]
    config = json.loads((run["run_dir"] / "config.json").read_text())
    assert config["data"]["mean"] == cfg["mean"] and config["data"]["std"] == cfg["std"]
    assert config["data_options"]["crop"] == config["data"]["crop"] == {
        "crop_pct": cfg["crop_pct"], "interpolation": "bicubic", "source": origin}
    entry = Bundle.open(run["bundle"]).manifest.with_role("classifier")[0]
    scale = math.floor(SIZE / cfg["crop_pct"])
    assert entry.meta("preprocessing")["crop"] == {"crop_pct": cfg["crop_pct"], "interpolation": "bicubic",
                                                   "source": origin, "scale_size": [scale, scale]}
    assert entry.meta("preprocessing")["resample"] == "bicubic"
    assert entry.meta("normalization")["mean"] == cfg["mean"]
    manifest = json.loads((run["bundle"] / "manifest.json").read_text())
    recorded = json.loads(manifest["graphs"][entry.name]["metadata"]["preprocessing"])  # what serve/deploy read
    assert recorded["crop"]["crop_pct"] == cfg["crop_pct"]
    card = (run["bundle"] / "card.md").read_text()
    assert f"crop_pct {cfg['crop_pct']:g}, weights: hf:{run['repo']}" in card and "not squashed" in card
    assert f"the starting weights' own, from hf:{run['repo']}" in card


@pytest.mark.parametrize("model", sorted(TIMM))
def test_predict_and_the_deployed_graph_crop_like_pillow(model: str, hub_runs: dict[str, Any]) -> None:
    from zoo.bundles.manifest import Bundle
    from zoo.bundles.pregraph import RESIZE_TOLERANCE_8BIT, preprocessing_graph
    from zoo.data.readers import load_image
    from zoo.explain.source import _run_meta
    from zoo.ort import import_onnxruntime
    from zoo.predict import preprocess
    from zoo.runs import load_run

    run, cfg = hub_runs[model], hub_runs[model]["config"]
    entry = Bundle.open(run["bundle"]).manifest.with_role("classifier")[0]
    mean = np.asarray(cfg["mean"], np.float32)[None, :, None, None]
    std = np.asarray(cfg["std"], np.float32)[None, :, None, None]

    def levels(model_input: np.ndarray) -> np.ndarray:  # model input back to 8-bit levels, N×H×W×C
        return ((model_input * std + mean) * 255).transpose(0, 2, 3, 1)

    graph = import_onnxruntime().InferenceSession(preprocessing_graph(entry).SerializeToString(),
                                                  providers=["CPUExecutionProvider"])
    run_meta = _run_meta(load_run(run["run_dir"]).data_info)
    for file in hub_runs["probes"]:
        reference = pillow_reference(file, SIZE, cfg["crop_pct"], "bicubic")[None].astype(np.float32)
        squashed = pillow_reference(file, SIZE, None, "bicubic")[None].astype(np.float32)
        predicted = levels(preprocess(file, entry.metadata))
        deployed = levels(graph.run(None, {"image": load_image(file, mode="RGB")[None]})[0])
        assert np.abs(predicted - reference).max() <= RESIZE_TOLERANCE_8BIT + 1e-3, file.name
        assert np.abs(deployed - reference).max() <= RESIZE_TOLERANCE_8BIT + 1e-3, file.name
        assert np.abs(squashed - reference).max() > 20  # the crop matters on these images
        # zoo explain of the run folder (no bundle) preprocesses image files as the export records it
        assert np.array_equal(preprocess(file, run_meta), preprocess(file, entry.metadata))


def test_the_python_deployment_crops_and_agrees_with_zoo_predict(hub_runs: dict[str, Any]) -> None:
    bundle, folder = hub_runs["vit-tiny"]["bundle"], hub_runs["tmp"] / "deploy-python"
    out = CliRunner().invoke(cli, ["deploy", str(bundle), "--target", "python", "--out", str(folder)])
    assert out.exit_code == 0, out.output
    info = json.loads((folder / "deploy.json").read_text())
    assert "centre 32×32" in info["pregraph"]["resize"] and "cover 35×35" in info["pregraph"]["resize"]
    assert "not squashed" in (folder / "README.md").read_text()
    check = subprocess.run([sys.executable, "run.py", "--check"], cwd=folder, capture_output=True, text=True,
                           timeout=300)
    assert check.returncode == 0 and json.loads(check.stdout)["passed"], check.stdout + check.stderr
    files = [str(f) for f in hub_runs["probes"]]
    done = subprocess.run([sys.executable, "run.py", *files], cwd=folder, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    _agree_with_predict(json.loads(done.stdout), bundle, files)


@pytest.fixture(scope="module")
def npm_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The node and web deployments' packages from npm, once (skips where node, npm or the registry are missing)."""
    from .helpers import npm_install

    return npm_install(tmp_path_factory, "zoo-evalcrop", ["onnxruntime-node", "onnxruntime-web", "pngjs",
                                                          "@cwasm/jpeg-turbo"])


def _agree_with_predict(got: list[dict[str, Any]], bundle: Path, files: list[str]) -> None:
    from zoo.predict import predict_images

    want = predict_images(bundle, files)
    assert [r["index"] for r in got] == [r["index"] for r in want]
    for g, w in zip(got, want, strict=True):
        assert max(abs(g["probabilities"][c] - w["probabilities"][c]) for c in w["probabilities"]) <= 0.01


def test_the_node_deployment_crops_with_no_code_of_its_own(hub_runs: dict[str, Any], npm_modules: Path) -> None:
    bundle, folder = hub_runs["vit-tiny"]["bundle"], hub_runs["tmp"] / "deploy-node"
    out = CliRunner().invoke(cli, ["deploy", str(bundle), "--target", "node", "--out", str(folder)])
    assert out.exit_code == 0, out.output
    (folder / "node_modules").symlink_to(npm_modules, target_is_directory=True)
    check = subprocess.run(["node", "run.js", "--check"], cwd=folder, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0 and json.loads(check.stdout)["passed"], check.stdout + check.stderr
    files = [str(f) for f in hub_runs["probes"]]
    done = subprocess.run(["node", "run.js", *files], cwd=folder, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    _agree_with_predict(json.loads(done.stdout), bundle, files)


def test_the_web_deployment_crops_in_headless_chromium(hub_runs: dict[str, Any], npm_modules: Path) -> None:
    import functools
    import shutil
    import threading
    from http.server import ThreadingHTTPServer

    from . import test_deploy

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("chromium is not installed (tests/test_deploy.py installs it with apt-get)")
    bundle, folder = hub_runs["vit-tiny"]["bundle"], hub_runs["tmp"] / "deploy-web"
    out = CliRunner().invoke(cli, ["deploy", str(bundle), "--target", "web", "--out", str(folder)])
    assert out.exit_code == 0, out.output
    (folder / "node_modules").symlink_to(npm_modules, target_is_directory=True)
    files = [str(f) for f in hub_runs["probes"][:3]]
    for file in files:
        shutil.copy(file, folder / Path(file).name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(test_deploy._QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        assert test_deploy._page_result(chromium, url + "?check=1")["passed"]
        got = test_deploy._page_result(chromium, f"{url}?image={','.join(Path(f).name for f in files)}")
    finally:
        server.shutdown()
    _agree_with_predict(got, bundle, files)
