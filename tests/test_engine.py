"""The engine in one process: exact resume for every family, training options, config files, bad input.

Runs are kept tiny (batch 128 on the digits: 12 steps an epoch) so the whole file stays quick.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import zoo
from zoo.cli import cli
from zoo.engine.persistence import load_checkpoint
from zoo.errors import ZooError
from zoo.registry import build_catalog

from .helpers import assert_one_line_error

STEPS_PER_EPOCH = 12  # ceil(1438 training digits / 128)
TINY = {"epochs": 2, "batch_size": 128, "progress": False, "deterministic": True}


#: Families whose models do not train on the digits: the model their case uses (the data comes from data_for).
NOT_DIGITS = {"lm": "gpt-nano", "regressor": "tab-linear", "audio": "kws-res"}


def first_model_of_each_family() -> list[str]:
    catalog = build_catalog()
    return [NOT_DIGITS.get(family) or min(name for name, spec in catalog.models.items() if spec.family == family)
            for family in sorted({spec.family for spec in catalog.models.values()})]


def data_for(model: str, tmp_path: Path) -> dict:
    """Options that give ``model`` data of its kind: the digits by default, a short text for language models,
    the diabetes table for regressors, a small folder of WAV files for audio models (augmentation and
    SpecAugment on)."""
    family = build_catalog().models[model].family
    if family == "regressor":
        return {"dataset": "diabetes"}
    if family == "audio":
        from .helpers import make_wav_folder

        return {"dataset": f"wav:{make_wav_folder(tmp_path / 'wav')}", "batch_size": 8}  # 20 clips: 3 steps an epoch
    if family != "lm":
        return {}
    from pydoc_data.topics import topics

    path = tmp_path / "text.txt"
    path.write_text("".join(topics[k] for k in sorted(topics))[:16_000], encoding="utf-8")
    return {"dataset": f"text:{path}", "batch_size": 8}  # ~100 windows of 128 bytes: 12-13 steps an epoch


def weights(run: zoo.engine.RunResult) -> dict[str, torch.Tensor]:
    return load_file(run.run_dir / "model.safetensors")


def assert_bitwise_equal(a: zoo.engine.RunResult, b: zoo.engine.RunResult) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    unequal = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not unequal, f"weights differ after resume: {unequal[:3]}"
    assert (a.run_dir / "metrics.jsonl").read_text() == (b.run_dir / "metrics.jsonl").read_text()


def folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize("model", first_model_of_each_family())
def test_stopped_anywhere_and_resumed_ends_bitwise_equal(model: str, tmp_path: Path) -> None:
    """Every family: stop mid-epoch, resume, stop at an epoch boundary, resume to the end."""
    options = {**TINY, **data_for(model, tmp_path)}
    whole = zoo.train(model, out=tmp_path / "runs", **options)
    per_epoch = whole.summary["steps"] // 2
    mid = random.Random(model).randrange(1, per_epoch)
    part = zoo.train(model, out=tmp_path / "runs", max_steps=mid, **options)
    assert part.summary["steps"] == mid and part.summary["stopped"] == "max_steps"
    zoo.train(resume=part.run_dir, max_steps=per_epoch, progress=False)
    resumed = zoo.train(resume=part.run_dir, progress=False)
    assert resumed.summary["steps"] == whole.summary["steps"] == 2 * per_epoch
    assert per_epoch == STEPS_PER_EPOCH or model in NOT_DIGITS.values()
    assert_bitwise_equal(whole, resumed)
    assert resumed.summary["metrics"] == whole.summary["metrics"]


def test_resume_is_exact_with_every_option_in_play(tmp_path: Path) -> None:
    options = {**TINY, "optimizer": "adamw", "schedule": "cosine", "warmup_steps": 3, "grad_clip": 0.5,
               "accumulate": 2, "save_every": 2, "keep_last": 2, "augment": True}
    whole = zoo.train("cnn", out=tmp_path, **options)
    part = zoo.train("cnn", out=tmp_path, max_steps=5, **options)
    resumed = zoo.train(resume=part.run_dir, progress=False)
    assert whole.summary["steps"] == 2 * STEPS_PER_EPOCH // 2
    assert_bitwise_equal(whole, resumed)
    steps = sorted(p.name for p in (whole.run_dir / "checkpoints").glob("step-*"))
    assert len(steps) == 2, "keep_last keeps the newest two step checkpoints"
    state = load_checkpoint(whole.run_dir / "checkpoints" / "last.safetensors").state
    assert state["schedulers"]["model"]["last_epoch"] == whole.summary["steps"]


def test_checkpoint_holds_the_whole_state(tmp_path: Path) -> None:
    run = zoo.train("cnn", out=tmp_path, max_steps=3, optimizer="adam", **TINY)
    checkpoint = load_checkpoint(run.run_dir / "checkpoints" / "last.safetensors")
    assert {"epoch", "batch_in_epoch", "step", "rng", "optimizers", "schedulers", "scaler"} <= set(checkpoint.state)
    assert (checkpoint.state["epoch"], checkpoint.state["batch_in_epoch"], checkpoint.state["step"]) == (1, 3, 3)
    assert any(k.startswith("optim/model/") and k.endswith("exp_avg") for k in checkpoint.tensors)
    assert {"rng/0/torch", "rng/0/numpy_keys"} <= set(checkpoint.tensors)
    assert checkpoint.state["optimizers"]["model"]["param_groups"][0]["lr"] == pytest.approx(0.02)


def test_bf16_mixed_on_the_cpu_trains_and_resumes(tmp_path: Path) -> None:
    part = zoo.train("cnn", out=tmp_path, precision="bf16-mixed", max_steps=4, **TINY)
    resumed = zoo.train(resume=part.run_dir, progress=False)
    assert resumed.summary["steps"] == 2 * STEPS_PER_EPOCH
    assert resumed.summary["metrics"]["val_accuracy"] > 0.5


@pytest.fixture
def nan_at_step(monkeypatch: pytest.MonkeyPatch):
    """Make the classifier's loss NaN at one (1-based) step."""
    from zoo_cnn.family import ClassifierFamily

    original = ClassifierFamily.training_step

    def arm(step: int) -> None:
        calls = {"n": 0}

        def poisoned(self, model, batch, optimizer, ctx):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            losses = original(self, model, batch, optimizer, ctx)
            if calls["n"] == step:
                losses["loss"] = losses["loss"] * float("nan")
            return losses

        monkeypatch.setattr(ClassifierFamily, "training_step", poisoned)

    return arm


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(nan_at_step, tmp_path) -> None:
    nan_at_step(7)
    with pytest.raises(ZooError, match=r"non-finite at step 7 \(epoch 1.*loss=nan, accuracy=.*last good checkpoint"):
        zoo.train("cnn", out=tmp_path, save_every=3, **TINY)
    (run_dir,) = tmp_path.iterdir()
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.safetensors")
    assert checkpoint.state["step"] == 6
    assert all(torch.isfinite(t).all() for k, t in checkpoint.tensors.items() if k.startswith("model/"))


