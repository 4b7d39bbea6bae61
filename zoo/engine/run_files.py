"""What the engine writes into a run folder besides checkpoints: the configuration and the summary."""

from __future__ import annotations

import platform
from dataclasses import replace
from pathlib import Path
from typing import Any

from zoo.engine.options import TrainOptions, dump_toml
from zoo.runs import CONFIG, METRICS, SUMMARY, WEIGHTS

RUN_TOML = "run.toml"


def reproducible_options(options: TrainOptions, hp: dict[str, Any]) -> TrainOptions:
    """``options`` with the resolved hyperparameters filled in: ``run.toml`` trains the same run again."""
    return replace(options, epochs=int(hp["epochs"]), batch_size=int(hp["batch_size"]), lr=float(hp["lr"]),
                   optimizer=hp.get("optimizer"), progress=True,
                   hp={k: v for k, v in hp.items() if k not in ("epochs", "batch_size", "lr", "optimizer")},
                   args=dict(options.args))


def write_config(run_dir: Path, trainer: Any, init: Any = None) -> None:
    """``config.json`` (everything needed to rebuild the model and its data, and the ``--init`` record
    ``init``) and ``run.toml``."""
    import torch

    from zoo.atomic import write_bytes, write_json
    from zoo.version import __version__

    write_json(run_dir / CONFIG, {
        **trainer.config.to_dict(),
        "plugin": trainer.spec.plugin,
        "data": trainer.data.info.to_dict(),
        "run_id": run_dir.name,
        "world_size": trainer.world.size,
        "options": trainer.options.to_dict(),
        "init": init.to_dict() if init else None,
        "versions": {"zoo": __version__, "torch": torch.__version__, "python": platform.python_version()},
    })
    options = reproducible_options(trainer.options, trainer.config.hyperparameters)
    write_bytes(run_dir / RUN_TOML, dump_toml(options).encode())


def write_final(run_dir: Path, net: Any, model_name: str, summary: dict[str, Any]) -> None:
    """The final weights, the loss curve and ``summary.json``."""
    from zoo.atomic import save_weights, write_json
    from zoo.plots import LOSS_CURVE, write_loss_curve

    save_weights(run_dir / WEIGHTS, net.state_dict(), metadata={"model": model_name, "run_id": run_dir.name})
    write_loss_curve(run_dir / METRICS, run_dir / LOSS_CURVE)  # every run of every family
    write_json(run_dir / SUMMARY, summary)


def summary_of(trainer: Any, stop_reason: str | None, seconds: float) -> dict[str, Any]:
    """``summary.json``: what ran, how it stopped, the last metrics and the best epoch."""
    monitor, state = trainer.family.monitor[0], trainer.state
    return {
        "model": trainer.spec.name, "family": trainer.spec.family, "dataset": trainer.options.dataset,
        "epochs": trainer.epochs, "steps": state.step, "processes": trainer.world.size,
        "strategy": trainer.options.strategy, "seconds": round(seconds, 3),
        "stopped": stop_reason or "completed", "skipped_steps": state.skipped,
        "metrics": state.metrics, "monitor": monitor,
        "best": {"epoch": state.best[1], monitor: state.best[0]} if state.best else None,
        **({"privacy": trainer.privacy.spent().to_dict()} if getattr(trainer, "privacy", None) else {}),
    }
