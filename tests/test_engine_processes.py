"""The engine as real processes: signals, kill -9 at random moments, two processes under torchrun.

Kept lean for a 2-core machine: batch 128 (12 steps an epoch), few steps, few repetitions.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import zoo
from zoo.cli import cli
from zoo.engine.persistence import load_checkpoint

LONG_RUN = ["train", "cnn", "--epochs", "40", "--batch-size", "128", "--deterministic", "--device", "cpu"]


def start(args: list[str], out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(torch.get_num_threads())}
    return subprocess.Popen([sys.executable, "-m", "zoo", *args, "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path_glob: str, folder: Path, proc: subprocess.Popen, timeout: float = 120) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(folder.glob(path_glob))
        if found:
            return found[0]
        if proc.poll() is not None:
            raise AssertionError(f"training ended early: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no {path_glob} after {timeout}s")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_prints_how_to_resume_and_the_resumed_run_is_exact(sig, code: int, tmp_path: Path) -> None:
    proc = start([*LONG_RUN, "--save-every", "3"], tmp_path)
    wait_for("*/checkpoints/last.safetensors", tmp_path, proc)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    (run_dir,) = tmp_path.iterdir()
    assert f"interrupted by {sig.name} at step" in stderr
    assert f"resume with: zoo train --resume {run_dir}" in stderr
    stopped_at = load_checkpoint(run_dir / "checkpoints" / "last.safetensors").state["step"]

    resumed = zoo.train(resume=run_dir, max_steps=stopped_at + 2, progress=False)
    whole = zoo.train("cnn", epochs=40, batch_size=128, deterministic=True, device="cpu", max_steps=stopped_at + 2,
                      out=tmp_path / "whole", progress=False)
    a, b = load_file(resumed.run_dir / "model.safetensors"), load_file(whole.run_dir / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_kill_9_at_random_moments_never_leaves_a_broken_checkpoint(tmp_path: Path) -> None:
    rng = random.Random(1234)
    for attempt in range(3):
        out = tmp_path / str(attempt)
        proc = start([*LONG_RUN, "--save-every", "1", "--keep-last", "1"], out)
        wait_for("*/checkpoints/last.safetensors", out, proc)
        time.sleep(rng.uniform(0.0, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        (run_dir,) = out.iterdir()
        for path in (run_dir / "checkpoints").glob("*.safetensors"):
            checkpoint = load_checkpoint(path)  # raises on a torn file
            assert checkpoint.state["step"] >= 1
    resumed = zoo.train(resume=run_dir, max_steps=checkpoint.state["step"] + 1, progress=False)
    assert resumed.summary["steps"] == checkpoint.state["step"] + 1


def test_two_processes_match_one_and_resume(tmp_path: Path) -> None:
    common = ["cnn", "--epochs", "1", "--batch-size", "64", "--deterministic", "--device", "cpu"]
    two = CliRunner().invoke(cli, ["train", *common, "--nproc", "2", "--max-steps", "4", "--out", str(tmp_path / "2")])
    assert two.exit_code == 0, two.output
    (run_dir,) = (tmp_path / "2").iterdir()
    assert load_checkpoint(run_dir / "checkpoints" / "last.safetensors").state["world_size"] == 2

    wrong = CliRunner().invoke(cli, ["train", "--resume", str(run_dir)])
    assert wrong.exit_code == 2 and "resume with --nproc 2" in wrong.output

    again = CliRunner().invoke(cli, ["train", "--resume", str(run_dir), "--nproc", "2", "--max-steps", "7"])
    assert again.exit_code == 0, again.output
    one = zoo.train("cnn", epochs=1, batch_size=64, deterministic=True, device="cpu", max_steps=7,
                    out=tmp_path / "1", progress=False)
    a, b = load_file(run_dir / "model.safetensors"), load_file(one.run_dir / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    assert not torch.equal(a["fc2.weight"], zoo.create_model("cnn").state_dict()["fc2.weight"])


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    if not path.exists():
        pytest.skip("needs Linux /proc children lists")
    return [int(p) for p in path.read_text().split()]


@pytest.mark.parametrize("target", ["one worker", "the launcher"])
def test_sigterm_under_two_processes_stops_both_cleanly(target: str, tmp_path: Path) -> None:
    """To one worker: the stop decision is shared (all-reduced at each step boundary), so no process hangs or
    trains on. To `zoo train --nproc 2` itself: passed on through torchrun, and the exit code says SIGTERM."""
    proc = start([*LONG_RUN, "--nproc", "2", "--save-every", "2"], tmp_path)
    wait_for("*/checkpoints/last.safetensors", tmp_path, proc, timeout=180)
    (torchrun,) = _children(proc.pid)
    workers = _children(torchrun)
    assert len(workers) == 2
    os.kill(workers[-1] if target == "one worker" else proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143 if target == "the launcher" else proc.returncode != 0  # torchrun says 1
    assert "interrupted by SIGTERM at step" in stderr and "--nproc 2" in stderr
    (run_dir,) = tmp_path.iterdir()
    state = load_checkpoint(run_dir / "checkpoints" / "last.safetensors").state
    assert state["world_size"] == 2 and len(state["rng"]) == 2


@pytest.mark.parametrize("model", ["gan", "vae"])
def test_families_that_call_model_parts_train_under_two_processes(model: str, tmp_path: Path) -> None:
    """A GAN or VAE calls model.generator / model.encoder directly, so it gets no DDP wrapper: the engine
    averages its gradients across processes itself (and its quality classifier trains in one process)."""
    result = CliRunner().invoke(cli, ["train", model, "--epochs", "1", "--batch-size", "64", "--device", "cpu",
                                      "--nproc", "2", "--max-steps", "3", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (run_dir,) = tmp_path.iterdir()
    weights = load_file(run_dir / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())
    assert load_checkpoint(run_dir / "checkpoints" / "last.safetensors").state["world_size"] == 2


def test_language_model_trains_under_two_processes(tmp_path: Path) -> None:
    """The lm family (model called as model(...), DDP-wrapped) on a short text under --nproc 2."""
    from pydoc_data.topics import topics

    text = tmp_path / "text.txt"
    text.write_text("".join(topics[k] for k in sorted(topics))[:12_000], encoding="utf-8")
    result = CliRunner().invoke(cli, ["train", "gpt-nano", "--data", f"text:{text}", "--batch-size", "8",
                                      "--device", "cpu", "--nproc", "2", "--max-steps", "3",
                                      "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert all(torch.isfinite(t).all() for t in load_file(run_dir / "model.safetensors").values())
    assert load_checkpoint(run_dir / "checkpoints" / "last.safetensors").state["world_size"] == 2


def _rank_of(pid: int) -> int:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return int(next(v for v in environ if v.startswith(b"RANK=")).split(b"=", 1)[1])


@pytest.mark.parametrize(("strategy", "victim"), [("fsdp", 1), ("ddp", 0)])
def test_kill_9_of_one_worker_says_which_and_how_to_resume(strategy: str, victim: int, tmp_path: Path) -> None:
    """A real kill -9 of one training process under `zoo train --nproc 2` (gloo): one line naming the process
    and the signal, the run folder and the command that resumes it, exit 128+9; that command then resumes.
    Before, torchrun's report named the process it stopped itself (SIGTERM), and the exit code was 1."""
    proc = start([*LONG_RUN, "--nproc", "2", "--save-every", "2", "--strategy", strategy], tmp_path / "runs")
    wait_for("*/checkpoints/last.safetensors", tmp_path / "runs", proc, timeout=180)
    (torchrun,) = _children(proc.pid)
    workers = {_rank_of(pid): pid for pid in _children(torchrun)}
    os.kill(workers[victim], signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)
    (run_dir,) = (tmp_path / "runs").iterdir()
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert f"training process {victim} was killed by SIGKILL" in lines[0]
    assert f"resume with zoo train --resume {run_dir} --nproc 2" in lines[0]
    assert proc.returncode == 128 + signal.SIGKILL
    step = load_checkpoint(run_dir / "checkpoints" / "last.safetensors").state["step"]
    resumed = CliRunner().invoke(cli, ["train", "--resume", str(run_dir), "--nproc", "2", "--max-steps", str(step + 2)])
    assert resumed.exit_code == 0, resumed.output
    assert load_checkpoint(run_dir / "checkpoints" / "last.safetensors").state["step"] == step + 2
