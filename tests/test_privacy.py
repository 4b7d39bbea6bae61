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
    p.seed, p.num_samples, p.steps_per_epoch, p.sample_rate = 3, 1000, 20, 0.05
    first, again = p.batch_indices(1, 0), p.batch_indices(1, 0)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(first[7:], p.batch_indices(1, 7), strict=True))
    sizes = [len(b) for b in first]
    assert len(set(sizes)) > 1 and 30 < np.mean(sizes) < 70  # Poisson: sizes vary around 1000 × 0.05
    assert not np.array_equal(first[0], p.batch_indices(2, 0)[0])


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
    monkeypatch.setitem(sys.modules, "opacus", None)
    assert_one_line_error(train("cnn", "--dp-epsilon", "8"), "plugzoo[privacy]")
    assert not any(tmp_path.iterdir())  # nothing was left behind


def test_ddp_is_refused_in_one_line() -> None:
    from zoo.errors import ZooError

    class Options:
        dp_epsilon, dp_delta, dp_max_grad_norm, accumulate, grad_clip = 8.0, None, None, 1, None
        precision, strategy, compile = "32", "ddp", False
        hp: dict = {}  # noqa: RUF012 - a stand-in for TrainOptions' --hp values

    class Family:
        wraps_for_ddp = True

    with pytest.raises(ZooError, match="drop --nproc"):
        privacy.check_options(Options(), Family(), 2, ("model",))
    privacy.check_options(Options(), Family(), 1, ("model",))


def test_manifest_and_card_state_epsilon_and_delta_and_the_audit(tmp_path: Path) -> None:
    from zoo.bundles import export_run

    run = zoo.train("cnn", **DP, out=tmp_path / "runs")
    result = CliRunner().invoke(cli, ["audit", str(run.run_dir), "--json"])
    assert result.exit_code == 0, result.output
    audit = json.loads(result.output)
    assert audit["members"] == audit["non_members"] > 0 and 0 <= audit["auc"] <= 1
    assert audit["dp_epsilon"] == run.summary["privacy"]["epsilon"]
    bundle = export_run(run.run_dir, out=tmp_path / "exports", providers=["cpu"]).bundle_dir
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["privacy"]["dp"] is True and manifest["privacy"]["epsilon"] == run.summary["privacy"]["epsilon"]
    assert manifest["privacy"]["delta"] == 1e-5 and manifest["privacy"]["audit"]["auc"] == audit["auc"]
    card = (bundle / "card.md").read_text()
    assert "## Privacy" in card and f"ε = {run.summary['privacy']['epsilon']:.3f}" in card and "δ = 1e-05" in card
    assert "Membership-inference audit" in card


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
