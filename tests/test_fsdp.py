"""``zoo train --strategy fsdp``: FSDP2 under two processes on the CPU (gloo) matches one process, resumes
exactly, writes checkpoints in the single-process layout, and refuses what it cannot train in one line.

Kept lean for a 2-core machine: the cnn on the digits in smoke mode (3 batches an epoch, 2 epochs: 6 steps).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

import zoo
from zoo.cli import cli
from zoo.engine.distributed import block_modules, check_strategy
from zoo.engine.options import TrainOptions
from zoo.engine.persistence import load_checkpoint
from zoo.errors import ZooError

from .helpers import assert_one_line_error

COMMON = ["cnn", "--smoke", "--deterministic", "--device", "cpu", "--strategy", "fsdp"]


def _train(*args: str, says: str = "") -> Path:
    out = Path(args[args.index("--out") + 1])
    result = CliRunner().invoke(cli, ["train", *args])
    assert result.exit_code == 0, result.output
    assert says in result.output
    (run_dir,) = out.iterdir()
    return run_dir


def _curve(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two processes and one (which trains the whole model), and two stopped at step 4 (mid-epoch 2) then
    resumed. The cnn's own optimizer: SGD with momentum (AdamW's state: test_adamw_state_round_trips...).
    All start from the same --init file, which the sharded model must take (or the runs would not agree)."""
    tmp = tmp_path_factory.mktemp("fsdp")
    torch.manual_seed(123)
    init = tmp / "init.safetensors"
    save_file(zoo.create_model("cnn").state_dict(), str(init))
    common = [*COMMON, "--init", str(init)]
    two = _train(*common, "--nproc", "2", "--out", str(tmp / "two"))
    one = _train(*common, "--out", str(tmp / "one"), says="--strategy fsdp in one process: nothing to shard")
    stopped = _train(*common, "--nproc", "2", "--max-steps", "4", "--out", str(tmp / "resumed"))
    result = CliRunner().invoke(cli, ["train", "--resume", str(stopped), "--nproc", "2"])
    assert result.exit_code == 0, result.output
    return {"two": two, "one": one, "resumed": stopped}


