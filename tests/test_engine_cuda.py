"""The engine's CUDA paths: fp16 with a grad scaler, bf16, the deferred loss check, exact resume.

Skipped without a usable GPU (the CPU suite covers everything else); on a GPU machine run
``pytest tests/test_engine_cuda.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo.engine.persistence import load_checkpoint
from zoo.errors import ZooError

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TINY = {"epochs": 2, "batch_size": 128, "progress": False, "device": "cuda", "deterministic": True}


@pytest.mark.parametrize("precision", ["32", "bf16-mixed", "16-mixed"])
def test_cuda_precisions_train_and_resume_exactly(precision: str, tmp_path: Path) -> None:
    whole = zoo.train("cnn", out=tmp_path, precision=precision, **TINY)
    part = zoo.train("cnn", out=tmp_path, precision=precision, max_steps=7, **TINY)
    state = load_checkpoint(part.run_dir / "checkpoints" / "last.safetensors").state
    assert (state["scaler"] is not None) == (precision == "16-mixed")
    resumed = zoo.train(resume=part.run_dir, progress=False)
    a, b = load_file(whole.run_dir / "model.safetensors"), load_file(resumed.run_dir / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed CUDA run differs from the uninterrupted one"
    assert resumed.summary["metrics"]["val_accuracy"] > 0.5


def test_deferred_loss_check_on_cuda_stops_before_writing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from zoo_cnn.family import ClassifierFamily

    original = ClassifierFamily.training_step
    calls = {"n": 0}

    def poisoned(self, model, batch, optimizer, ctx):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        losses = original(self, model, batch, optimizer, ctx)
        if calls["n"] == 5:
            losses["loss"] = losses["loss"] * float("nan")
        return losses

    monkeypatch.setattr(ClassifierFamily, "training_step", poisoned)
    with pytest.raises(ZooError, match=r"non-finite at step 5 \(epoch 1"):
        zoo.train("cnn", out=tmp_path, save_every=2, **TINY)
    (run_dir,) = tmp_path.iterdir()
    assert load_checkpoint(run_dir / "checkpoints" / "last.safetensors").state["step"] == 4


def test_torch_outputs_returns_the_module_to_the_gpu() -> None:
    """Computing the CPU fp32 reference moved the caller's module to the CPU and left TF32 off for the process."""
    import numpy as np

    from zoo.bundles.graph_checks import torch_outputs

    module = torch.nn.Linear(3, 2).cuda()
    flag = torch.backends.cuda.matmul.allow_tf32
    torch_outputs(module, (np.ones((1, 3), np.float32),))
    assert module.weight.device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32 == flag


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="FSDP over one GPU shards nothing (NCCL: a process per GPU)")
def test_fsdp_never_puts_the_whole_model_on_a_gpu(tmp_path: Path) -> None:
    """FSDP over two GPUs: after setup each process's device holds its half of the cnn's parameters, and training
    with evaluation at each epoch end never holds a whole model more (process 0 kept a plain copy there for
    evaluation before)."""
    from .test_fsdp import run_memory_worker

    nproc = 2
    whole = sum(p.numel() * p.element_size() for p in zoo.create_model("cnn").parameters())
    for rank, report in enumerate(run_memory_worker("cuda", nproc, tmp_path)):
        assert report["after_setup"] / whole < 1 / nproc + 0.05, f"process {rank}: {report}"
        assert report["after_training"] / whole < 1 / nproc + 0.05, f"process {rank}: {report}"
        # the shard and the digits, which training keeps on the device (under 1 MiB); a full copy would add a model
        assert report["allocated_after_setup"] < whole * (1 / nproc + 0.05) + 2**20, report
