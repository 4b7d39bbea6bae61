"""GAN and VAE families: training mechanics, pictures, quality metrics, bad input and `zoo sample`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli
from zoo.errors import ZooError
from zoo.family import RunContext
from zoo.registry import build_catalog

GENERATIVE = sorted(name for name, spec in build_catalog().models.items() if spec.family in ("gan", "vae"))
GANS = [name for name in GENERATIVE if zoo.get_spec(name).family == "gan"]


def _one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], result.output


@pytest.mark.parametrize("name", GANS)
def test_discriminator_step_leaves_no_gradient_in_the_generator(name: str) -> None:
    import torch

    family = zoo.load_family("gan")
    model = zoo.create_model(name)
    ctx = _context({"lr": 2e-4, "optimizer": "adam", "beta1": 0.5})
    optimizers = family.configure_optimizers(model, ctx)
    batch = (torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,)))
    family.training_step(model, batch, "discriminator", ctx)["loss"].backward()
    assert all(p.grad is None for p in model.generator.parameters())
    assert any(p.grad is not None for p in model.discriminator.parameters())
    optimizers["generator"].zero_grad(set_to_none=True)
    family.training_step(model, batch, "generator", ctx)["loss"].backward()
    assert all(p.grad is not None for p in model.generator.parameters() if p.requires_grad)


def _context(hp: dict) -> RunContext:
    from zoo.data import DataInfo, DataSplits

    info = DataInfo(name="t", channels=1, height=8, width=8, num_classes=10, class_names=[], mean=[0.0], std=[1.0])
    empty = np.zeros((0, 1, 8, 8), np.float32)
    return RunContext(hyperparameters=hp, data=DataSplits(info, empty, np.zeros(0, np.int64), empty,
                                                           np.zeros(0, np.int64)))


def test_generator_steps_set_the_step_ratio_from_the_hyperparameters() -> None:
    family = zoo.load_family("gan")
    model = zoo.create_model("gan")
    ctx = _context({"lr": 2e-4, "optimizer": "adam", "generator_steps": 2})
    optimizers = family.configure_optimizers(model, ctx)
    assert family.optimizer_steps(ctx) == ("discriminator", "generator", "generator")
    assert set(optimizers) == set(family.optimizer_steps(ctx))
    assert family.optimizer_order == ("discriminator", "generator"), "nothing is stashed on the family"
    with pytest.raises(ZooError, match="generator_steps must be a positive whole number"):
        family.optimizer_steps(_context({"generator_steps": 0}))


@pytest.mark.parametrize("size", [8, 16, 28, 32, 64])
def test_layer_sizes_follow_the_image_size(size: int) -> None:
    import torch

    for name in GENERATIVE:
        model = zoo.create_model(name, image_size=[size, size], features=8).eval()
        with torch.no_grad():
            if zoo.get_spec(name).family == "gan":
                labels = torch.zeros(2, dtype=torch.long) if model.num_classes else None
                images = model.generator(torch.randn(2, model.latent_dim), labels)
                assert images.shape == (2, 1, size, size)
                assert model.discriminator(images, labels).shape == (2, 1)
            else:
                mean, log_variance = model.encoder(torch.randn(2, 1, size, size))
                assert mean.shape == log_variance.shape == (2, model.latent_dim)
                assert model.decoder(mean).shape == (2, 1, size, size)


@pytest.mark.parametrize("name", GENERATIVE)
def test_unreachable_image_size_and_zero_latent_are_one_line_errors(name: str, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    runner = CliRunner()
    bad_size = runner.invoke(cli, ["train", name, "--arg", "image_size=[5,5]", "--out", str(out)])
    _one_line_error(bad_size, "image size 5×5 cannot be reached", "8, 16, 28, 32 or 64")
    zero_latent = runner.invoke(cli, ["train", name, "--arg", "latent_dim=0", "--out", str(out)])
    _one_line_error(zero_latent, "latent_dim must be a positive whole number")
    assert not out.exists() or not any(out.iterdir()), "nothing is written for a model that cannot be built"


def test_negative_beta_is_a_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["train", "vae", "--hp", "beta=-1", "--out", str(tmp_path / "runs")])
    _one_line_error(result, "--hp beta must be a number of at least 0")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


TINY_DATASET_PLUGIN = '''
import numpy as np
from zoo.data import split_and_normalise
from zoo.hookspecs import hookimpl
from zoo.specs import DatasetSpec

def load(*, seed, val_fraction):
    rng = np.random.default_rng(0)
    return split_and_normalise("odd", rng.integers(0, 16, (40, 1, 5, 5)), np.arange(40) % 2, seed=seed,
                               val_fraction=val_fraction, scale=1 / 16, class_names=["a", "b"])

@hookimpl
def register_datasets(register):
    register(DatasetSpec(name="odd", summary="5×5 noise", loader=load))
'''


def test_data_whose_shape_the_model_cannot_take(make_plugin: Callable[..., Path], tmp_path: Path) -> None:
    make_plugin("odd", TINY_DATASET_PLUGIN)
    for name in ("gan", "vae"):
        result = CliRunner().invoke(cli, ["train", name, "--data", "odd", "--out", str(tmp_path / "runs")])
        _one_line_error(result, "image size 5×5 cannot be reached")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_small_two_class_dataset_trains_every_generative_model(make_plugin: Callable[..., Path],
                                                                  tmp_path: Path) -> None:
    """Few validation images (8), two classes, 8×8: grids, judge and metrics cope."""
    make_plugin("small", TINY_DATASET_PLUGIN.replace("(40, 1, 5, 5)", "(40, 1, 8, 8)").replace('"odd"', '"small"'))
    for name in GENERATIVE:
        run = zoo.train(name, dataset="small", epochs=1, out=tmp_path / "runs", progress=False)
        metrics = run.summary["metrics"]
        assert all(np.isfinite(v) for v in metrics.values()), metrics
        assert {"sample_class_share_a", "sample_class_share_b"} <= set(metrics)
        assert (run.run_dir / "samples" / "epoch-001.png").exists()


@pytest.mark.parametrize("name", GENERATIVE)
def test_runs_leave_pictures_and_quality_metrics(name: str, train_briefly) -> None:
    from PIL import Image

    run = train_briefly(name)
    family = zoo.get_spec(name).family
    pictures = ["samples/epoch-001.png", "loss_curve.png"]
    if family == "vae":
        pictures.append("reconstructions/epoch-001.png")
    for picture in pictures:
        with Image.open(run.run_dir / picture) as image:
            assert image.format == "PNG" and min(image.size) >= 32
    metrics = run.summary["metrics"]
    summary = json.loads((run.run_dir / "summary.json").read_text())
    assert summary["metrics"] == metrics
    assert 0 <= metrics["sample_confident"] <= 1 and metrics["sample_fd"] >= 0
    shares = [v for k, v in metrics.items() if k.startswith("sample_class_share_")]
    assert len(shares) == 10 and abs(sum(shares) - 1) < 1e-9 and metrics["sample_min_class_share"] == min(shares)
    if family == "gan":
        assert {"train_discriminator_loss", "train_generator_loss", "sample_fd_untrained"} <= set(metrics)
    else:
        assert metrics["val_nelbo"] == pytest.approx(metrics["val_recon_nll"] + metrics["val_kl"], rel=1e-5)
        assert {"val_recon_mse", "baseline_pixel_histogram_nll", "train_kl"} <= set(metrics)


def _sample_in_a_process(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "zoo", "sample", *args],
                          capture_output=True, text=True, env={**os.environ})


@pytest.mark.parametrize("name", GENERATIVE)
def test_zoo_sample_writes_a_png_without_importing_torch(name: str, export_briefly, tmp_path: Path) -> None:
    from PIL import Image

    bundle = export_briefly(name).bundle_dir
    out = tmp_path / "grid.png"
    result = _sample_in_a_process(str(bundle), "--n", "20", "--seed", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time")}
    assert "onnxruntime" in imported and "torch" not in imported
    with Image.open(out) as image:
        assert image.format == "PNG"
    again = _sample_in_a_process(str(bundle), "--n", "20", "--seed", "3", "--out", str(tmp_path / "again.png"))
    assert again.returncode == 0 and (tmp_path / "again.png").read_bytes() == out.read_bytes(), "seeded"


def test_zoo_sample_refuses_classifiers_bad_counts_and_overwriting(export_briefly, tmp_path: Path) -> None:
    runner = CliRunner()
    _one_line_error(runner.invoke(cli, ["sample", str(export_briefly("cnn").bundle_dir)]),
                    "holds no sampler or decoder graph to draw from (family 'classifier'; graph roles: classifier)")
    bundle = str(export_briefly("gan").bundle_dir)
    _one_line_error(runner.invoke(cli, ["predict", bundle, str(tmp_path / "x.png")]),
                    "holds no graph `zoo predict` can use (family 'gan'; graph roles: none, sampler)")
    _one_line_error(runner.invoke(cli, ["sample", bundle, "--n", "0"]), "--n must be")
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"not yours")
    _one_line_error(runner.invoke(cli, ["sample", bundle, "--out", str(mine)]), "already exists", "--force")
    assert mine.read_bytes() == b"not yours"
    assert runner.invoke(cli, ["sample", bundle, "--out", str(mine), "--force"]).exit_code == 0
    assert mine.read_bytes().startswith(b"\x89PNG")
    damaged = Path(shutil.copytree(bundle, tmp_path / "damaged"))
    graph = damaged / "generator" / "model.onnx"
    graph.write_bytes(graph.read_bytes()[:-20])
    _one_line_error(runner.invoke(cli, ["sample", str(damaged), "--out", str(tmp_path / "x.png")]),
                    "generator/model.onnx does not match its manifest hash")
    assert not (tmp_path / "x.png").exists()


def test_frechet_distance() -> None:
    from zoo.toolkit.quality import frechet_distance

    rng = np.random.default_rng(0)
    a = rng.standard_normal((2000, 4))
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(a, a + 3.0) == pytest.approx(4 * 9, rel=1e-6)  # mean shift only: |Δμ|²
    # Σ and 4Σ: tr(Σ) + tr(4Σ) - 2 tr(2Σ) = tr(Σ), plus the means' squared distance
    expected = np.trace(np.cov(a, rowvar=False)) + (a.mean(axis=0) ** 2).sum()
    assert frechet_distance(a, 2 * a) == pytest.approx(expected, rel=1e-6)


def test_damaged_classifier_cache_is_rebuilt_and_a_wrong_named_run_refused(
    train_briefly, zoo_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zoo.toolkit.quality import load_classifier

    train_briefly("gan")  # makes sure the session's cache holds a classifier
    cached = next((zoo_cache / "classifiers").iterdir())
    copy = tmp_path / "cache" / "classifiers" / cached.name
    shutil.copytree(cached, copy)
    (copy / "model.safetensors").write_bytes(b"\x00" * 64)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    judge = load_classifier("digits", 0, "cpu", model="cnn")
    assert judge.run_dir == copy and (copy / "model.safetensors").stat().st_size > 64
    (copy / "model.safetensors").unlink()  # a half-written cache folder
    assert load_classifier("digits", 0, "cpu", model="cnn").run_dir == copy and (copy / "model.safetensors").is_file()
    with pytest.raises(ZooError, match="name a classifier run trained on 'digits'"):
        load_classifier("digits", 0, "cpu", classifier_run=train_briefly("vae").run_dir)


def test_discretised_logistic_is_a_distribution_over_the_levels() -> None:
    import torch
    from zoo_vae.models import discretised_logistic_log_prob

    levels = 17
    grid = torch.arange(levels, dtype=torch.float32).view(-1, 1) / (levels - 1)
    mu, log_scale = torch.rand(1, 5), torch.tensor([[-7.0, -3.0, -1.0, 0.0, 1.0]])
    total = discretised_logistic_log_prob(grid, mu, log_scale, levels).exp().sum(dim=0)
    assert torch.allclose(total, torch.ones(5), atol=1e-4)


def test_outside_random_state_is_restored() -> None:
    import torch

    from zoo.toolkit.quality import preserved_random_state

    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    with preserved_random_state():
        torch.manual_seed(0)
        np.random.seed(0)
        torch.rand(10)
    assert torch.equal(torch.rand(3), expected)
