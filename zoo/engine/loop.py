"""The shared training loop. It knows no family: the family supplies the step and the evaluation."""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.engine.config import TrainConfig, resolve_hyperparameters
from zoo.engine.progress import Progress
from zoo.engine.runs import CONFIG, METRICS, SUMMARY, WEIGHTS, new_run_dir
from zoo.engine.setup import pick_device, seed_everything
from zoo.errors import ZooError
from zoo.plots import LOSS_CURVE, write_loss_curve


@dataclass
class RunResult:
    """What a finished training run left behind."""

    run_dir: Path
    summary: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), **self.summary}


def train(
    model: str,
    *,
    dataset: str = "digits",
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    device: str = "auto",
    out: str | Path = "runs",
    progress: bool = True,
    hyperparameters: dict[str, Any] | None = None,
    model_args: dict[str, Any] | None = None,
) -> RunResult:
    """Train ``model`` on ``dataset`` through the shared engine and write a run directory under ``out``."""
    from zoo.api import load_family
    from zoo.data import load_dataset
    from zoo.registry import get_dataset_spec, get_spec

    spec = get_spec(model)
    family = load_family(spec.family)
    hp = resolve_hyperparameters(
        family.hyperparameters, spec.defaults,
        {"epochs": epochs, "batch_size": batch_size, "lr": lr, **(hyperparameters or {})},
    )
    get_dataset_spec(dataset)  # unknown dataset: fail before touching torch
    torch_device = pick_device(device)
    data = load_dataset(dataset, seed=seed)
    resolved_args = {**spec.model_args, **family.data_args(spec, data.info), **(model_args or {})}
    config = TrainConfig(
        model=spec.name, family=spec.family, dataset=dataset, seed=seed, device=str(torch_device),
        hyperparameters=hp, model_args=resolved_args,
    )
    seed_everything(seed)
    net = family.build(spec, data.info, resolved_args).to(torch_device)
    optimizers = family.configure_optimizers(net, hp)
    if set(optimizers) != set(family.optimizer_order):
        raise ZooError(
            f"family {spec.family!r} returned optimizers {sorted(optimizers)} but declares "
            f"{list(family.optimizer_order)}; fix the family plugin"
        )
    run_dir = new_run_dir(out, spec.name)
    _write_config(run_dir, config, data.info, spec.plugin)
    summary = fit(net, family, optimizers, data, config, run_dir, torch_device, progress)
    return RunResult(run_dir, summary)


def _write_config(run_dir: Path, config: TrainConfig, data_info: Any, plugin: str) -> None:
    import torch

    from zoo.atomic import write_json
    from zoo.version import __version__

    write_json(
        run_dir / CONFIG,
        {
            **config.to_dict(),
            "plugin": plugin,
            "data": data_info.to_dict(),
            "run_id": run_dir.name,
            "versions": {"zoo": __version__, "torch": torch.__version__, "python": platform.python_version()},
        },
    )


def fit(
    net: Any, family: Any, optimizers: dict[str, Any], data: Any, config: TrainConfig, run_dir: Path,
    device: Any, show_progress: bool,
) -> dict[str, Any]:
    """Run the epochs, log metrics after each, save the final weights and the summary."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from zoo.atomic import save_weights, write_json

    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(
        TensorDataset(torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)),
        batch_size=config.batch_size, shuffle=True, generator=generator, drop_last=False,
    )
    progress = Progress(config.epochs, len(loader), enabled=show_progress)
    monitor, mode = family.monitor
    best: tuple[float, int] | None = None
    started = time.perf_counter()
    metrics: dict[str, float] = {}
    step = 0
    with (run_dir / METRICS).open("a") as log:
        for epoch in range(1, config.epochs + 1):
            progress.start_epoch(epoch)
            net.train()
            totals: dict[str, Any] = {}
            for batch in loader:
                batch = [t.to(device, non_blocking=True) for t in batch]
                step += 1
                for name in family.optimizer_order:
                    losses = _optimizer_step(net, family, optimizers[name], batch, name, step)
                    for key, value in losses.items():
                        label = key if len(optimizers) == 1 else f"{name}_{key}"
                        totals[label] = totals.get(label, 0.0) + value.detach()
                progress.step()
            metrics = {f"train_{k}": float(v) / len(loader) for k, v in totals.items()}
            net.eval()
            with torch.no_grad():
                metrics.update(family.evaluate(net, data, device))
                metrics.update(family.epoch_end(net, data, run_dir, epoch, device))  # family hook: pictures, metrics
            value = metrics.get(monitor)
            if value is not None and (best is None or (value > best[0] if mode == "max" else value < best[0])):
                best = (value, epoch)
            log.write(json.dumps({"epoch": epoch, "step": step, **metrics}) + "\n")
            log.flush()
            progress.end_epoch(epoch, metrics)
    progress.close()
    save_weights(run_dir / WEIGHTS, net.state_dict(), metadata={"model": config.model, "run_id": run_dir.name})
    net.eval()
    with torch.no_grad():
        metrics = {**metrics, **family.final_metrics(net, data, run_dir, device)}  # family hook: final metrics
    write_loss_curve(run_dir / METRICS, run_dir / LOSS_CURVE)  # every run of every family
    summary = {
        "model": config.model,
        "family": config.family,
        "dataset": config.dataset,
        "epochs": config.epochs,
        "steps": step,
        "seconds": round(time.perf_counter() - started, 3),
        "metrics": metrics,
        "monitor": monitor,
        "best": {"epoch": best[1], monitor: best[0]} if best else None,
    }
    write_json(run_dir / SUMMARY, summary)
    return summary


def _optimizer_step(net: Any, family: Any, optimizer: Any, batch: Any, name: str, step: int) -> dict[str, Any]:
    optimizer.zero_grad(set_to_none=True)
    losses = family.training_step(net, batch, name)
    if "loss" not in losses:
        raise ZooError(f"family training_step returned {sorted(losses)} without 'loss'; fix the family plugin")
    loss = losses["loss"]
    if not math.isfinite(float(loss.detach())):
        parts = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
        raise ZooError(f"loss became non-finite at step {step} ({parts}); lower --lr and train again")
    loss.backward()
    optimizer.step()
    return losses
