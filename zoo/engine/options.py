"""Configuring a run: every training option, the flags made from them, hyperparameters, and the checks
between options and data that pass before a run folder exists (no torch here).

Training options: their types and defaults, config files (TOML), and the resolved ``run.toml``.

Layering: built-in defaults < ``--config FILE`` < command-line flags. The resolved options are
written to the run as ``run.toml``; ``zoo train --config RUN/run.toml`` trains the same run again.

``zoo train``'s flags, made from the fields of :class:`zoo.engine.options.TrainOptions` (no torch here).

Resolving and checking a training configuration before anything runs or is written.

Checks between the options and the data that must pass before a run folder exists.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePath
from typing import Any

from zoo.errors import ZooError

# === training options ================================================================================================

PRECISIONS = ("32", "bf16-mixed", "16-mixed")
#: As ``zoo.family.SCHEDULES`` (not imported: this module stays light for the CLI).
SCHEDULES = ("none", "step", "cosine")
ON_NAN = ("stop", "skip")
OPTIMIZERS = ("sgd", "adam", "adamw")
DEVICES = ("auto", "cpu", "cuda")
STRATEGIES = ("ddp", "fsdp")

#: Options that may change when a run is resumed: they decide when to stop and what to report,
#: never what the weights become.
RESUMABLE = frozenset({"max_steps", "progress", "log_every", "tensorboard", "log", "save_every", "keep_last",
                       "workers", "pin_memory"})

#: Seeds are what NumPy accepts everywhere: 0 to 2**32 - 1.
MAX_SEED = 2**32 - 1
#: The largest image side --image-size accepts (a batch of 20000×20000 images does not fit any memory).
MAX_IMAGE_SIDE = 4096

#: Smoke mode: this many batches per epoch, this many epochs, and a validation set this small.
SMOKE_BATCHES, SMOKE_EPOCHS, SMOKE_VAL = 3, 2, 64


def option(default: Any = None, help: str = "", *, flag: str | None = None, param: str | None = None,
           metavar: str | None = None, choices: tuple[str, ...] | None = None, path: bool = False,
           cli: bool = True, negatable: bool = False, factory: Any = None) -> Any:
    """A :class:`TrainOptions` field with what ``zoo train`` needs to offer it as a flag (the field's metadata):
    ``help``; ``flag`` (default ``--field-name``) and ``param`` (the click parameter name); ``metavar``;
    ``choices``; ``path`` (a file system path); ``cli=False`` for options without a flag; ``negatable`` for a
    ``--x/--no-x`` pair (a flag that defaults to on)."""
    metadata = {"help": help, "flag": flag, "param": param, "metavar": metavar, "choices": choices, "path": path,
                "cli": cli, "negatable": negatable}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainOptions:
    """Everything a user chooses for a run. ``None`` means "the model's default" for hyperparameters.

    This is the one list of training options: ``zoo train``'s flags are made from these fields
    (:func:`train_flags`), config files and ``run.toml`` use their names.
    """

    model: str | None = option(cli=False)
    dataset: str | None = option(None, "Dataset (default: the model's own, digits for most); see zoo datasets.",
                                 flag="--data",
                          metavar="NAME[:PATH]")
    image_size: str | None = option(None, "Resize the data's images to H×W (bilinear), e.g. 28x28.", metavar="HxW")
    normalize: str | None = option(None, "Per-channel normalisation: data (the training split's statistics; the "
                                   "default), imagenet, or MEAN/STD (e.g. 0.5/0.5); with --init weights that state "
                                   "their own, theirs.", metavar="data|imagenet|MEAN/STD")
    crop_pct: str | None = option(None, "Evaluation transform: resize to cover size/CROP_PCT keeping the aspect "
                                  "ratio, then centre-crop (timm's crop_pct, e.g. 0.875), for every split, predict "
                                  "and deploy; none squashes to the size (the default; with --init weights that "
                                  "state a crop_pct, theirs).", metavar="FRACTION|none")
    channels: int | None = option(None, "Convert images to 1 (grayscale) or 3 (RGB) channels.")
    augment: bool = option(False, "Light augmentation: shift training images by up to 1/8 of their size.")
    epochs: int | None = option(None, "Epochs (default: the model's).")
    batch_size: int | None = option(None, "Global batch size, over all processes (default: the model's).")
    lr: float | None = option(None, "Learning rate (default: the model's).")
    optimizer: str | None = option(None, "Optimizer (default: the model's).", choices=OPTIMIZERS)
    seed: int = option(0, "Seed for the split, init and shuffling (default: 0).")
    device: str = option("auto", "Device (default: auto).", choices=DEVICES)
    out: str = option("runs", "Folder the run directory goes in (default: runs).", path=True)
    precision: str = option("32", "32 (default), bf16-mixed (CPU, CUDA) or 16-mixed (CUDA, with a grad scaler).",
                            choices=PRECISIONS)
    deterministic: bool = option(False, "Deterministic algorithms only (bitwise-reproducible resume on the CPU).")
    schedule: str | None = option(None, "Learning-rate schedule (default: the family's, else none).",
                                  choices=SCHEDULES)
    warmup_steps: int | None = option(None, "Linear learning-rate warm-up over this many optimizer steps "
                                      "(default: the family's, else 0).")
    step_epochs: int = option(1, "--schedule step: multiply the rate by --gamma every N epochs.")
    gamma: float = option(0.1, "--schedule step: the factor (default 0.1).")
    grad_clip: float | None = option(None, "Clip the gradient norm to this value.")
    accumulate: int = option(1, "Accumulate gradients over N batches per step.")
    early_stop: int | None = option(None, "Stop after PATIENCE epochs without improvement of the family's "
                                    "monitored metric.", metavar="PATIENCE")
    max_steps: int | None = option(None, "Stop (and checkpoint) after this many optimizer steps.")
    smoke: bool = option(False, "A few batches of everything: a quick check.")
    on_nan: str = option("stop", "Non-finite loss: stop (default) or skip.", choices=ON_NAN)
    save_every: int | None = option(None, "Checkpoint every N steps too (always at each epoch end).")
    keep_last: int = option(2, "Step checkpoints to keep (default 2).")
    log_every: int | None = option(None, "Without a terminal: a progress line every N steps.")
    tensorboard: bool = option(False, "Also log to TensorBoard (if installed).")
    log: str | None = option(None, "Also log to experiment trackers: mlflow (plugzoo[mlflow]; ./mlruns or "
                             "MLFLOW_TRACKING_URI), tensorboard.", metavar="TRACKER[,TRACKER]")
    progress: bool = option(True, cli=False)
    init: str | None = option(None, "Start from these weights: a .safetensors file, or a model folder holding "
                              "model.safetensors (and config.json), in the model's layout or one it imports; a new "
                              "class count gets a fresh head.", metavar="PATH")
    freeze_backbone: bool = option(False, "Train the classifier head alone (linear probing; batch-norm statistics "
                                   "frozen too).")
    crop_flip: bool = option(False, "ImageNet-style augmentation: random-resized crop and horizontal flip (resumes "
                             "exactly).")
    ema: float | None = option(None, "Keep an exponential moving average of the weights with this decay (e.g. "
                               "0.999): it is what is validated, picks the best checkpoint and becomes the final "
                               "weights (and so the export); resumed exactly.", metavar="DECAY")
    compile: bool = option(False, "torch.compile the model (trains eagerly, saying why, where the compiler cannot "
                           "run).")
    channels_last: bool = option(False, "NHWC memory layout for model and images.")
    checkpoint_activations: bool = option(False, "Recompute activations in backward: less memory for big models "
                                          "(the ViTs).")
    strategy: str = option("ddp", "Several processes: ddp (default; a whole model per process) or fsdp (FSDP2: "
                           "parameters, gradients and optimizer state sharded).", choices=STRATEGIES)
    workers: int | None = option(None, "DataLoader worker processes for image folders (default: up to 4).")
    pin_memory: bool = option(True, "Pinned host memory for image-folder batches on CUDA (default: on).",
                              negatable=True)
    dp_epsilon: float | None = option(None, "Differentially private training (DP-SGD, Opacus; plugzoo[privacy]): "
                                      "spend at most this ε.", metavar="E")
    dp_delta: float | None = option(None, "--dp-epsilon: the δ (default 1e-5).", metavar="D")
    dp_max_grad_norm: float | None = option(None, "--dp-epsilon: clip each sample's gradient to this norm "
                                            "(default 1.0).", metavar="C")
    hp: dict[str, Any] = option(help="Another hyperparameter, e.g. --hp momentum=0.8.", param="hparams",  # noqa: RUF009
                                metavar="KEY=VALUE", factory=dict)
    args: dict[str, Any] = option(  # noqa: RUF009 - field() with metadata
        help="A model argument, e.g. --arg width=32.", flag="--arg", param="model_args",
        metavar="KEY=VALUE", factory=dict)
    train_samples: int | None = option(None, "Train on this many samples of the training split, drawn by --seed (the "
                                       "validation split stays whole): e.g. a small set a model memorises.",
                                       metavar="N")
    data_args: dict[str, Any] = option(  # noqa: RUF009 - field() with metadata
        help="A dataset option (see zoo datasets), e.g. --data-arg target=y for a CSV's target column.",
        flag="--data-arg", param="data_args", metavar="KEY=VALUE", factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Checked in config files too; the device is not: the API and config files may name one such as "cuda:1".
_CHOICES = {f.name: f.metadata["choices"] for f in fields(TrainOptions)
            if f.metadata.get("choices") and f.name != "device"}
_POSITIVE = {"epochs", "batch_size", "train_samples", "accumulate", "max_steps", "save_every", "keep_last",
             "log_every", "step_epochs"}


def _base_type(annotation: str) -> type:
    """``"int | None"`` -> int, ``"dict[str, Any]"`` -> dict (the annotations are strings here)."""
    name = annotation.split("|")[0].strip().split("[")[0]
    return {"str": str, "int": int, "float": float, "bool": bool, "dict": dict}[name]


#: Each option's type, read from the dataclass: the one place options are declared.
_TYPES: dict[str, type] = {f.name: _base_type(str(f.type)) for f in fields(TrainOptions)}


def option_type(key: str) -> type:
    """The base type of option ``key``: str, int, float, bool or dict."""
    return _TYPES[key]


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
    if key == "crop_pct" and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # zoo.train(crop_pct=0.875)
    ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ZooError(f"{name} must be {want.__name__}, got {type(value).__name__} {value!r}")
    if want is float and (not math.isfinite(value) or value < 0 or (value == 0 and key != "gamma")):
        raise ZooError(f"{name} must be a positive number, got {value!r}")
    if key in _POSITIVE and value <= 0:
        raise ZooError(f"{name} must be a positive whole number, got {value!r}")
    if key == "seed" and not 0 <= value <= MAX_SEED:
        raise ZooError(f"{name} must be a whole number from 0 to {MAX_SEED}, got {value!r}")
    if want is str:
        check_text(value, name)
    if key in ("warmup_steps", "early_stop", "workers") and value < 0:
        raise ZooError(f"{name} must not be negative, got {value!r}")
    if key == "image_size":
        parse_image_size(value, name)
    if key == "crop_pct":
        from zoo.data.crop import parse_crop_pct

        parse_crop_pct(value)
    if key == "log":
        from zoo.trackers import parse_log

        parse_log(value)
    if key == "init":
        from zoo.engine.adapt import refuse_pickle

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
    height, width = int(parts[0]), int(parts[1])
    if max(height, width) > MAX_IMAGE_SIDE:
        raise ZooError(f"{name} {value!r} is too large; each side may be at most {MAX_IMAGE_SIDE} pixels")
    return height, width


def check_text(value: str, name: str) -> str:
    """Refuse text that is not valid UTF-8 (a path with undecodable bytes): run.toml and JSON could not hold it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ZooError(f"{name} {value.encode('utf-8', 'surrogateescape')!r} is not valid UTF-8; "
                       "rename it (or choose another path) with UTF-8 characters only") from exc
    return value


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The options in a TOML config file, checked key by key."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib

    path = Path(path)
    check_text(str(path), "--config")
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ZooError(f"config file {path} does not exist") from exc
    except IsADirectoryError as exc:
        raise ZooError(f"--config {path} is a folder; give a TOML file (a run's run.toml, say)") from exc
    except OSError as exc:
        raise ZooError(f"config file {path} cannot be read ({exc.strerror or exc})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ZooError(f"config file {path} is not valid TOML ({exc})") from exc
    return {key: check_option(key, value, f"config {path}") for key, value in raw.items()}


def resolve_options(config: dict[str, Any], flags: dict[str, Any]) -> TrainOptions:
    """Defaults < config file < flags (a flag that is ``None`` was not given)."""
    merged = {**config}
    for key, value in flags.items():
        if value is None:
            continue
        if key in ("hp", "args", "data_args"):
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


# === zoo train's flags ===============================================================================================

def train_flags() -> list[Any]:
    """One click option per :class:`TrainOptions` field offered on the command line, in declaration order.

    Every default is None: a flag given counts, the rest comes from ``--config``, the run being resumed,
    or the model's defaults. ``hp`` and ``args`` take ``KEY=VALUE`` and repeat.
    """
    import click

    flags = []
    for f in fields(TrainOptions):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        name = meta.get("flag") or "--" + f.name.replace("_", "-")
        if meta.get("negatable"):  # --x/--no-x: a flag that defaults to on can be turned off
            name += "/--no-" + name[2:]
        param = meta.get("param") or f.name
        kind = option_type(f.name)
        extra: dict[str, Any] = {"help": meta.get("help") or None, "metavar": meta.get("metavar")}
        if kind is bool:
            extra.update(is_flag=True, default=None)
        elif kind is dict:
            extra.update(multiple=True)
        elif meta.get("choices"):
            extra.update(type=click.Choice(list(meta["choices"])))
        elif meta.get("path"):
            extra.update(type=click.Path())
        elif kind is not str:
            extra.update(type=kind)
        flags.append(click.option(name, param, **{k: v for k, v in extra.items() if v is not None or k == "default"}))
    return flags


# === hyperparameters =================================================================================================

#: Hyperparameters every family understands, with the engine's defaults.
ENGINE_DEFAULTS: dict[str, Any] = {"epochs": 10, "batch_size": 64, "lr": 0.01, "optimizer": "sgd"}


@dataclass
class TrainConfig:
    """Everything that determines a run; saved as the run's ``config.json``."""

    model: str
    family: str
    dataset: str = "digits"
    seed: int = 0
    device: str = "auto"
    val_fraction: float = 0.2
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    model_args: dict[str, Any] = field(default_factory=dict)
    data_options: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        return int(self.hyperparameters["epochs"])

    @property
    def batch_size(self) -> int:
        return int(self.hyperparameters["batch_size"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ZooError(f"{name} must be a positive whole number, got {value!r}")
    return value


def check_positive_float(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ZooError(f"{name} must be a positive number, got {value!r}") from exc
    if not math.isfinite(number) or number <= 0:
        raise ZooError(f"{name} must be a positive number, got {value!r}")
    return number


def resolve_hyperparameters(
    family_defaults: dict[str, Any], model_defaults: dict[str, Any], overrides: dict[str, Any]
) -> dict[str, Any]:
    """Engine defaults < family defaults < model defaults < user overrides (``None`` = not given)."""
    hp = {**ENGINE_DEFAULTS, **family_defaults, **model_defaults}
    unknown = sorted(k for k, v in overrides.items() if v is not None and k not in hp)
    if unknown:
        raise ZooError(f"unknown hyperparameter {', '.join(unknown)}; this model takes: {', '.join(sorted(hp))}")
    for key, value in overrides.items():
        default = hp.get(key)
        if value is not None and _is_number(default) and not _is_number(value):
            raise ZooError(f"hyperparameter {key} must be a number like its default {default!r}, got {value!r}; "
                           f"fix --hp {key}=... or the [hp] table of the config file")
    hp.update({k: v for k, v in overrides.items() if v is not None})
    check_positive_int("--epochs", hp["epochs"])
    check_positive_int("--batch-size", hp["batch_size"])
    hp["lr"] = check_positive_float("--lr", hp["lr"])
    return hp


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# === options against the data ========================================================================================

def check_model_args(model: str, defaults: dict[str, Any], args: dict[str, Any], user_args: dict[str, Any],
                     data_info: Any) -> None:
    """``--arg`` values of the right kind, and a class count the data fits into."""
    for key, value in user_args.items():
        default = defaults.get(key)
        if _is_number(default) and not _is_number(value):
            raise ZooError(f"--arg {key}={value!r}: model {model!r} needs a number here (default {default!r})")
    classes = args.get("num_classes")
    have = getattr(data_info, "num_classes", None)
    if "num_classes" in user_args and _is_number(classes) and have and classes < have:
        raise ZooError(f"--arg num_classes={classes} is fewer than the {have} classes in the data "
                       f"({data_info.name}); drop the --arg or give at least {have}")
    for name in getattr(data_info, "class_names", []) or []:
        try:
            str(name).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ZooError(f"class name {str(name).encode('utf-8', 'surrogateescape')!r} in {data_info.name} is "
                           "not valid UTF-8; rename that class folder with UTF-8 characters only") from exc
