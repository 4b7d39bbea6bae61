"""What the engine keeps on disk: checkpoints, the checks before a resume, repairs after a crash, and
the run's configuration, final weights and summary. File names come from :mod:`zoo.run_layout`.

Checkpoints: the whole training state in one safetensors file, written atomically.

Tensors (weights, optimizer moments, RNG states, running metric sums) are safetensors entries;
everything else (epoch, step, position in the epoch, optimizer settings, schedulers, grad scaler,
Python/NumPy RNG) is JSON in the file's metadata. Nothing is ever unpickled. One file renamed into
place means a crash at any moment leaves the previous checkpoint or the new one, never a torn one.

Files in ``RUN/checkpoints/``: ``last.safetensors``, ``best.safetensors`` (best monitored metric)
and ``step-NNNNNNNN.safetensors`` (the newest ``keep_last`` of them).

Resuming a run: everything is checked before anything in the run directory changes.

What a run folder needs after a crash or a ``kill -9``: metrics repaired, and no empty run left behind.

What the engine writes into a run folder besides checkpoints: the configuration and the summary.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from zoo.engine.options import RESUMABLE, TrainOptions, dump_toml
from zoo.errors import ZooError
from zoo.run_layout import (
    CHECKPOINT_STATE,
    CHECKPOINTS,
    CONFIG,
    LAST,
    LOSS_CURVE,
    METRICS,
    METRICS_CSV,
    RUN_TOML,
    STEP_CHECKPOINTS,
    SUMMARY,
    WEIGHTS,
)
from zoo.runs import read_json

# === checkpoints =====================================================================================================

#: Bumped when the layout changes; a checkpoint of another format is refused with a clear line.
FORMAT = 1


@dataclass
class Checkpoint:
    """A checkpoint read back: ``tensors`` by name and ``state`` (the JSON part)."""

    path: Path
    tensors: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)

    def prefixed(self, prefix: str) -> dict[str, Any]:
        return {k[len(prefix):]: v for k, v in self.tensors.items() if k.startswith(prefix)}


# --- random number generators ------------------------------------------------------------------

def capture_rng() -> dict[str, Any]:
    """This process's RNG states: torch (CPU and every CUDA device), NumPy, Python."""
    import torch

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "numpy": [kind, int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss],
    }


def restore_rng(checkpoint: Checkpoint, rank: int) -> None:
    """Put this rank's RNG states back exactly as they were saved."""
    try:
        _restore_rng(checkpoint, rank)
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        raise ZooError(f"checkpoint {checkpoint.path} lacks usable RNG states for process {rank} ({exc!r}); "
                       "it is damaged or not zoo's: restore the run's checkpoints folder or start a new run") from exc


def _restore_rng(checkpoint: Checkpoint, rank: int) -> None:
    import torch

    prefix = f"rng/{rank}/"
    saved = checkpoint.state["rng"][rank]
    torch.set_rng_state(checkpoint.tensors[prefix + "torch"])
    cuda = [checkpoint.tensors[f"{prefix}cuda/{i}"] for i in range(saved["cuda"])]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)  # (another GPU count: nothing exact to restore anyway)
    kind, pos, has_gauss, cached = saved["numpy"]
    keys = checkpoint.tensors[prefix + "numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state((kind, keys, pos, has_gauss, cached))
    version, internal, gauss = saved["python"]
    random.setstate((version, tuple(internal), gauss))


# --- writing -------------------------------------------------------------------------------------

def save_checkpoint(path: Path, *, model: Any, optimizers: dict[str, Any], schedulers: dict[str, Any],
                    scaler: Any, rng: list[dict[str, Any]], extra_tensors: dict[str, Any],
                    state: dict[str, Any]) -> None:
    """Write the full training state to ``path`` atomically. ``rng`` has one entry per rank."""
    from zoo.atomic import save_weights

    tensors: dict[str, Any] = {f"model/{k}": v for k, v in model.state_dict().items()}
    tensors.update(extra_tensors)
    optim_state = {}
    for name, optimizer in optimizers.items():
        optim_state[name] = _split_optimizer(name, optimizer.state_dict(), tensors)
    rng_state = []
    for rank, states in enumerate(rng):
        tensors[f"rng/{rank}/torch"] = states["torch"]
        tensors[f"rng/{rank}/numpy_keys"] = states["numpy_keys"]
        for i, cuda in enumerate(states["cuda"]):
            tensors[f"rng/{rank}/cuda/{i}"] = cuda
        rng_state.append({"cuda": len(states["cuda"]), "numpy": states["numpy"], "python": states["python"]})
    full_state = {
        "format": FORMAT,
        **state,
        "optimizers": optim_state,
        "schedulers": {name: _jsonable(s.state_dict()) for name, s in schedulers.items()},
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng_state,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_weights(path, tensors, metadata={CHECKPOINT_STATE: json.dumps(full_state)})


def _split_optimizer(name: str, state_dict: dict[str, Any], tensors: dict[str, Any]) -> dict[str, Any]:
    """Optimizer tensors go to ``tensors`` (as ``optim/NAME/PARAM/KEY``); the rest is returned as JSON."""
    import torch

    per_param: dict[str, dict[str, Any]] = {}
    for index, values in state_dict["state"].items():
        plain = {}
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{name}/{index}/{key}"] = value
            else:
                plain[key] = value
        per_param[str(index)] = plain
    return {"param_groups": _jsonable(state_dict["param_groups"]), "state": per_param}


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value))
    except TypeError as exc:
        raise ZooError(f"checkpoint state is not plain data ({exc}); report this as a zoo bug") from exc


