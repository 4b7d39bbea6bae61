"""Training options: their types and defaults, config files (TOML), and the resolved ``run.toml``.

Layering: built-in defaults < ``--config FILE`` < command-line flags. The resolved options are
written to the run as ``run.toml``; ``zoo train --config RUN/run.toml`` trains the same run again.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePath
from typing import Any

from zoo.errors import ZooError

PRECISIONS = ("32", "bf16-mixed", "16-mixed")
SCHEDULES = ("none", "step", "cosine")
ON_NAN = ("stop", "skip")
OPTIMIZERS = ("sgd", "adam", "adamw")

#: Options that may change when a run is resumed: they decide when to stop and what to report,
#: never what the weights become.
RESUMABLE = frozenset({"max_steps", "progress", "log_every", "tensorboard", "save_every", "keep_last", "workers",
                       "pin_memory"})

#: Smoke mode: this many batches per epoch, this many epochs, and a validation set this small.
SMOKE_BATCHES, SMOKE_EPOCHS, SMOKE_VAL = 3, 2, 64


@dataclass
class TrainOptions:
    """Everything a user chooses for a run. ``None`` means "the model's default" for hyperparameters."""

    model: str | None = None
    dataset: str = "digits"
    image_size: str | None = None  # "HxW": resize the data's images
    channels: int | None = None  # 1 (grayscale) or 3 (RGB): convert the data's images
    augment: bool = False  # random shifts of up to 1/8 of the image side while training
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    seed: int = 0
    device: str = "auto"
    out: str = "runs"
    precision: str = "32"
    deterministic: bool = False
    schedule: str = "none"
    warmup_steps: int = 0
    step_epochs: int = 1  # schedule "step": multiply the learning rate by `gamma` every this many epochs
    gamma: float = 0.1
    grad_clip: float | None = None
    accumulate: int = 1
    early_stop: int | None = None  # patience in epochs on the family's monitor metric
    max_steps: int | None = None
    smoke: bool = False
    on_nan: str = "stop"
    save_every: int | None = None  # also checkpoint every N optimizer steps (always at each epoch end)
    keep_last: int = 2
    log_every: int | None = None
    tensorboard: bool = False
    progress: bool = True
    init: str | None = None  # start from these weights (a .safetensors file in the model's layout)
    freeze_backbone: bool = False  # train the classifier head alone (linear probing)
    crop_flip: bool = False  # ImageNet-style augmentation: random-resized crop and horizontal flip
    compile: bool = False  # torch.compile the model (eager, with a line said, where it cannot run)
    channels_last: bool = False  # NHWC memory layout for the model and image batches
    checkpoint_activations: bool = False  # recompute activations in backward (models that support it)
    workers: int | None = None  # DataLoader worker processes for image folders (default: up to 4)
    pin_memory: bool = True  # pinned host memory for image-folder batches on CUDA
    hp: dict[str, Any] = field(default_factory=dict)
    args: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_CHOICES = {"precision": PRECISIONS, "schedule": SCHEDULES, "on_nan": ON_NAN, "optimizer": OPTIMIZERS}
_POSITIVE = {"epochs", "batch_size", "accumulate", "max_steps", "save_every", "keep_last", "log_every", "step_epochs"}


def _base_type(annotation: str) -> type:
    """``"int | None"`` -> int, ``"dict[str, Any]"`` -> dict (the annotations are strings here)."""
    name = annotation.split("|")[0].strip().split("[")[0]
    return {"str": str, "int": int, "float": float, "bool": bool, "dict": dict}[name]


#: Each option's type, read from the dataclass: the one place options are declared.
_TYPES: dict[str, type] = {f.name: _base_type(str(f.type)) for f in fields(TrainOptions)}


def check_option(key: str, value: Any, where: str | None = None) -> Any:
    """``value`` as option ``key`` needs it; a wrong key, type or range is one clear line.

    ``where`` names the config file; without it the message names the command-line flag.
    """
    if key not in _TYPES:
        raise ZooError(f"{where}: unknown key {key!r}; known keys: {', '.join(sorted(_TYPES))}")
    name = f"{where}: {key!r}" if where else "--" + key.replace("_", "-")
    if value is None:
        return None
    want = _TYPES[key]
    if want is str and isinstance(value, PurePath):
        value = str(value)
    ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ZooError(f"{name} must be {want.__name__}, got {type(value).__name__} {value!r}")
    if want is float and (not math.isfinite(value) or value < 0 or (value == 0 and key != "gamma")):
        raise ZooError(f"{name} must be a positive number, got {value!r}")
    if key in _POSITIVE and value <= 0:
        raise ZooError(f"{name} must be a positive whole number, got {value!r}")
    if key in ("warmup_steps", "early_stop", "workers") and value < 0:
        raise ZooError(f"{name} must not be negative, got {value!r}")
    if key == "image_size":
        parse_image_size(value, name)
    if key == "init":
        from zoo.engine.init_weights import refuse_pickle

        refuse_pickle(value)
    if key == "channels" and value not in (1, 3):
        raise ZooError(f"{name} must be 1 (grayscale) or 3 (RGB), got {value!r}")
    choices = _CHOICES.get(key)
    if choices and value.lower() not in choices:
        raise ZooError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def parse_image_size(value: str | None, name: str = "--image-size") -> tuple[int, int] | None:
    """``"28x28"`` → ``(28, 28)`` (height, width)."""
    if not value:
        return None
    parts = value.lower().replace("×", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ZooError(f"{name} {value!r} is not a size; use HxW, e.g. 28x28")
    return int(parts[0]), int(parts[1])


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The options in a TOML config file, checked key by key."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib

    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ZooError(f"config file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ZooError(f"config file {path} is not valid TOML ({exc})") from None
    return {key: check_option(key, value, f"config {path}") for key, value in raw.items()}


def resolve_options(config: dict[str, Any], flags: dict[str, Any]) -> TrainOptions:
    """Defaults < config file < flags (a flag that is ``None`` was not given)."""
    merged = {**config}
    for key, value in flags.items():
        if value is None:
            continue
        if key in ("hp", "args"):
            merged[key] = {**merged.get(key, {}), **value}
        else:
            merged[key] = check_option(key, value)
    return TrainOptions(**merged)


def dump_toml(options: TrainOptions) -> str:
    """``options`` as a TOML config file (``None`` values left out: they mean "default")."""
    lines = ["# The resolved options of this run: `zoo train --config run.toml` trains it again.", ""]
    tables = []
    for key, value in options.to_dict().items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    for name, table in tables:
        lines += ["", f"[{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    # JSON scalars and lists of scalars are valid TOML; floats keep full precision through repr.
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)
