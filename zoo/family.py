"""The Family API: what a family of models tells the shared engine, exporter and verifier.

A family is the unit that knows how to train: the engine owns the loop, devices, seeding, metrics
and progress, and asks the family for the pieces that differ between, say, a classifier and a GAN.
Subclass :class:`Family`, then register it with a :class:`zoo.specs.FamilySpec` whose ``factory``
points at the subclass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.reports.sections import ReportContext, ReportImage, ReportSection, ReportTable

__all__ = ["Family", "GraphSpec", "ReportContext", "ReportImage", "ReportSection", "ReportTable", "make_optimizer"]

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from zoo.data import DataInfo, DataSplits
    from zoo.specs import ModelSpec


@dataclass
class GraphSpec:
    """One ONNX graph a family exports from a trained model, and how to check it.

    ``random_inputs(batch, rng)`` makes inputs of any batch size; ``real_inputs(data)`` gives real
    samples (or ``None``). Every input and output has a dynamic batch axis 0. Optional, for
    ``zoo export --quantize int8``: ``calibration_inputs(data)`` (training samples to calibrate on)
    and ``real_labels(data)`` (the true classes of ``real_inputs``, to report the accuracy lost).
    """

    name: str
    module: Any  # torch.nn.Module in eval mode
    input_names: Sequence[str]
    output_names: Sequence[str]
    random_inputs: Callable[[int, np.random.Generator], tuple[np.ndarray, ...]]
    real_inputs: Callable[[DataSplits], tuple[np.ndarray, ...] | None] = lambda data: None
    atol: float = 1e-5
    rtol: float = 1e-5
    #: Name of an output holding class scores: verification then reports top-1 agreement on it.
    class_output: str | None = None
    #: Strings stamped into the ONNX file's metadata_props (and so into the manifest). A graph that
    #: ``zoo sample`` can draw from declares ``SAMPLER_KEY`` (see :mod:`zoo.sampling`).
    metadata: dict[str, str] = field(default_factory=dict)
    calibration_inputs: Callable[[DataSplits], tuple[np.ndarray, ...] | None] | None = None
    real_labels: Callable[[DataSplits], np.ndarray | None] | None = None


class Family:
    """Base class for families. Override what differs; the defaults suit one-optimizer models.

    Per run the engine calls: ``data_args`` → ``build`` → ``configure_optimizers`` (the one hook that sees
    the hyperparameters: keep what later hooks need on ``self``, or read the run's ``config.json``); then
    every batch ``training_step`` once per name in ``optimizer_order`` (a name may repeat: a 1:2 ratio is
    ``("discriminator", "generator", "generator")``; the engine zeroes only the stepped optimizer's
    gradients); every epoch ``evaluate`` then ``epoch_end``; once at the end ``final_metrics``.
    """

    #: Optimizers the family uses, stepped in this order for every batch.
    optimizer_order: tuple[str, ...] = ("model",)
    #: Under torchrun: True when ``training_step`` runs the model through ``model(...)``, so the engine can
    #: hand it a DistributedDataParallel wrapper; False when it calls parts (``model.generator``), so the
    #: engine hands it the plain module and averages the gradients across processes itself.
    wraps_for_ddp: bool = True
    #: Metric used to say which epoch is best, and whether higher or lower is better.
    monitor: tuple[str, str] = ("val_loss", "min")
    #: Hyperparameters every model of this family accepts, with their defaults.
    hyperparameters: dict[str, Any] = {}  # noqa: RUF012 - read-only class default

    def data_args(self, spec: ModelSpec, data: DataInfo) -> dict[str, Any]:
        """Builder arguments derived from the data (channels, image size, class count)."""
        return {}

    def build(self, spec: ModelSpec, data: DataInfo, model_args: dict[str, Any]) -> torch.nn.Module:
        """Build the model for this data: ``model_args`` are already resolved by the engine."""
        from zoo.api import create_model

        return create_model(spec.qualified_name, **model_args)

    def configure_optimizers(self, model: torch.nn.Module, hp: dict[str, Any]) -> dict[str, Any]:
        """One optimizer per name in :attr:`optimizer_order`."""
        return {"model": make_optimizer(model.parameters(), hp)}

    def training_step(self, model: torch.nn.Module, batch: Any, optimizer: str) -> dict[str, torch.Tensor]:
        """Losses for one batch and one optimizer; must contain ``"loss"``, which the engine backpropagates.

        Under multi-process training ``model`` is a DistributedDataParallel wrapper: call ``model(...)``.
        """
        raise NotImplementedError

    def evaluate(self, model: torch.nn.Module, data: DataSplits, device: Any) -> dict[str, float]:
        """Validation metrics (floats) after an epoch."""
        raise NotImplementedError

    def graphs(self, model: torch.nn.Module, data: DataInfo) -> list[GraphSpec]:
        """The ONNX graphs to export from a trained model."""
        raise NotImplementedError

    def epoch_end(
        self, model: torch.nn.Module, data: DataSplits, run_dir: Path, epoch: int, device: Any
    ) -> dict[str, float]:
        """Called after :meth:`evaluate` each epoch (model in eval mode, no grad): write per-epoch
        pictures into ``run_dir`` and return extra metrics for that epoch's log line. Default: nothing."""
        return {}

    def final_metrics(self, model: torch.nn.Module, data: DataSplits, run_dir: Path, device: Any) -> dict[str, Any]:
        """Called once after the last epoch (model in eval mode, no grad): metrics merged into
        ``summary.json`` under ``"metrics"``. Default: none."""
        return {}

    def report_sections(self, context: ReportContext) -> list[ReportSection]:
        """Sections of this family's own for ``zoo report`` (pictures, tables): called when a report is
        written, not while training. ``context.model_and_data()`` loads the trained model if needed. Default: none."""
        return []


def make_optimizer(params: Any, hp: dict[str, Any]) -> Any:
    """The optimizer ``hp["optimizer"]`` names (sgd, adam, adamw), with ``lr`` and its own settings."""
    import torch

    from zoo.errors import ZooError

    name = str(hp.get("optimizer", "sgd")).lower()
    lr = float(hp["lr"])
    weight_decay = float(hp.get("weight_decay", 0.0))
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=float(hp.get("momentum", 0.0)), weight_decay=weight_decay)
    betas = (float(hp.get("beta1", 0.9)), float(hp.get("beta2", 0.999)))
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay or 0.01)
    raise ZooError(f"unknown optimizer {name!r}; use sgd, adam or adamw")