def test_two_processes_match_one_process(runs: dict[str, Path]) -> None:
    """Each process averages its half batch and FSDP averages the gradients (reduce-scatter), so the sums
    differ from one process's only in the order of float additions (measured: 3e-8 at most in the weights
    after 6 SGD steps). A tolerance of 1e-5 relative (loss) and 1e-6 absolute (weights) leaves room for that
    and catches any real difference (a wrong shard or an unsynchronised gradient moves them by ~1e-2). SGD,
    not AdamW: Adam divides each gradient element by its own running size, which turns the rounding noise
    of near-zero elements into differences of 1e-5 (measured 2e-5) that a tight tolerance could not tell
    from a bug."""
    two, one = _curve(runs["two"]), _curve(runs["one"])
    assert [r["step"] for r in two] == [r["step"] for r in one] == [3, 6]
    for a, b in zip(two, one, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    a, b = load_file(runs["two"] / "model.safetensors"), load_file(runs["one"] / "model.safetensors")
    assert sorted(a) == sorted(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    assert not torch.equal(a["fc2.weight"], zoo.create_model("cnn").state_dict()["fc2.weight"])
    config = json.loads((runs["two"] / "config.json").read_text())
    summary = json.loads((runs["two"] / "summary.json").read_text())
    assert config["options"]["strategy"] == summary["strategy"] == "fsdp" and summary["processes"] == 2
    assert config["init"]["sha256"]


def test_checkpoint_has_the_single_process_layout(runs: dict[str, Path]) -> None:
    """The gathered full state: the same tensor names and shapes and optimizer JSON as one process's (plus
    process 1's RNG and loss sums); the final weights load into a plain model (export works unchanged)."""
    two = load_checkpoint(runs["two"] / "checkpoints" / "last.safetensors")
    one = load_checkpoint(runs["one"] / "checkpoints" / "last.safetensors")
    extra = {k for k in two.tensors if k.startswith(("rng/1/", "totals@1/"))}
    assert extra and set(two.tensors) - extra == set(one.tensors)
    shapes = {k: v.shape for k, v in two.tensors.items() if k not in extra}
    assert shapes == {k: v.shape for k, v in one.tensors.items()}
    assert {k for k in two.tensors if k.startswith("optim/model/0/")} == {"optim/model/0/momentum_buffer"}
    assert two.state["optimizers"] == one.state["optimizers"]
    zoo.create_model("cnn").load_state_dict(load_file(runs["two"] / "model.safetensors"), strict=True)


def test_resume_is_exact(runs: dict[str, Path]) -> None:
    """Stopped by --max-steps mid-epoch and resumed: bitwise the weights and the metrics of the whole run."""
    a, b = load_file(runs["resumed"] / "model.safetensors"), load_file(runs["two"] / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in b)
    assert _curve(runs["resumed"]) == _curve(runs["two"])


def test_resume_refuses_another_strategy(runs: dict[str, Path]) -> None:
    result = CliRunner().invoke(cli, ["train", "--resume", str(runs["resumed"]), "--strategy", "ddp"])
    assert_one_line_error(result, "--strategy cannot change when resuming", "'fsdp'")


@pytest.mark.parametrize(("args", "message"), [
    (["gan"], "family 'gan' calls parts of its model directly"),
    (["vae"], "family 'vae' calls parts of its model directly"),
    (["cnn", "--channels-last"], "does not combine with --channels-last"),
    (["cnn", "--compile"], "does not combine with --compile"),
])
def test_what_fsdp_cannot_train_is_refused_before_a_run_folder(args: list[str], message: str,
                                                               tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["train", *args, "--strategy", "fsdp", "--device", "cpu", "--smoke",
                                      "--out", str(tmp_path)])
    assert_one_line_error(result, "--strategy fsdp", message)
    assert not any(tmp_path.iterdir())


def test_families_with_several_optimizers_are_refused() -> None:
    from zoo.family import RunContext

    class TwoOptimizers:
        wraps_for_ddp = True

        def optimizer_steps(self, ctx: RunContext) -> tuple[str, ...]:
            return ("a", "b")

    ctx = RunContext(hyperparameters={}, data=None)
    with pytest.raises(ZooError, match="family 'TwoOptimizers' steps 2 optimizers"):
        check_strategy(TrainOptions(model="x", strategy="fsdp"), TwoOptimizers(), ctx)
    check_strategy(TrainOptions(model="x", strategy="ddp"), TwoOptimizers(), ctx)  # DDP trains them


def test_blocks_are_the_containers_elements_and_tied_weights_stay_with_the_root() -> None:
    net = zoo.create_model("resnet18", stem="small", num_classes=10)
    blocks = block_modules(net)
    assert [type(b).__name__ for b in blocks].count("BasicBlock") == 8 and net.fc in blocks
    tied = torch.nn.Sequential(torch.nn.Embedding(5, 4), torch.nn.Linear(4, 4), torch.nn.Linear(4, 5))
    tied[2].weight = tied[0].weight
    assert block_modules(tied) == [tied[1]]
    vit = zoo.create_model("vit-tiny", image_size=32, num_classes=10)
    assert block_modules(vit) == list(vit.blocks)  # the model's own fsdp_blocks()
    gpt = zoo.create_model("gpt-nano")
    assert block_modules(gpt) == list(gpt.blocks)  # not the tied embedding its forward uses directly


@pytest.fixture
def group_of_one() -> Any:
    """A gloo process group of one process, in this process: FSDP2 shards over a world of one."""
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _adamw_steps(net: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x, y = torch.randn(8, 4, generator=generator), torch.randint(0, 3, (8,), generator=generator)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()


def test_adamw_state_round_trips_through_a_checkpoint(group_of_one: Any, tmp_path: Path) -> None:
    """The gathered AdamW state (moments and step counts by parameter name) goes into the checkpoint under the
    plain optimizer's indices, with its JSON, and loads back into a freshly sharded model: training on gives
    what a plain model and optimizer give."""
    from zoo.engine.distributed import Sharded
    from zoo.engine.persistence import capture_rng, restore_optimizer, save_checkpoint

    def fresh() -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))

    plain, net = fresh(), fresh()
    sharded = Sharded(net, "cpu", world_size=1, is_main=True)
    plain_opt = torch.optim.AdamW(plain.parameters(), lr=0.05, weight_decay=0.1)
    opt = torch.optim.AdamW(net.parameters(), lr=0.05, weight_decay=0.1)
    _adamw_steps(plain, plain_opt, 3, seed=1)
    _adamw_steps(net, opt, 3, seed=1)
    path = tmp_path / "c.safetensors"
    model_part, optim_parts = sharded.checkpoint_parts({"model": opt}, step=3)
    save_checkpoint(path, model=model_part, optimizers=optim_parts, schedulers={}, scaler=None,
                    rng=[capture_rng()], extra_tensors={}, state={})
    checkpoint = load_checkpoint(path)
    assert {k for k in checkpoint.tensors if k.startswith("optim/model/3/")} == {
        "optim/model/3/exp_avg", "optim/model/3/exp_avg_sq", "optim/model/3/step"}
    reference = tmp_path / "plain.safetensors"
    save_checkpoint(reference, model=plain, optimizers={"model": plain_opt}, schedulers={}, scaler=None,
                    rng=[capture_rng()], extra_tensors={}, state={})
    assert load_checkpoint(reference).state["optimizers"] == checkpoint.state["optimizers"]

    again = fresh()
    resharded = Sharded(again, "cpu", world_size=1, is_main=True)
    again_opt = torch.optim.AdamW(again.parameters(), lr=0.05, weight_decay=0.1)
    resharded.restore(checkpoint, {"model": again_opt}, "toy")
    restore_optimizer(plain_opt, load_checkpoint(reference), "model")
    _adamw_steps(plain, plain_opt, 2, seed=2)
    _adamw_steps(again, again_opt, 2, seed=2)
    final = resharded.model_state(step=5)
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(final[key], value, rtol=1e-6, atol=1e-7)


def run_memory_worker(device: str, nproc: int, out: Path) -> list[dict[str, Any]]:
    """``tests/fsdp_memory_worker.py`` under torchrun: each process's report (bounded in time)."""
    worker = Path(__file__).with_name("fsdp_memory_worker.py")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--standalone",
               str(worker), device, str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((out / f"rank-{rank}.json").read_text()) for rank in range(nproc)]


