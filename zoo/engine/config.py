"""Resolving and checking a training configuration before anything runs or is written."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from zoo.errors import ZooError

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
    hp.update({k: v for k, v in overrides.items() if v is not None})
    check_positive_int("--epochs", hp["epochs"])
    check_positive_int("--batch-size", hp["batch_size"])
    hp["lr"] = check_positive_float("--lr", hp["lr"])
    return hp
