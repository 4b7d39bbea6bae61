"""The Family API: what a family of models tells the shared engine, exporter and verifier.

A family is the unit that knows how to train: the engine owns the loop, devices, seeding, metrics
and progress, and asks the family for the pieces that differ between, say, a classifier and a GAN.
Subclass :class:`Family`, then register it with a :class:`zoo.specs.FamilySpec` whose ``factory``
points at the subclass. Every training hook receives a :class:`RunContext`: the run's hyperparameters,
data, folder, device, world and position, frozen, so the contract can grow without breaking plugins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.errors import ZooError
from zoo.explain.types import AttentionMaps, InputSpace, TokenModel  # re-exported: `zoo explain`'s contract
from zoo.recipe import (  # noqa: F401 - re-exported: the fine-tuning recipe is part of the public contract
    Mix,
    draw_mix,
    mix_inputs,
    no_decay,
    param_groups,
)
from zoo.reports.sections import (  # noqa: F401 - re-exported: report sections are part of the public contract
    ReportAudio,
    ReportContext,
    ReportImage,
    ReportSection,
    ReportTable,
)
from zoo.roles import (  # noqa: F401 - re-exported: roles are part of the public contract
    GraphRole,
    RoleSpec,
    check_role,
    classifier_info,
    decoder_info,
    encoder_info,
    known_roles,
    register_role,
    role_spec,
    sampler_info,
)

if TYPE_CHECKING:
    from pathlib import Path

if TYPE_CHECKING:
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
    ``role`` says what the graph is (:class:`GraphRole`; ``zoo predict`` and ``zoo sample`` pick graphs by it)
    and ``role_info`` holds what that role needs (make it with ``classifier_info``, ``sampler_info``,
    ``encoder_info`` or ``decoder_info``); both are checked when the spec is made.
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
    #: Strings stamped into the ONNX file's metadata_props (and so into the manifest).
    metadata: dict[str, str] = field(default_factory=dict)
    calibration_inputs: Callable[[DataSplits], tuple[np.ndarray, ...] | None] | None = None
    real_labels: Callable[[DataSplits], np.ndarray | None] | None = None
    #: Dynamic axes besides batch axis 0, by input or output name: ``{"input_ids": {1: "seq"}}``. Axes with
    #: the same name share one dimension (a language model's cache: ``{2: "past"}`` on every cache input).
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    #: Keep the weights in a file beside the graph even under the 2 GiB protobuf limit (large models).
    external_data: bool = False
    #: Extra files written into the graph's folder of the bundle (and hashed in its manifest), by file name:
    #: a language model's ``tokenizer.json``, say.
    files: dict[str, bytes] = field(default_factory=dict)
    #: What the graph is (a registered role name, e.g. ``GraphRole.SAMPLER``); stamped as ``zoo_role``.
    role: str | None = None
    #: The facts the role needs (see ``RoleSpec.required``); stamped as ``zoo_role_info``.
    role_info: dict[str, Any] = field(default_factory=dict)
    #: Sub-modules of ``module`` (attribute names, e.g. ``("logmel",)``) whose operators ``--quantize int8``
    #: leaves in fp32: a front end whose values int8 cannot represent (a power spectrum before its log).
    int8_float_modules: tuple[str, ...] = ()
    #: ``--quantize int8`` quantizes only the MatMul weights (int8, one scale per block, ONNX Runtime's
    #: ``MatMulNBits``; activations stay fp32): for a decoder whose speed is the bytes of weights it reads.
    int8_weight_only: bool = False

    def __post_init__(self) -> None:
        check_role(self.name, self.role, self.role_info, list(self.input_names), list(self.output_names))


#: The learning-rate schedules the engine runs (``--schedule``).
SCHEDULES = ("none", "step", "cosine")


@dataclass(frozen=True)
class StepBudget:
    """How many optimizer steps a run takes: what a learning-rate schedule spans (:attr:`RunContext.budget`).

    An epoch is ``batches_per_epoch`` batches (at most 3 under ``--smoke``); ``accumulate`` of them
    (``--accumulate``) make one optimizer step, so ``steps_per_epoch`` is their quotient rounded up and
    ``total_steps`` is ``epochs × steps_per_epoch`` (``--smoke`` trains at most 2 epochs). A resumed run has the
    budget it started with. ``max_steps`` (``--max-steps``) is where the run stops early: a stop, not a shorter
    schedule, so a run stopped there and resumed follows the uninterrupted run's learning rates exactly.
    """

    total_steps: int = 1
    steps_per_epoch: int = 1
    batches_per_epoch: int = 1
    accumulate: int = 1
    epochs: int = 1
    max_steps: int | None = None


@dataclass(frozen=True)
class LRSchedule:
    """A learning-rate schedule over the run's :class:`StepBudget`, as a family declares its default
    (:meth:`Family.lr_schedule`); ``--schedule`` and ``--warmup-steps`` override its fields, with a note.

    ``name`` is ``none``, ``step`` (times ``--gamma`` every ``--step-epochs`` epochs) or ``cosine`` (from the base
    rate down to ``floor`` times it at the last step); ``warmup_steps`` optimizer steps of linear warm-up come
    first. The engine steps it after every optimizer step.
    """

    name: str = "none"
    warmup_steps: int = 0
    floor: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise ZooError(f"LRSchedule name {self.name!r} is not one of {', '.join(SCHEDULES)}")
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ZooError(f"LRSchedule warmup_steps must be a whole number >= 0, got {self.warmup_steps!r}")
        if not 0.0 <= self.floor < 1.0:
            raise ZooError(f"LRSchedule floor must be at least 0 and below 1 (a fraction of the base rate), "
                           f"got {self.floor!r}")


@dataclass(frozen=True)
class RunContext:
    """What the engine hands to every training hook of a family; frozen (make changed copies with ``replace``).

    New fields may be added in later contract versions; existing ones keep their meaning.
    """

    #: The resolved hyperparameters (the family's defaults < the model's < ``--hp``), read-only.
    hyperparameters: Mapping[str, Any]
    #: The run's data: ``info`` (a :class:`zoo.data.DataInfo`), training and validation splits.
    #: ``x_train``/``x_val`` may be lazy arrays (:class:`zoo.data.lazy.LazyImages`) for image folders.
    #: As :meth:`Family.prepare_data` returned it (that hook gets the data as loaded).
    data: DataSplits
    #: The run folder (write pictures and extra files here); ``None`` outside a run (tests, tools).
    run_dir: Path | None = None
    #: The ``torch.device`` the model lives on.
    device: Any = "cpu"
    #: This process's rank and the number of training processes (1 without ``--nproc``/torchrun).
    rank: int = 0
    world_size: int = 1
    #: The epoch being trained or just finished (from 1), and the optimizer steps done so far.
    epoch: int = 1
    step: int = 0
    #: The model's registered spec (name, plugin, defaults), when the engine knows it.
    spec: ModelSpec | None = None
    #: The dataset as named for the run (``digits``, ``imagefolder:PATH``) and the run's seed.
    dataset: str = ""
    seed: int = 0
    #: The run's optimizer steps: in all, per epoch, and batches per step (:class:`StepBudget`); known from
    #: ``configure_optimizers`` on (``prepare_data`` sees the default, a budget of one step).
    budget: StepBudget = StepBudget()

    def __post_init__(self) -> None:
        if not isinstance(self.hyperparameters, MappingProxyType):
            object.__setattr__(self, "hyperparameters", MappingProxyType(dict(self.hyperparameters)))

    @property
    def data_info(self) -> DataInfo:
        """The data description (shape, classes, normalisation)."""
        return self.data.info

    @property
    def is_main(self) -> bool:
        """True on the process that writes files (rank 0)."""
        return self.rank == 0

    def at(self, *, epoch: int, step: int) -> RunContext:
        """A copy at another position of the run."""
        return replace(self, epoch=epoch, step=step)


class Family:
    """Base class for families. Override what differs; the defaults suit one-optimizer models.

    Per run the engine calls: ``prepare_data`` → ``data_args`` → ``build`` → ``configure_optimizers`` →
    ``optimizer_steps``; then every batch ``training_step`` once per name that ``optimizer_steps`` returned (a
    name may repeat: a 1:2 ratio is ``("discriminator", "generator", "generator")``; the engine zeroes only the
    stepped optimizer's gradients); every epoch ``evaluate`` then ``epoch_end``; once at the end ``final_metrics``.
    Every training hook gets the run's :class:`RunContext`; nothing needs to be kept on ``self``.
    """

    #: Optimizers the family uses, stepped in this order for every batch (the default of :meth:`optimizer_steps`).
    optimizer_order: tuple[str, ...] = ("model",)
    #: Under torchrun: True when ``training_step`` runs the model through ``model(...)``, so the engine can
    #: hand it a DistributedDataParallel wrapper; False when it calls parts (``model.generator``), so the
    #: engine hands it the plain module and averages the gradients across processes itself.
    wraps_for_ddp: bool = True
    #: Metric used to say which epoch is best, and whether higher or lower is better.
    monitor: tuple[str, str] = ("val_loss", "min")
    #: Hyperparameters every model of this family accepts, with their defaults.
    hyperparameters: dict[str, Any] = {}  # noqa: RUF012 - read-only class default

    def prepare_data(self, ctx: RunContext, model_args: dict[str, Any]) -> DataSplits:
        """Turn the loaded dataset (``ctx.data``) into this family's samples, before anything else sees it (a
        language model tokenises text and cuts it into windows; ``model_args`` are the spec's and the user's,
        before :meth:`data_args`). Later hooks get the result as ``ctx.data``. Must be deterministic: a resumed
        run calls it again. Default: ``ctx.data`` unchanged."""
        return ctx.data

    def data_args(self, spec: ModelSpec, data: DataInfo) -> dict[str, Any]:
        """Builder arguments derived from the data (channels, image size, class count)."""
        return {}

    def build(self, spec: ModelSpec, data: DataInfo, model_args: dict[str, Any]) -> torch.nn.Module:
        """Build the model for this data: ``model_args`` are already resolved by the engine."""
        from zoo.building import create_model

        return create_model(spec.qualified_name, **model_args)

    def configure_optimizers(self, model: torch.nn.Module, ctx: RunContext) -> dict[str, Any]:
        """One optimizer per name in :meth:`optimizer_steps` (default: ``make_optimizer`` over every parameter)."""
        return {"model": make_optimizer(model.parameters(), ctx.hyperparameters)}

    def lr_schedule(self, ctx: RunContext) -> LRSchedule | None:
        """The family's default learning-rate schedule for this run (``ctx.budget`` says how long it is); ``None``
        (the default): none unless ``--schedule``/``--warmup-steps`` ask for one. The flags override its fields,
        and the run says so; ``config.json`` records the schedule used and where each part came from."""
        return None

    def optimizer_steps(self, ctx: RunContext) -> tuple[str, ...]:
        """The optimizers to step for every batch, in order (default :attr:`optimizer_order`).

        Override to derive the order from the hyperparameters; raise :class:`zoo.errors.ZooError` for bad ones.
        """
        return tuple(self.optimizer_order)

    def training_step(self, model: torch.nn.Module, batch: Any, optimizer: str, ctx: RunContext
                      ) -> dict[str, torch.Tensor]:
        """Losses for one batch and one optimizer (its name); must contain ``"loss"``, which the engine
        backpropagates. ``batch`` is ``(images, labels)`` as tensors on ``ctx.device``.

        Under multi-process training with :attr:`wraps_for_ddp` ``model`` is a DistributedDataParallel
        wrapper: call ``model(...)``.
        """
        raise NotImplementedError

    def evaluate(self, model: torch.nn.Module, ctx: RunContext) -> dict[str, float]:
        """Validation metrics (floats) after an epoch, from ``ctx.data`` (model in eval mode, no grad;
        main process only; under ``--strategy fsdp`` every process runs it on its shards, from the same random state,
        and process 0's result is kept)."""
        raise NotImplementedError

    def graphs(self, model: torch.nn.Module, data: DataInfo) -> list[GraphSpec]:
        """The ONNX graphs to export from a trained model."""
        raise NotImplementedError

    def epoch_end(self, model: torch.nn.Module, ctx: RunContext) -> dict[str, float]:
        """Called after :meth:`evaluate` each epoch (model in eval mode, no grad; main process only, or every
        process under ``--strategy fsdp``, the others with a scratch ``ctx.run_dir``): write per-epoch pictures
        into ``ctx.run_dir`` and return extra metrics for that epoch's log line.
        Default: nothing."""
        return {}

    def final_metrics(self, model: torch.nn.Module, ctx: RunContext) -> dict[str, Any]:
        """Called once after the last epoch (model in eval mode, no grad; main process only, or every process
        under ``--strategy fsdp``): metrics merged into ``summary.json`` under ``"metrics"``. Default: none."""
        return {}

    def report_sections(self, context: ReportContext) -> list[ReportSection]:
        """Sections of this family's own for ``zoo report`` (pictures, tables): called when a report is
        written, not while training. ``context.model_and_data()`` loads the trained model if needed. Default: none."""
        return []

    # --- `zoo explain` (optional; docs/explain.md) ------------------------------------------------------------

    def gradcam_layer(self, model: torch.nn.Module) -> torch.nn.Module | None:
        """The convolutional layer Grad-CAM attributes to for this model (its last feature maps), or ``None`` when
        the model has none that fits (``zoo explain --method gradcam`` is then refused). Default: ``None``."""
        return None

    def attention_maps(self, model: torch.nn.Module, inputs: torch.Tensor) -> AttentionMaps | None:
        """The attention probabilities of a transformer for ``inputs``, for ``zoo explain --method attention``
        (attention rollout), or ``None`` when the model has no attention. Default: ``None``."""
        return None

    def private_hyperparameters(self, spec: ModelSpec) -> dict[str, Any]:
        """Hyperparameters DP-SGD trains this model better with (``zoo train --dp-epsilon``; docs/privacy.md):
        they replace the model's defaults, and the user's flags still win. Default: none."""
        return {}

    def private_model_args(self, spec: ModelSpec) -> dict[str, Any]:
        """Model arguments that make this model one DP-SGD can train (``zoo train --dp-epsilon``; docs/privacy.md),
        e.g. ``{"norm": "group"}`` for a model whose batch norms mix the samples of a batch: they replace the
        model's defaults (the user's ``--arg`` still wins) and are recorded in the run's ``model_args``, so every
        rebuild (export, predict, resume) builds the same variant. Default: none."""
        return {}

    def token_model(self, model: torch.nn.Module, data: DataInfo) -> TokenModel | None:
        """How to turn text into this model's tokens and read its next-token logits, for token attributions
        (``zoo explain RUN "a prompt"``), or ``None`` for models that do not read text. Default: ``None``."""
        return None

    def input_space(self, model: torch.nn.Module, data: DataInfo) -> InputSpace | None:
        """How ``zoo explain`` reads, attributes and draws the inputs of a model that takes neither images nor
        text (audio, rows of features), or ``None``: images (a ``classifier`` graph) or text (``token_model``).
        Default: ``None``."""
        return None


def make_optimizer(params: Any, hp: Mapping[str, Any]) -> Any:
    """The optimizer ``hp["optimizer"]`` names (sgd, adam, adamw), with ``lr`` and its own settings."""
    import torch

    name = str(hp.get("optimizer", "sgd")).lower()
    lr = float(hp["lr"])
    # An absent weight_decay is each optimizer's own default (AdamW: 0.01); a given one, 0 included, is kept.
    weight_decay = float(hp.get("weight_decay", 0.01 if name == "adamw" else 0.0))
    params = [dict(p, params=list(p["params"])) if isinstance(p, dict) else p for p in params]
    fast = _fused_step_options(params)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=float(hp.get("momentum", 0.0)), weight_decay=weight_decay,
                               **fast)
    betas = (float(hp.get("beta1", 0.9)), float(hp.get("beta2", 0.999)))
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, **fast)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay, **fast)
    raise ZooError(f"unknown optimizer {name!r}; use sgd, adam or adamw")


def _fused_step_options(params: list[Any]) -> dict[str, Any]:
    """``{"fused": True}`` when every parameter is a floating-point tensor on a CUDA device (one kernel per
    step for all of them), else nothing: torch's own default (``foreach`` on CUDA, the per-tensor loop on the
    CPU, which keeps CPU results bitwise those of a plain ``torch.optim`` call). ``params`` may hold groups."""
    tensors = [p for item in params for p in (item["params"] if isinstance(item, dict) else [item])]
    on_cuda = bool(tensors) and all(getattr(t, "is_cuda", False) and t.is_floating_point() for t in tensors)
    return {"fused": True} if on_cuda else {}
