"""Checkpoints: the whole training state in one safetensors file, written atomically.

Tensors (weights, optimizer moments, RNG states, running metric sums) are safetensors entries;
everything else (epoch, step, position in the epoch, optimizer settings, schedulers, grad scaler,
Python/NumPy RNG) is JSON in the file's metadata. Nothing is ever unpickled. One file renamed into
place means a crash at any moment leaves the previous checkpoint or the new one, never a torn one.

Files in ``RUN/checkpoints/``: ``last.safetensors``, ``best.safetensors`` (best monitored metric)
and ``step-NNNNNNNN.safetensors`` (the newest ``keep_last`` of them).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError

#: Bumped when the layout changes; a checkpoint of another format is refused with a clear line.
FORMAT = 1
FOLDER = "checkpoints"
LAST = "last.safetensors"
BEST = "best.safetensors"
_META_KEY = "zoo_checkpoint"


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
    save_weights(path, tensors, metadata={_META_KEY: json.dumps(full_state)})


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
    steps = sorted(folder.glob("step-*.safetensors"))
    for old in steps[:-keep_last]:
        old.unlink(missing_ok=True)


def link_or_copy(source: Path, target: Path) -> None:
    """Make ``target`` hold ``source``'s bytes, atomically (a hard link renamed into place)."""
    import shutil

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
        state = json.loads(metadata[_META_KEY])
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