def rotate(folder: Path, step_file: Path, keep_last: int) -> None:
    """Point ``last`` at ``step_file`` (a hard link where the file system has them) and drop old steps."""
    last = folder / LAST
    link_or_copy(step_file, last)
    steps = sorted(folder.glob(STEP_CHECKPOINTS))
    for old in steps[:-keep_last]:
        old.unlink(missing_ok=True)


def link_or_copy(source: Path, target: Path) -> None:
    """Make ``target`` hold ``source``'s bytes, atomically (a hard link renamed into place)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


# --- reading -------------------------------------------------------------------------------------

def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint (no pickle anywhere); a damaged or foreign file is one clear line."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a dict
    except FileNotFoundError as exc:
        raise ZooError(f"checkpoint {path} is missing; the run stopped before its first checkpoint") from exc
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ZooError(f"checkpoint {path} is truncated or corrupted ({exc}); use another one in {path.parent}") \
            from exc
    try:
        state = json.loads(metadata[CHECKPOINT_STATE])
    except (KeyError, json.JSONDecodeError) as exc:
        raise ZooError(f"{path} is not a zoo checkpoint (no training state in it)") from exc
    if state.get("format") != FORMAT:
        raise ZooError(
            f"checkpoint {path} has format {state.get('format')!r} (zoo {state.get('zoo_version', '?')}), "
            f"this zoo reads format {FORMAT}; resume it with the zoo version that wrote it"
        )
    return Checkpoint(path, tensors, state)


def restore_optimizer(optimizer: Any, checkpoint: Checkpoint, name: str) -> None:
    """Load optimizer ``name``'s saved state into ``optimizer``; a state that does not fit is one clear line."""
    saved = optimizer_state(optimizer, checkpoint, name)
    try:
        optimizer.load_state_dict(saved)
    except (ValueError, KeyError, TypeError) as exc:
        raise ZooError(f"checkpoint {checkpoint.path}: optimizer {name!r} does not fit this model ({exc}); "
                       "the checkpoint is damaged or from another model") from exc


def optimizer_state(optimizer: Any, checkpoint: Checkpoint, name: str) -> dict[str, Any]:
    """Optimizer ``name``'s state dict as ``optimizer.state_dict()`` gives it (parameters by index), its
    tensor shapes checked against ``optimizer``'s parameters."""
    saved = checkpoint.state["optimizers"][name]
    prefix = f"optim/{name}/"
    state: dict[int, dict[str, Any]] = {int(i): dict(values) for i, values in saved["state"].items()}
    for key, tensor in checkpoint.prefixed(prefix).items():
        index, _, entry = key.partition("/")
        state.setdefault(int(index), {})[entry] = tensor
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, entries in state.items():
        for entry, value in entries.items():
            shape = tuple(getattr(value, "shape", ()))
            if shape and (index >= len(params) or shape != tuple(params[index].shape)):
                want = tuple(params[index].shape) if index < len(params) else "no such parameter"
                raise ZooError(f"checkpoint {checkpoint.path}: optimizer {name!r} state {index}/{entry} is {shape}, "
                               f"the model needs {want}; the checkpoint is damaged or from another model")
    return {"state": state, "param_groups": saved["param_groups"]}


# === resuming ========================================================================================================

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
    checkpoint = load_checkpoint(run_dir / CHECKPOINTS / LAST)
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


# === after a crash ===================================================================================================

def repair_metrics(run_dir: Path, step: int) -> None:
    """Make ``metrics.jsonl`` and ``metrics.csv`` hold exactly the epochs up to ``step`` (the checkpoint's).

    A torn last line (the process died while appending), rows logged after the checkpoint and
    repeated epochs are dropped; the CSV is rewritten from the JSON lines whenever they differ.
    """
    from zoo.atomic import write_bytes
    jsonl = run_dir / METRICS
    if not jsonl.exists():
        (run_dir / METRICS_CSV).unlink(missing_ok=True)  # rows without their JSON lines: none can be trusted
        return
    lines = jsonl.read_bytes().split(b"\n")
    kept: list[dict[str, Any]] = []
    seen: set[Any] = set()
    for line in lines:
        row = _row(line)
        if row is None or row.get("step", 0) > step or row.get("epoch") in seen:
            continue
        seen.add(row.get("epoch"))
        kept.append(row)
    text = "".join(json.dumps(row) + "\n" for row in kept)
    if text.encode() != jsonl.read_bytes():
        write_bytes(jsonl, text.encode())
    buffer = io.StringIO()
    if kept:
        writer = csv.DictWriter(buffer, fieldnames=list(kept[0]), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
    csv_path = run_dir / METRICS_CSV
    if not csv_path.exists() or csv_path.read_bytes() != buffer.getvalue().encode():
        write_bytes(csv_path, buffer.getvalue().encode())


def _row(line: bytes) -> dict[str, Any] | None:
    if not line.strip():
        return None
    try:
        row = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return row if isinstance(row, dict) else None


def discard_if_unsaved(run_dir: Path, finished: Callable[[], bool]) -> None:
    """A new run that stopped on an error before its first checkpoint is removed: nothing could resume it."""
    if finished() or any((run_dir / CHECKPOINTS).glob("*.safetensors")):
        return
    shutil.rmtree(run_dir, ignore_errors=True)


# === configuration, final weights, summary ===========================================================================



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
    from zoo.plots import write_loss_curve

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
