"""Resuming a run: everything is checked before anything in the run directory changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.engine.checkpoint import FOLDER, LAST, Checkpoint, load_checkpoint
from zoo.engine.options import RESUMABLE, TrainOptions
from zoo.errors import ZooError
from zoo.runs import CONFIG, SUMMARY, read_json

_UNSET = object()


def prepare_resume(run_dir: str | Path, model: str | None, flags: dict[str, Any],
                   world_size: int) -> tuple[TrainOptions, Path, Checkpoint]:
    """The run's options (with the flags that may change), its folder and its last checkpoint."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise ZooError(f"--resume {run_dir} is not a zoo run directory (no {CONFIG}); pass the folder "
                       "`zoo train` printed")
    config = read_json(run_dir / CONFIG, "run config")
    stored = config.get("options")
    if not isinstance(stored, dict) or "model" not in stored:
        raise ZooError(f"run {run_dir} was written by a zoo that cannot resume runs; start a new run")
    if model is not None and model not in (stored["model"], config.get("model")):
        raise ZooError(f"run {run_dir} trained model {config.get('model')!r}, not {model!r}; "
                       f"resume without a model name, or start a new run for {model!r}")
    for key, value in flags.items():
        if value is None or key in RESUMABLE:
            continue
        if key in ("hp", "args"):
            changed = {k: v for k, v in value.items() if stored[key].get(k) != v and
                       config.get("hyperparameters" if key == "hp" else "model_args", {}).get(k) != v}
            if changed:
                raise ZooError(f"--{key} {', '.join(changed)} cannot change when resuming; start a new run instead")
        elif stored.get(key) != value and config.get("hyperparameters", {}).get(key, _UNSET) != value:
            flag = "--" + key.replace("_", "-")
            used = stored.get(key) if stored.get(key) is not None else config.get("hyperparameters", {}).get(key)
            raise ZooError(f"{flag} cannot change when resuming (the run used {used!r}); "
                           "start a new run instead")
    checkpoint = load_checkpoint(run_dir / FOLDER / LAST)
    state = checkpoint.state
    if state.get("model") != config.get("model"):
        raise ZooError(f"checkpoint {checkpoint.path} belongs to model {state.get('model')!r}, but the run "
                       f"trains {config.get('model')!r}; restore the run's own checkpoints folder")
    if state.get("world_size") != world_size:
        raise ZooError(f"run {run_dir} was trained by {state.get('world_size')} process(es), this is {world_size}; "
                       f"resume with --nproc {state.get('world_size')} (or torchrun --nproc-per-node "
                       f"{state.get('world_size')})")
    if state.get("finished") and (run_dir / SUMMARY).is_file():  # killed before summary.json: finish it
        raise ZooError(f"run {run_dir} already finished (step {state.get('step')}); nothing to resume")
    given = {k: v for k, v in flags.items() if k in RESUMABLE and v is not None}
    # The run's own plugin: a plugin installed since may have taken (or share) the plain model name.
    model_name = stored["model"]
    if config.get("plugin") and ":" not in model_name:
        model_name = f"{config['plugin']}:{model_name}"
    options = TrainOptions(**{**stored, "model": model_name, "max_steps": None, **given})
    return options, run_dir, checkpoint