def test_no_process_holds_the_whole_model(tmp_path: Path) -> None:
    """Each of two processes holds half of the cnn's parameter storage after setup and after two epochs with
    their evaluations: the sharded model is built on the CPU and sharded there, evaluation runs on the shards,
    and process 0 keeps no plain copy of the model (it kept one before: 1.5 models on process 0)."""
    whole = sum(p.numel() * p.element_size() for p in zoo.create_model("cnn").parameters())
    reports = run_memory_worker("cpu", 2, tmp_path)
    for rank, report in enumerate(reports):
        for moment in ("after_setup", "after_training"):
            share = report[moment] / whole
            assert 0.45 < share < 0.55, f"process {rank} {moment}: {share:.2f} of the model's parameter bytes"
    (run_dir,) = (tmp_path / "runs").iterdir()
    zoo.create_model("cnn").load_state_dict(load_file(run_dir / "model.safetensors"), strict=True)
    assert [r["step"] for r in _curve(run_dir)] == [3, 6] and "val_accuracy" in _curve(run_dir)[-1]


def test_language_model_evaluates_and_samples_on_the_shards(tmp_path: Path) -> None:
    """gpt-nano under FSDP: its epoch-end hook samples text (a forward per token, collective on the sharded
    model) on both processes; the run folder gets process 0's samples and tokenizer, and nothing else."""
    from pydoc_data.topics import topics

    text = tmp_path / "text.txt"
    text.write_text("".join(topics[k] for k in sorted(topics))[:12_000], encoding="utf-8")
    run_dir = _train("gpt-nano", "--data", f"text:{text}", "--batch-size", "8", "--smoke", "--device", "cpu",
                     "--strategy", "fsdp", "--nproc", "2", "--out", str(tmp_path / "runs"))
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["epoch-001.txt", "epoch-002.txt"]
    assert "--- prompt" in (run_dir / "samples" / "epoch-002.txt").read_text()
    assert (run_dir / "tokenizer.json").is_file()
    assert all(torch.isfinite(t).all() for t in load_file(run_dir / "model.safetensors").values())
    assert "val_loss" in _curve(run_dir)[-1]
