"""Family contract v2: the run context, the v1 adapter, the engine's scheduler steps, the quality judge."""

from __future__ import annotations

from pathlib import Path

import zoo
from zoo.engine import checkpoint as ckpt


def test_every_scheduler_steps_once_per_optimizer_step(tmp_path: Path) -> None:
    """The GAN's generator steps twice a batch, but its schedule must still span the whole run."""
    run = zoo.train("gan", dataset="digits", epochs=1, smoke=True, schedule="cosine", hyperparameters={
        "generator_steps": 2}, out=tmp_path / "runs", progress=False, model_args={"features": 8})
    state = ckpt.load_checkpoint(run.run_dir / ckpt.FOLDER / ckpt.LAST).state
    steps = state["step"]
    assert steps > 0
    assert {name: s["last_epoch"] for name, s in state["schedulers"].items()} == {
        "discriminator": steps, "generator": steps}
