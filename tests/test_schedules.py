"""The step budget and the one learning-rate schedule mechanism: family defaults, flags over them, resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

import zoo
from zoo.cli import cli
from zoo.engine.options import SCHEDULES, TrainOptions
from zoo.engine.persistence import load_checkpoint
from zoo.engine.schedules import choose_schedule, lr_factor, step_budget
from zoo.errors import ZooError
from zoo.family import SCHEDULES as FAMILY_SCHEDULES
from zoo.family import LRSchedule
from zoo.run_layout import CHECKPOINT_STATE, CHECKPOINTS, CONFIG, LAST, WEIGHTS

from .helpers import assert_one_line_error

LM = {"smoke": True, "progress": False, "deterministic": True}
#: gpt-nano's defaults: lr 3e-3, cosine down to min_lr_ratio 0.1.
LM_LR, LM_FLOOR = 3e-3, 0.1


def last_lr(run_dir: Path) -> float:
    """The learning rate the run's optimizer holds after its last step (read from the last checkpoint)."""
    state = load_checkpoint(run_dir / CHECKPOINTS / LAST).state
    return state["optimizers"]["model"]["param_groups"][0]["lr"]


def config_of(run_dir: Path) -> dict:
    return json.loads((run_dir / CONFIG).read_text())


def test_budget_counts_optimizer_steps_under_smoke_and_accumulate() -> None:
    whole = step_budget(12, epochs=3, accumulate=1, smoke=False, max_steps=None)
    assert (whole.total_steps, whole.steps_per_epoch, whole.batches_per_epoch) == (36, 12, 12)
    smoke = step_budget(12, epochs=2, accumulate=2, smoke=True, max_steps=5)
    assert (smoke.total_steps, smoke.steps_per_epoch, smoke.batches_per_epoch) == (4, 2, 3)
    assert smoke.max_steps == 5, "a stop, carried but not a shorter schedule"


def test_cosine_floor_and_warmup() -> None:
    factor = lr_factor("cosine", total_steps=10, steps_per_epoch=5, warmup_steps=2, floor=0.1)
    assert factor(0) == 0.5 and factor(1) == 1.0 and factor(2) == 1.0
    assert factor(10) == pytest.approx(0.1) and factor(6) == pytest.approx(0.1 + 0.9 * 0.5)
    plain = lr_factor("cosine", total_steps=10, steps_per_epoch=5)
    assert plain(10) == 0.0 and plain(5) == pytest.approx(0.5)


def test_the_flags_lay_over_the_family_default(capsys: pytest.CaptureFixture[str]) -> None:
    declared = LRSchedule("cosine", warmup_steps=20, floor=0.1)
    quiet = choose_schedule(TrainOptions(model="m"), declared, "lm", say=True)
    assert quiet.schedule == declared and set(quiet.source.values()) == {"family"}
    assert capsys.readouterr().err == ""
    same = choose_schedule(TrainOptions(model="m", schedule="cosine"), declared, "lm", say=True)
    assert same.source["name"] == "flag" and capsys.readouterr().err == "", "a flag equal to the default says nothing"
    over = choose_schedule(TrainOptions(model="m", schedule="step", warmup_steps=0), declared, "lm", say=True)
    assert over.schedule == LRSchedule("step", 0, 0.1)
    assert dict(over.source) == {"name": "flag", "warmup_steps": "flag", "floor": "family"}
    assert capsys.readouterr().err == ("zoo: --schedule step, --warmup-steps 0 override the lm family's default "
                                       "learning-rate schedule (cosine, 20 warm-up steps)\n")
    none = choose_schedule(TrainOptions(model="m", warmup_steps=3), None, "classifier", say=True)
    assert none.schedule == LRSchedule("none", 3) and dict(none.source)["name"] == "default"
    assert capsys.readouterr().err == "", "nothing declared, nothing overridden"


def test_a_family_schedule_is_checked() -> None:
    assert SCHEDULES == FAMILY_SCHEDULES
    for bad in ({"name": "linear"}, {"warmup_steps": -1}, {"warmup_steps": 1.5}, {"floor": 1.0}):
        with pytest.raises(ZooError, match="LRSchedule"):
            LRSchedule(**bad)