@pytest.mark.parametrize("bad_step", [7, 6])  # 6: the step a checkpoint is due at
def test_deferred_check_never_writes_after_a_bad_step(bad_step: int, nan_at_step, monkeypatch, tmp_path) -> None:
    """One CUDA process looks at each loss one step late (no per-step sync); forced on here, on the CPU."""
    from zoo.engine import loop

    monkeypatch.setattr(loop, "defer_wanted", lambda device, on_nan, distributed: True)
    nan_at_step(bad_step)
    with pytest.raises(ZooError, match=rf"non-finite at step {bad_step} \(epoch 1.*loss=nan, accuracy="):
        zoo.train("cnn", out=tmp_path, save_every=3, **TINY)
    (run_dir,) = tmp_path.iterdir()
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.safetensors")
    assert checkpoint.state["step"] == 3 * ((bad_step - 1) // 3)
    assert all(torch.isfinite(t).all() for k, t in checkpoint.tensors.items() if k.startswith("model/"))


def test_on_nan_skip_skips_the_step(nan_at_step, tmp_path: Path) -> None:
    nan_at_step(5)
    run = zoo.train("cnn", out=tmp_path, on_nan="skip", **TINY)
    assert run.summary["skipped_steps"] == 1 and run.summary["stopped"] == "completed"
    assert all(torch.isfinite(t).all() for t in weights(run).values())


def test_early_stopping_on_the_monitored_metric(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from zoo_cnn.family import ClassifierFamily

    monkeypatch.setattr(ClassifierFamily, "evaluate", lambda self, model, ctx: {"val_accuracy": 0.5})
    run = zoo.train("cnn", out=tmp_path, early_stop=1, **{**TINY, "epochs": 6})
    assert run.summary["stopped"] == "early_stop" and run.summary["steps"] == 3 * STEPS_PER_EPOCH
    assert run.summary["best"]["epoch"] == 1
    assert (run.run_dir / "checkpoints" / "best.safetensors").exists()
    with pytest.raises(ZooError, match="already finished"):
        zoo.train(resume=run.run_dir)


def test_learning_rate_schedules() -> None:
    from zoo.engine.schedules import lr_factor

    warm = lr_factor("cosine", total_steps=10, steps_per_epoch=5, warmup_steps=2)
    assert [round(warm(s), 3) for s in (0, 1, 2, 6, 10)] == [0.5, 1.0, 1.0, 0.5, 0.0]
    step = lr_factor("step", total_steps=20, steps_per_epoch=5, step_epochs=2, gamma=0.5)
    assert [step(s) for s in (0, 9, 10, 19)] == [1.0, 1.0, 0.5, 0.5]


def test_smoke_mode_runs_a_few_batches_of_everything(tmp_path: Path) -> None:
    from zoo.engine.options import SMOKE_BATCHES, SMOKE_EPOCHS

    run = zoo.train("resnet-small", out=tmp_path, smoke=True, progress=False)
    assert run.summary["steps"] == SMOKE_BATCHES * SMOKE_EPOCHS
    assert {"config.json", "run.toml", "metrics.jsonl", "metrics.csv", "summary.json", "model.safetensors",
            "checkpoints"} <= {p.name for p in run.run_dir.iterdir()}


def test_logs_are_plain_lines_without_a_terminal(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["train", "cnn", "--out", str(tmp_path), "--epochs", "1", "--batch-size", "128",
                                      "--log-every", "5"])
    assert result.exit_code == 0, result.output
    assert "\r" not in result.output
    assert "epoch 1/1 step 5" in result.output and "epoch 1/1 train_accuracy=" in result.output
    (run_dir,) = tmp_path.iterdir()
    csv_lines = (run_dir / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,step,") and len(csv_lines) == 2
    assert json.loads((run_dir / "metrics.jsonl").read_text())["epoch"] == 1


def test_config_file_flags_override_and_run_toml_reproduces_the_run(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('model = "cnn"\nepochs = 1\nbatch_size = 256\nlr = 0.05\ndeterministic = true\n'
                      '[hp]\nmomentum = 0.8\n')
    first = CliRunner().invoke(cli, ["train", "--config", str(config), "--lr", "0.03", "--out", str(tmp_path / "a"),
                                     "--json"])
    assert first.exit_code == 0, first.output
    run_dir = Path(json.loads(first.output[first.output.index("{"):])["run_dir"])
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["hyperparameters"]["lr"] == 0.03 and saved["hyperparameters"]["momentum"] == 0.8
    assert saved["hyperparameters"]["batch_size"] == 256
    again = CliRunner().invoke(cli, ["train", "--config", str(run_dir / "run.toml"), "--out", str(tmp_path / "b"),
                                     "--json"])
    assert again.exit_code == 0, again.output
    rerun = Path(json.loads(again.output[again.output.index("{"):])["run_dir"])
    a, b = load_file(run_dir / "model.safetensors"), load_file(rerun / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)




@pytest.mark.parametrize(("text", "message"), [
    ('model = "cnn"\nepoch = 3\n', "unknown key 'epoch'"),
    ('model = "cnn"\nepochs = "3"\n', "'epochs' must be int, got str '3'"),
    ('model = "cnn"\nprecision = "fp8"\n', "'precision' must be one of 32, bf16-mixed, 16-mixed"),
    ('model = "cnn"\nepochs = [\n', "is not valid TOML"),
])
def test_bad_config_files(text: str, message: str, tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    result = CliRunner().invoke(cli, ["train", "--config", str(config), "--out", str(tmp_path / "r")])
    assert_one_line_error(result, message)
    assert not (tmp_path / "r").exists()


def test_16_mixed_on_the_cpu_is_one_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["train", "cnn", "--device", "cpu", "--precision", "16-mixed",
                                      "--out", str(tmp_path)])
    assert_one_line_error(result, "--precision 16-mixed needs a CUDA device", "bf16-mixed")
    assert not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return zoo.train("cnn", out=tmp_path_factory.mktemp("stopped"), max_steps=3, **TINY).run_dir


def _rewrite_state(path: Path, **changes: object) -> None:
    from safetensors.torch import save_file

    checkpoint = load_checkpoint(path)
    state = {**checkpoint.state, **changes}
    save_file(checkpoint.tensors, str(path), metadata={"zoo_checkpoint": json.dumps(state)})


@pytest.mark.parametrize(("damage", "args", "message"), [
    (None, ["resnet-small"], "trained model 'cnn', not 'resnet-small'"),
    (None, ["--lr", "0.5"], "--lr cannot change when resuming"),
    (None, ["--schedule", "cosine"], "--schedule cannot change when resuming (the run used 'none')"),
    ({"format": 99, "zoo_version": "9.0"}, [], "has format 99 (zoo 9.0), this zoo reads format 1"),
    ({"world_size": 2}, [], "trained by 2 process(es), this is 1; resume with --nproc 2"),
    ({"model": "resnet-small"}, [], "belongs to model 'resnet-small', but the run trains 'cnn'"),
    ("truncate", [], "is truncated or corrupted"),
])
def test_bad_resumes_are_one_line_and_leave_the_run_untouched(stopped_run: Path, tmp_path: Path, damage, args,
                                                              message: str) -> None:
    import shutil

    run_dir = Path(shutil.copytree(stopped_run, tmp_path / "run"))
    last = run_dir / "checkpoints" / "last.safetensors"
    if damage == "truncate":
        last.write_bytes(last.read_bytes()[:1000])
    elif damage:
        _rewrite_state(last, **damage)
    before = folder_digest(run_dir)
    assert_one_line_error(CliRunner().invoke(cli, ["train", *args, "--resume", str(run_dir)]), message)
    assert folder_digest(run_dir) == before


def test_resume_of_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    assert_one_line_error(CliRunner().invoke(cli, ["train", "--resume", str(tmp_path)]), "is not a zoo run directory")


def test_first_signal_sets_the_flag_and_the_second_aborts() -> None:
    import os
    import signal

    from zoo.engine.loop import InterruptFlag

    with InterruptFlag() as flag:
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag.received == signal.SIGTERM and flag.exit_code == 143
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    with InterruptFlag(abort_on_second=False) as relayed:  # under torchrun each Ctrl-C arrives twice
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        assert relayed.exit_code == 130
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_tensorboard_asked_for_but_not_installed_is_one_line(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("tensorboard") is not None:
        pytest.skip("tensorboard is installed here")
    result = CliRunner().invoke(cli, ["train", "cnn", "--tensorboard", "--out", str(tmp_path)])
    assert_one_line_error(result, "--tensorboard needs the tensorboard package")
    assert not any(tmp_path.iterdir())


def test_config_and_resume_do_not_mix(stopped_run: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("epochs = 3\n")
    assert_one_line_error(CliRunner().invoke(cli, ["train", "--resume", str(stopped_run), "--config", str(config)]),
                    "--config and --resume do not mix")


TWO_OPTIMIZER_PLUGIN = '''
import torch
import torch.nn.functional as F
from zoo.hookspecs import hookimpl
from zoo.specs import FamilySpec, InputSpec, ModelSpec
from zoo_cnn.family import ClassifierFamily



class TwoOptimizers(ClassifierFamily):
    """Convolutions on Adam, the head on SGD; noisy inputs, so the RNG state matters for resume."""

    optimizer_order = ("features", "head")

    def configure_optimizers(self, model, hp):
        convs = [p for n, p in model.named_parameters() if n.startswith("conv")]
        head = [p for n, p in model.named_parameters() if not n.startswith("conv")]
        return {"features": torch.optim.Adam(convs, lr=1e-3), "head": torch.optim.SGD(head, lr=hp["lr"], momentum=0.9)}

    def training_step(self, model, batch, optimizer):
        images, labels = batch
        noisy = images + 0.1 * torch.randn_like(images)
        return {"loss": F.cross_entropy(model(noisy), labels)}


@hookimpl
def register_families(register):
    register(FamilySpec(name="twoopt", summary="test family", factory="zoo_test_twoopt:TwoOptimizers"))


@hookimpl
def register_models(register):
    register(ModelSpec(name="twoopt-cnn", family="twoopt", summary="a test model",
                       builder="zoo_cnn.models:ArticleCNN", input=InputSpec(1, 8, 8)))
'''


def test_several_optimizers_and_random_steps_resume_exactly(make_plugin, tmp_path: Path) -> None:
    make_plugin("twoopt", TWO_OPTIMIZER_PLUGIN)
    options = {**TINY, "schedule": "step", "step_epochs": 1, "gamma": 0.5}
    whole = zoo.train("twoopt-cnn", out=tmp_path, **options)
    part = zoo.train("twoopt-cnn", out=tmp_path, max_steps=STEPS_PER_EPOCH + 5, **options)
    state = load_checkpoint(part.run_dir / "checkpoints" / "last.safetensors").state
    assert set(state["optimizers"]) == set(state["schedulers"]) == {"features", "head"}
    resumed = zoo.train(resume=part.run_dir, progress=False)
    assert_bitwise_equal(whole, resumed)
    assert {"train_features_loss", "train_head_loss"} <= set(resumed.summary["metrics"])


def test_the_api_refuses_the_flag_names_of_hyperparameters_and_model_args(tmp_path: Path) -> None:
    """``zoo.train(args=...)`` used to be overwritten by ``model_args`` without a word."""
    for wrong, right in (("args", "model_args"), ("hp", "hyperparameters")):
        with pytest.raises(ZooError, match=f"{right}="):
            zoo.train("cnn", out=tmp_path, **{wrong: {"x": 1}}, **TINY)
    assert not any(tmp_path.iterdir())
