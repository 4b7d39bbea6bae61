"""Run folders: creating them without clobbering anything, and loading a finished run back as a :class:`Run`.

The engine writes a run; bundles, the quality judge and sampling read one, all through this module.
What a run folder holds, file by file, is :mod:`zoo.run_layout`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.run_layout import CONFIG, SUMMARY, WEIGHTS


def new_run_dir(parent: str | Path, model: str) -> Path:
    """A fresh ``<parent>/<model>-<timestamp>[-N]`` folder; never reuses an existing one."""
    parent = Path(parent)
    if parent.exists() and not parent.is_dir():
        raise ZooError(f"--out {parent} is a file, not a folder; give a folder for the runs")
    parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        candidate = parent / (f"{model}-{stamp}" + (f"-{n}" if n else ""))
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise ZooError(f"could not find a free run folder name in {parent}")


@dataclass
class Run:
    """A finished run, rebuilt: its config, spec, family, data description and trained model."""

    run_dir: Path
    config: dict[str, Any]
    spec: Any
    family: Any
    data_info: Any
    model: Any
    #: sha256 of the very bytes the model's weights were loaded from (a file rewritten meanwhile cannot skew it).
    weights_sha256: str = ""

    @classmethod
    def open(cls, run_dir: str | Path) -> Run:
        """The run in ``run_dir`` (see :func:`load_run`)."""
        return load_run(run_dir)

    @property
    def dataset(self) -> str:
        """The dataset the run trained on, as named for the run."""
        return str(self.config.get("dataset", ""))

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return dict(self.config.get("hyperparameters", {}))


def read_json(path: Path, what: str) -> Any:
    """The JSON in ``path``; a missing or damaged file is one line naming ``what``."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ZooError(f"{what} {path} is missing") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ZooError(f"{what} {path} is corrupted ({exc}); restore it or train again") from exc


def load_run(run_dir: str | Path) -> Run:
    """Rebuild a trained model from its run directory, checking every file on the way."""
    from zoo.building import load_family
    from zoo.data import DataInfo
    from zoo.registry import get_spec

    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ZooError(f"run directory {run_dir} does not exist; pass the folder that `zoo train` printed")
    if not run_dir.is_dir():
        raise ZooError(f"{run_dir} is a file, not a run directory; pass the folder that `zoo train` printed")
    if not (run_dir / CONFIG).exists():
        raise ZooError(
            f"{run_dir} is not a zoo run directory (no {CONFIG}); pass the folder that `zoo train` printed"
        )
    config = read_json(run_dir / CONFIG, "run config")
    try:
        # The plugin-qualified name: the run's model even if another plugin now has the plain name.
        model_name = f"{config['plugin']}:{config['model']}" if config.get("plugin") else config["model"]
        data_info = DataInfo.from_dict(config["data"])
        model_args = dict(config["model_args"])
    except (KeyError, TypeError) as exc:
        raise ZooError(f"run config {run_dir / CONFIG} lacks {exc}; it was not written by this zoo") from exc
    spec = get_spec(model_name)  # outside the try: an unknown model is a KeyError too, with its own message
    family = load_family(spec.family)
    weights = run_dir / WEIGHTS
    if not weights.exists():
        raise ZooError(f"{run_dir} has no trained weights ({WEIGHTS}): the run did not finish; "
                       f"zoo train --resume {run_dir} finishes it")
    if not (run_dir / SUMMARY).exists():  # weights are written first: without the summary the run did not end
        raise ZooError(f"{run_dir} has no {SUMMARY}: the run did not finish; zoo train --resume {run_dir} finishes it")
    model = family.build(spec, data_info, model_args)
    digest = load_weights(model, weights, spec.name)
    model.eval()
    return Run(run_dir, config, spec, family, data_info, model, digest)


def load_weights(model: Any, path: Path, model_name: str) -> str:
    """Load safetensors weights into ``model``; corrupt files and mismatches get one clear line.

    The file is read once: the weights are loaded from those bytes and their sha256 is returned, so what is
    recorded (a bundle's ``weights_sha256``) is what was loaded even if a resumed run rewrites the file meanwhile.
    """
    import hashlib

    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        data = path.read_bytes()
        state = load(data)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ZooError(f"weights file {path} is truncated or corrupted ({exc}); restore it or train again") from exc
    load_weights_dict(model, state, path, model_name)
    return hashlib.sha256(data).hexdigest()


def load_weights_dict(model: Any, state: dict[str, Any], path: Path, model_name: str) -> None:
    """Load a state dict read from ``path`` into ``model``; a mismatch is one clear line."""
    from zoo.state_dicts import mismatch

    expected = model.state_dict()
    problem = mismatch(expected, state)
    if problem:
        raise ZooError(
            f"weights in {path} do not fit model {model_name!r} ({problem}); "
            "use the run directory these weights were trained in"
        )
    model.load_state_dict(state, strict=True)