def test_lm_cosine_decays_to_its_floor_in_a_smoke_run_with_accumulate(tmp_path: Path) -> None:
    """The budget counts --smoke's batches and --accumulate: the cosine ends at its floor on the last step."""
    run = zoo.train("gpt-nano", accumulate=2, out=tmp_path, **LM)
    config = config_of(run.run_dir)
    assert config["budget"] == {"total_steps": 4, "steps_per_epoch": 2, "batches_per_epoch": 3, "accumulate": 2,
                                "epochs": 2, "max_steps": None}
    assert run.summary["steps"] == 4
    assert config["schedule"] == {"name": "cosine", "warmup_steps": 2, "floor": LM_FLOOR, "gamma": 0.1,
                                  "step_epochs": 1, "source": {"name": "family", "warmup_steps": "family",
                                                               "floor": "family"}}
    assert last_lr(run.run_dir) == pytest.approx(LM_LR * LM_FLOOR)


def test_a_flag_overrides_the_lm_default_is_said_and_recorded(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    run = zoo.train("gpt-nano", schedule="step", gamma=0.5, out=tmp_path, **LM)
    assert "zoo: --schedule step overrides the lm family's default learning-rate schedule (cosine, 3 warm-up " \
           "steps)" in capsys.readouterr().err
    schedule = config_of(run.run_dir)["schedule"]
    assert (schedule["name"], schedule["source"]["name"], schedule["warmup_steps"]) == ("step", "flag", 3)
    steps = run.summary["steps"]
    assert steps == 6
    assert last_lr(run.run_dir) == pytest.approx(LM_LR * 0.5 ** (steps // 3)), "halved every epoch of 3 steps"


def test_a_family_without_a_schedule_records_the_engine_default(tmp_path: Path) -> None:
    run = zoo.train("cnn", smoke=True, progress=False, out=tmp_path)
    config = config_of(run.run_dir)
    assert config["schedule"]["name"] == "none" and set(config["schedule"]["source"].values()) == {"default"}
    assert last_lr(run.run_dir) == config["hyperparameters"]["lr"], "no schedule: the rate never moves"


def test_a_resumed_lm_run_has_the_uninterrupted_runs_rates(tmp_path: Path) -> None:
    whole = zoo.train("gpt-nano", out=tmp_path / "whole", **LM)
    part = zoo.train("gpt-nano", max_steps=2, out=tmp_path / "part", **LM)
    assert part.summary["stopped"] == "max_steps"
    assert not math.isclose(last_lr(part.run_dir), last_lr(whole.run_dir))
    resumed = zoo.train(resume=part.run_dir, progress=False)
    assert resumed.summary["steps"] == whole.summary["steps"]
    assert last_lr(resumed.run_dir) == last_lr(whole.run_dir) == pytest.approx(LM_LR * LM_FLOOR)
    a, b = load_file(whole.run_dir / WEIGHTS), load_file(resumed.run_dir / WEIGHTS)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert config_of(resumed.run_dir)["schedule"] == config_of(whole.run_dir)["schedule"]


def test_resume_takes_the_recorded_schedule_and_refuses_a_checkpoint_without_one(tmp_path: Path) -> None:
    part = zoo.train("cnn", smoke=True, progress=False, max_steps=1, warmup_steps=2, out=tmp_path)
    runner = CliRunner()  # the schedule's name came from the default: naming it again is no change
    same = runner.invoke(cli, ["train", "--resume", str(part.run_dir), "--schedule", "none", "--max-steps", "2"])
    assert same.exit_code == 0, same.output
    last = part.run_dir / CHECKPOINTS / LAST
    checkpoint = load_checkpoint(last)
    save_file(checkpoint.tensors, str(last), metadata={CHECKPOINT_STATE: json.dumps({**checkpoint.state,
                                                                                    "schedulers": {}})})
    assert_one_line_error(runner.invoke(cli, ["train", "--resume", str(part.run_dir)]),
                          "has no learning-rate schedule for optimizer 'model'", "start a new run")
