"""Engine options for bigger models: --crop-flip, --channels-last, --checkpoint-activations, --compile,
--workers / --pin-memory. Exact resume still holds with them (checked on the small cnn to stay fast)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import zoo
from zoo.cli import _as_args, cli
from zoo.data.crop_flip import random_resized_crop_flip
from zoo.errors import ZooError

from .test_engine import STEPS_PER_EPOCH, TINY, assert_bitwise_equal


def test_crop_flip_is_drawn_from_seed_epoch_and_batch() -> None:
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    a = random_resized_crop_flip(images, seed=1, epoch=2, batch=3)
    assert a.shape == images.shape and torch.equal(a, random_resized_crop_flip(images, seed=1, epoch=2, batch=3))
    assert not torch.equal(a, random_resized_crop_flip(images, seed=1, epoch=2, batch=4))
    assert not torch.equal(a, images)
    assert images.min() <= a.min() and a.max() <= images.max(), "bilinear crops stay inside the image's range"


def test_resume_is_exact_with_crop_flip_and_channels_last(tmp_path: Path) -> None:
    options = {**TINY, "crop_flip": True, "channels_last": True}
    whole = zoo.train("cnn", out=tmp_path, **options)
    part = zoo.train("cnn", out=tmp_path, max_steps=STEPS_PER_EPOCH + 3, **options)
    resumed = zoo.train(resume=part.run_dir, progress=False)
    assert_bitwise_equal(whole, resumed)


def test_activation_checkpointing_gives_the_same_gradients() -> None:
    grads = []
    for checkpointed in (False, True):
        torch.manual_seed(0)
        model = zoo.create_model("vit-tiny", stem="small", image_size=[8, 8], num_classes=3,
                                 checkpoint_activations=checkpointed)
        loss = model(torch.ones(2, 3, 8, 8)).square().mean()
        loss.backward()
        grads.append(model.blocks[0].attn.qkv.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-7)
    with pytest.raises(ZooError, match="does not support it"):
        zoo.train("cnn", checkpoint_activations=True, max_steps=1, progress=False)


def test_compile_falls_back_to_eager_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from zoo.engine import adapt

    monkeypatch.setattr(adapt, "compiler_problem", lambda device: "RuntimeError: no C++ compiler found")
    run = zoo.train("cnn", out=tmp_path, compile=True, max_steps=1, batch_size=32)
    assert run.summary["steps"] == 1
    assert "zoo: --compile is not available here (RuntimeError: no C++ compiler found); training eagerly" in \
        capsys.readouterr().err
    compiled = []
    monkeypatch.setattr(adapt, "compiler_problem", lambda device: None)
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(type(self).__name__))
    zoo.train("cnn", out=tmp_path, compile=True, max_steps=1, batch_size=32, progress=False)
    assert compiled == ["ArticleCNN"]


def test_the_first_batch_probe_runs_before_compile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The class-width probe (batch of 2, eval mode) must not be the compiled model's first graph: training's
    own batch shape would then recompile as a dynamic-shape graph."""
    from zoo.engine import adapt, assembly

    events: list[str] = []
    probe = assembly.check_graph_outputs
    monkeypatch.setattr(adapt, "compiler_problem", lambda device: None)
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: events.append("compile"))
    monkeypatch.setattr(assembly, "check_graph_outputs", lambda *a: (events.append("probe"), probe(*a))[1])
    zoo.train("cnn", out=tmp_path, compile=True, max_steps=1, batch_size=32, progress=False)
    assert events == ["probe", "compile"]


def test_worker_and_pin_memory_flags_reach_torchrun_and_are_checked() -> None:
    command = cli.commands["train"]
    ctx = command.make_context("train", ["cnn", "--workers", "0", "--no-pin-memory", "--crop-flip"])
    assert _as_args(ctx, {"nproc"}) == ["cnn", "--crop-flip", "--workers", "0", "--no-pin-memory"]
    out = CliRunner().invoke(cli, ["train", "cnn", "--workers", "-1"])
    assert out.exit_code == 2 and "--workers must not be negative" in out.output
