"""`zoo train --dp-epsilon` (DP-SGD through Opacus) and `zoo audit` (membership inference)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import load_file

import zoo
from tests.helpers import assert_one_line_error
from zoo.audit import roc_auc, tpr_at_fpr
from zoo.cli import cli
from zoo.engine import privacy

pytest.importorskip("opacus")

DP = {"smoke": True, "dp_epsilon": 8.0, "progress": False, "deterministic": True}

#: Trains in a child process and kills it with SIGKILL right after its 5th private step (after the step-4
#: checkpoint, before any later one): a real kill -9 at a known moment.
KILLED_AT_STEP_5 = """
import os, signal, sys
import zoo
from zoo.engine import privacy
account = privacy.Privacy.account_step
def step(self):
    account(self)
    if self.steps == 5:
        os.kill(os.getpid(), signal.SIGKILL)
privacy.Privacy.account_step = step
zoo.train("cnn", smoke=True, dp_epsilon=8.0, progress=False, deterministic=True, save_every=2, out=sys.argv[1])
"""


def metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_dp_run_records_what_it_spent(tmp_path: Path) -> None:
    run = zoo.train("cnn", **DP, out=tmp_path)
    spent = run.summary["privacy"]
    assert spent["delta"] == 1e-5 and spent["max_grad_norm"] == 1.0 and spent["accountant"] == "rdp"
    assert 0 < spent["epsilon"] <= 8.0 and spent["steps"] == 6  # smoke: 3 batches, 2 epochs
    assert spent["noise_multiplier"] > 0 and 0 < spent["sample_rate"] < 1
    rows = metrics(run.run_dir)
    assert [r["step"] for r in rows] == [3, 6]
    assert 0 < rows[0]["dp_epsilon"] < rows[1]["dp_epsilon"] == spent["epsilon"]
    assert all(r["dp_delta"] == 1e-5 and r["dp_noise_multiplier"] == spent["noise_multiplier"] for r in rows)


def test_kill_9_and_resume_spends_the_same_epsilon_bitwise(tmp_path: Path) -> None:
    whole = zoo.train("cnn", **DP, out=tmp_path / "whole")
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", KILLED_AT_STEP_5, str(out)], env=env, capture_output=True,
                          timeout=600)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    (run_dir,) = out.iterdir()
    assert not (run_dir / "summary.json").exists()
    resumed = zoo.train(resume=str(run_dir), progress=False)
    assert resumed.summary["privacy"]["epsilon"] == whole.summary["privacy"]["epsilon"]  # bitwise: == on floats
    assert resumed.summary["privacy"] == whole.summary["privacy"]
    assert [r["dp_epsilon"] for r in metrics(run_dir)] == [r["dp_epsilon"] for r in metrics(whole.run_dir)]
    a, b = load_file(str(whole.run_dir / "model.safetensors")), load_file(str(run_dir / "model.safetensors"))
    assert all(np.array_equal(a[k], b[k]) for k in a)  # the noise is drawn from the checkpointed RNG too


def test_poisson_batches_are_a_function_of_seed_and_epoch() -> None:
    class Options:
        seed, dp_epsilon, dp_delta, dp_max_grad_norm = 3, 8.0, None, None

    p = object.__new__(privacy.Privacy)
    p.seed, p.num_samples, p.steps_per_epoch, p.sample_rate, p.rank, p.world_size = 3, 1000, 20, 0.05, 0, 1
    first, again = p.batch_indices(1, 0), p.batch_indices(1, 0)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(first[7:], p.batch_indices(1, 7), strict=True))
    sizes = [len(b) for b in first]
    assert len(set(sizes)) > 1 and 30 < np.mean(sizes) < 70  # Poisson: sizes vary around 1000 × 0.05
    assert not np.array_equal(first[0], p.batch_indices(2, 0)[0])
    shares = []
    for rank in (0, 1):  # two processes: each its share (index % 2 == rank) of the same global batch
        p.rank, p.world_size = rank, 2
        shares.append(p.batch_indices(1, 0))
        assert all(bool((b % 2 == rank).all()) for b in shares[-1])
    assert all(np.array_equal(np.sort(np.concatenate([a, b])), whole)
               for a, b, whole in zip(*shares, first, strict=True))


def test_training_stops_before_epsilon_would_be_exceeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(privacy.Privacy, "_budget_steps", lambda self: 4)  # as if the budget ran out early
    run = zoo.train("cnn", **DP, out=tmp_path)
    assert run.summary["stopped"] == "privacy_budget" and run.summary["steps"] == 4
    assert run.summary["privacy"]["steps"] == 4


def test_what_dp_sgd_cannot_train_is_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def train(*args: str) -> Any:
        return CliRunner().invoke(cli, ["train", *args, "--smoke", "--out", str(tmp_path)])

    assert_one_line_error(train("resnet-small", "--dp-epsilon", "8"), "BatchNorm", "DP-SGD")
    assert_one_line_error(train("cnn", "--dp-delta", "1e-5"), "add --dp-epsilon")
    assert_one_line_error(train("cnn", "--dp-epsilon", "8", "--dp-delta", "2"), "--dp-delta")
    assert_one_line_error(train("cnn", "--dp-epsilon", "8", "--grad-clip", "1"), "--grad-clip")
    assert_one_line_error(train("cnn", "--dp-epsilon", "8", "--accumulate", "2"), "--accumulate")
    assert_one_line_error(train("cnn", "--dp-epsilon", "0.0001"), "too small")
    assert_one_line_error(train("gan", "--dp-epsilon", "8"), "one optimizer")
    assert_one_line_error(train("cnn", "--dp-epsilon", "8", "--hp", "mixup=0.2"), "mixup/cutmix")
    assert_one_line_error(train("cnn", "--dp-epsilon", "8", "--batch-size", "2"), "would likely be empty",
                          "raise --batch-size")
    monkeypatch.setitem(sys.modules, "opacus", None)
    assert_one_line_error(train("cnn", "--dp-epsilon", "8"), "plugzoo[privacy]")
    assert not any(tmp_path.iterdir())  # nothing was left behind


def test_fsdp_is_refused_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["train", "cnn", "--smoke", "--dp-epsilon", "8", "--strategy", "fsdp",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 2 and not any(tmp_path.iterdir())  # (a note says one process has nothing to shard)
    assert result.output.strip().splitlines()[-1] == (
        "Error: --dp-epsilon shares the clipped gradients the DDP way, not sharded; drop --strategy fsdp")


def test_two_processes_train_privately_spend_what_one_does_and_resume(tmp_path: Path) -> None:
    """--nproc 2 under DP-SGD (gloo on the CPU): the same global Poisson batches split over the processes, the noise
    added once, the accountant at the global sampling rate; it resumes, and it takes the steps one process takes."""
    import torch

    from zoo.engine.persistence import load_checkpoint

    common = ["cnn", "--epochs", "1", "--dp-epsilon", "8", "--deterministic", "--device", "cpu"]
    two = CliRunner().invoke(cli, ["train", *common, "--nproc", "2", "--max-steps", "3", "--out", str(tmp_path / "2")])
    assert two.exit_code == 0, two.output
    (run_dir,) = (tmp_path / "2").iterdir()
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.safetensors")
    assert checkpoint.state["world_size"] == 2 and checkpoint.state["privacy"]["history"][0][2] == 3
    again = CliRunner().invoke(cli, ["train", "--resume", str(run_dir), "--nproc", "2", "--max-steps", "5"])
    assert again.exit_code == 0, again.output
    one = zoo.train("cnn", epochs=1, dp_epsilon=8.0, deterministic=True, device="cpu", max_steps=5,
                    out=tmp_path / "1", progress=False)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["privacy"] == one.summary["privacy"]  # same σ, q (global batch / N), steps: the same ε
    assert summary["privacy"]["steps"] == 5 and 0 < summary["privacy"]["epsilon"] < 8
    assert summary["privacy"]["sample_rate"] == 64 / 1438  # the global batch of 64 over the training set
    a, b = load_file(run_dir / "model.safetensors"), load_file(one.run_dir / "model.safetensors")
    for key in a:  # the same batches, clipping and noise draws: one process's steps, up to summation order
        torch.testing.assert_close(torch.from_numpy(a[key]), torch.from_numpy(b[key]), rtol=1e-4, atol=1e-5)


def test_manifest_and_card_state_epsilon_and_delta_and_the_audit(tmp_path: Path) -> None:
    from zoo.bundles import export_run

    run = zoo.train("cnn", **DP, out=tmp_path / "runs")
    result = CliRunner().invoke(cli, ["audit", str(run.run_dir), "--json"])
    assert result.exit_code == 0, result.output
    audit = json.loads(result.output)
    assert audit["members"] == 1000 and audit["non_members"] == 359 and 0 <= audit["auc"] <= 1
    assert audit["dp_epsilon"] == run.summary["privacy"]["epsilon"]
    bundle = export_run(run.run_dir, out=tmp_path / "exports", providers=["cpu"]).bundle_dir
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["privacy"]["dp"] is True and manifest["privacy"]["epsilon"] == run.summary["privacy"]["epsilon"]
    assert manifest["privacy"]["delta"] == 1e-5 and manifest["privacy"]["audit"]["auc"] == audit["auc"]
    card = (bundle / "card.md").read_text()
    assert "## Privacy" in card and f"ε = {run.summary['privacy']['epsilon']:.3f}" in card and "δ = 1e-05" in card
    assert "Membership-inference audit" in card and "at 0.1 % FPR" in card


def test_audit_metrics_and_their_failure_modes() -> None:
    members, others = np.array([5.0, 6.0, 7.0, 8.0]), np.array([1.0, 2.0, 3.0, 4.0])
    assert roc_auc(members, others) == 1.0 and roc_auc(others, members) == 0.0
    assert roc_auc(np.ones(4), np.ones(4)) == 0.5  # identical scores: a coin
    assert tpr_at_fpr(members, others, 0.0) == 1.0
    assert tpr_at_fpr(others, members, 0.25) == 0.0
    rng = np.random.default_rng(0)
    same = roc_auc(rng.normal(size=2000), rng.normal(size=2000))
    assert abs(same - 0.5) < 0.03


def test_audit_refuses_what_it_cannot_attack(tmp_path: Path) -> None:
    assert_one_line_error(CliRunner().invoke(cli, ["audit", str(tmp_path)]), "not a zoo run directory")


def test_the_chance_spread_of_the_auc_matches_a_simulation() -> None:
    from zoo.audit import auc_null_std

    rng = np.random.default_rng(1)
    aucs = [roc_auc(rng.normal(size=100), rng.normal(size=100)) for _ in range(400)]
    assert abs(np.std(aucs) - auc_null_std(100, 100)) < 0.006  # 0.0409 in theory


# --- membership inference that can tell: a model that memorised, and members it never saw ------------------------

MEMORISED = {"train_samples": 64, "epochs": 40, "progress": False, "deterministic": True}


def test_train_samples_keeps_a_seeded_subset_and_the_run_remembers_it(tmp_path: Path) -> None:
    from zoo.data import DataOptions, load_dataset, load_run_data, subset_indices

    full = load_dataset("digits", seed=3)
    part = load_dataset("digits", seed=3, options=DataOptions(train_samples=50))
    chosen = subset_indices(len(full.y_train), 50, 3)
    assert len(part.y_train) == 50 and np.array_equal(part.x_train, full.x_train[chosen])
    assert np.array_equal(part.x_val, full.x_val)  # the held-out split is untouched
    assert not np.array_equal(chosen, subset_indices(len(full.y_train), 50, 4))  # another seed, another subset
    run = zoo.train("cnn", smoke=True, train_samples=50, seed=3, progress=False, out=tmp_path)
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["data_options"]["train_samples"] == 50
    assert np.array_equal(load_run_data(config).y_train, part.y_train)  # what zoo audit attacks


def test_train_samples_refuses_what_it_cannot_pick_in_one_line(tmp_path: Path) -> None:
    def train(*args: str) -> Any:
        return CliRunner().invoke(cli, ["train", *args, "--smoke", "--out", str(tmp_path)])

    assert_one_line_error(train("cnn", "--train-samples", "100000"), "--train-samples", "1438")
    assert_one_line_error(train("cnn", "--train-samples", "0"), "--train-samples", "positive")
    assert_one_line_error(train("gpt-nano", "--train-samples", "10"), "--train-samples", "text")
    assert not any(tmp_path.iterdir())


def test_the_audit_detects_a_model_that_memorised_and_not_members_it_never_saw(tmp_path: Path) -> None:
    from zoo.audit import audit_run, loss_attack
    from zoo.data import load_dataset, subset_indices
    from zoo.runs import load_run

    run = zoo.train("cnn", **MEMORISED, out=tmp_path)
    result = audit_run(run.run_dir)
    assert result.members == 64 and result.non_members == 1000  # validation and the unused training samples
    assert result.member_loss < result.non_member_loss
    assert result.auc > 0.5 + 3 * result.auc_null_std, result  # it memorised its 64 samples: the attack sees it
    # The same model against training-split samples it was never given: as good as a coin.
    full = load_dataset("digits", seed=0)
    unseen = np.setdiff1d(np.arange(len(full.y_train)), subset_indices(len(full.y_train), 64, 0))[:400]
    model = load_run(run.run_dir).model.eval()
    coin = loss_attack(model, (full.x_train[unseen], full.y_train[unseen]), (full.x_val, full.y_val))
    assert abs(coin.auc - 0.5) < 3 * coin.auc_null_std, coin
    assert coin.auc < result.auc - 0.1
    assert json.loads((run.run_dir / "audit.json").read_text())["tpr_at_fpr_01pct"] == result.tpr_at_fpr_01pct


# --- BatchNorm models: the family's DP variant ---------------------------------------------------------------------

RESNET = {"image_size": "8x8", "channels": 3, "batch_size": 8, "lr": 0.01, "smoke": True, "progress": False,
          "dp_epsilon": 8.0}


def test_resnet18_trains_privately_as_its_group_norm_variant_and_is_rebuilt_as_it(tmp_path: Path) -> None:
    import torch

    from zoo.bundles.privacy_card import privacy_text
    from zoo.runs import load_run

    run = zoo.train("resnet18", **RESNET, model_args={"stem": "small"}, out=tmp_path)
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["model_args"]["norm"] == "group" and config["model_args"]["stem"] == "small"
    assert run.summary["privacy"]["model_args"] == {"norm": "group"} and 0 < run.summary["privacy"]["epsilon"] <= 8
    model = load_run(run.run_dir).model  # what export, predict and explain rebuild
    kinds = {type(m) for m in model.modules()}
    assert torch.nn.GroupNorm in kinds and torch.nn.BatchNorm2d not in kinds
    saved = load_file(str(run.run_dir / "model.safetensors"))
    assert all(np.array_equal(v.detach().numpy(), saved[k]) for k, v in model.state_dict().items())
    assert "norm=group" in privacy_text(run.summary, run.run_dir)
    plain = zoo.create_model("resnet18", stem="small", num_classes=10)  # without DP: batch norm, as published
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())


def test_a_batch_norm_model_under_dp_is_still_refused_in_one_line(tmp_path: Path) -> None:
    """The user's --arg wins over the family's choice, and then DP-SGD cannot train it: one line, nothing left."""
    result = CliRunner().invoke(cli, ["train", "resnet18", "--dp-epsilon", "8", "--smoke", "--image-size", "16x16",
                                      "--channels", "3", "--arg", "stem=small", "--arg", "norm=batch",
                                      "--out", str(tmp_path)])
    assert_one_line_error(result, "BatchNorm", "resnet18")
    assert not any(tmp_path.iterdir())


def test_the_audit_reads_only_the_samples_it_draws() -> None:
    """An image folder is read lazily: the pool gives the drawn samples, in order, and touches no other."""
    from zoo.audit import Pool

    read: list[int] = []

    class Images:
        def __getitem__(self, key: np.ndarray) -> np.ndarray:
            read.extend(int(i) for i in key)
            return np.asarray(key, np.float32)[:, None] * 10

    pool = Pool([(Images(), np.arange(100) + 1000, np.array([5, 7, 9])), (Images(), np.arange(100), np.arange(50, 60))])
    assert len(pool) == 13
    x, y = pool.take(np.array([1, 3, 12]))
    assert x[:, 0].tolist() == [70.0, 500.0, 590.0] and y.tolist() == [1007, 50, 59]
    assert read == [7, 50, 59]
