"""Turning options into a run's parts: the spec, family, hyperparameters, device, data and context."""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from typing import Any

from zoo.engine.checks import check_model_args
from zoo.engine.config import TrainConfig, resolve_hyperparameters
from zoo.engine.distributed import World, init_process_group
from zoo.engine.options import SMOKE_EPOCHS, SMOKE_VAL, TrainOptions, parse_image_size
from zoo.engine.precision import Precision
from zoo.engine.setup import pick_device
from zoo.errors import ZooError
from zoo.family import RunContext


@dataclass
class RunParts:
    """Everything a :class:`zoo.engine.loop.Trainer` is made of before the model exists."""

    spec: Any
    family: Any
    config: TrainConfig
    data: Any
    device: Any
    precision: Precision
    epochs: int
    model_args: dict[str, Any]
    data_args: dict[str, Any]
    ctx: RunContext


def with_default_dataset(options: TrainOptions) -> TrainOptions:
    """The options with the model's own dataset filled in when ``--data`` was not given."""
    if options.dataset is not None:
        return options
    from zoo.registry import get_spec

    return replace(options, dataset=get_spec(options.model).dataset)


def prepare(options: TrainOptions, world: World) -> RunParts:
    """Resolve the model, family, hyperparameters and data; join the process group."""
    from zoo.api import load_family
    from zoo.data import DataOptions, load_dataset, parse_dataset
    from zoo.engine.metrics import tensorboard_writer
    from zoo.registry import get_dataset_spec, get_unambiguous_spec

    spec = get_unambiguous_spec(options.model)
    family = load_family(spec.family)
    hp = resolve_hyperparameters(
        family.hyperparameters, spec.defaults,
        {"epochs": options.epochs, "batch_size": options.batch_size, "lr": options.lr,
         "optimizer": options.optimizer, **options.hp},
    )
    get_dataset_spec(parse_dataset(options.dataset)[0])  # unknown dataset: fail before touching torch
    device = pick_device(rank_device(options.device, world))
    precision = Precision(options.precision, device)
    if options.tensorboard and world.is_main:
        tensorboard_writer()  # not installed: say so before a run folder exists
    init_process_group(world, device)
    data_options = DataOptions(image_size=parse_image_size(options.image_size), channels=options.channels,
                               args=dict(options.data_args))
    data = load_dataset(options.dataset, seed=options.seed, options=data_options)
    check_data_kinds(spec, options, data.info)
    ctx = RunContext(hyperparameters=hp, data=data, device=device, rank=world.rank, world_size=world.size,
                     spec=spec, dataset=options.dataset, seed=options.seed)
    data = family.prepare_data(ctx, {**spec.model_args, **options.args})  # e.g. text → token windows
    epochs = int(hp["epochs"])
    if options.smoke:
        epochs = min(epochs, SMOKE_EPOCHS)
        data = replace(data, x_val=data.x_val[:SMOKE_VAL], y_val=data.y_val[:SMOKE_VAL])
    data_args = family.data_args(spec, data.info)
    model_args = {**spec.model_args, **data_args, **options.args}
    check_model_args(spec.name, spec.model_args, model_args, options.args, data.info)
    config = TrainConfig(
        model=spec.name, family=spec.family, dataset=options.dataset, seed=options.seed,
        device=str(device), hyperparameters=hp, model_args=model_args,
        data_options={"image_size": list(data_options.image_size) if data_options.image_size else None,
                      "channels": options.channels, "args": dict(options.data_args)},
    )
    ctx = replace(ctx, data=data)
    return RunParts(spec, family, config, data, device, precision, epochs, model_args, data_args, ctx)


def check_data_kinds(spec: Any, options: TrainOptions, info: Any) -> None:
    """The data is of a kind the model takes, and no image-only option is set for other data."""
    from zoo.data.kinds import accepted_kinds, check_accepts, check_image_options

    data_kinds, target_kinds = accepted_kinds(spec)
    check_accepts(spec.name, spec.plugin, data_kinds, target_kinds, info, options.dataset)
    check_image_options(options, info, options.dataset)


def say_adapted(spec: Any, data_args: dict[str, Any]) -> None:
    """Tell the user where the data made the model differ from its defaults."""
    changed = [f"{k} {spec.model_args[k]}→{v}" for k, v in data_args.items()
               if k in spec.model_args and spec.model_args[k] != v]
    if changed:
        print(f"zoo: {spec.name} adapted to the data: {', '.join(changed)}", file=sys.stderr)


def rank_device(requested: str, world: World) -> str:
    """Under torchrun each process on a node takes its own GPU."""
    if world.distributed and requested in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_device(world.local_rank)
            return f"cuda:{world.local_rank}"
    return requested


def optimizers_and_order(family: Any, net: Any, ctx: RunContext, accumulate: int) -> tuple[dict[str, Any], tuple]:
    """The family's optimizers and the order to step them in every batch, checked against each other."""

    optimizers = family.configure_optimizers(net, ctx)
    order = tuple(family.optimizer_steps(ctx))
    name = ctx.spec.family if ctx.spec else type(family).__name__
    if not order or set(optimizers) != set(order):
        raise ZooError(f"family {name!r} returned optimizers {sorted(optimizers)} but steps {list(order)}; "
                       "fix the family plugin")
    if accumulate > 1 and len(order) > 1:
        raise ZooError(f"--accumulate needs a family with one optimizer; {name!r} steps {len(order)}")
    return optimizers, order


def training_tensors(data: Any, device: Any) -> tuple[Any, Any]:
    """Training images and labels as the loop indexes them: on the device, or lazily read from files."""
    import torch

    from zoo.data.lazy import LazyImages

    if isinstance(data.x_train, LazyImages):  # read from files batch by batch, by worker processes
        return data.x_train, torch.from_numpy(data.y_train)
    return torch.from_numpy(data.x_train).to(device), torch.from_numpy(data.y_train).to(device)


def adapt_model(net: Any, options: TrainOptions, device: Any, say: bool) -> None:
    """The built model as the options ask: ``--freeze-backbone``, then ``--checkpoint-activations``,
    ``--channels-last`` and ``--compile`` (in place)."""
    from zoo.engine.scaling import prepare_model

    if options.freeze_backbone:
        from zoo.engine.init_weights import freeze_backbone

        freeze_backbone(net)
    prepare_model(net, options, device, say=say)


def starting_weights(net: Any, options: TrainOptions, model_name: str, say: bool) -> Any:
    """``--init``: load the weights into ``net`` and return their :class:`InitRecord` (None without ``--init``).
    Called before the run folder exists, so a wrong file leaves nothing behind."""
    if not options.init:
        return None
    from zoo.engine.init_weights import load_init

    return load_init(net, options.init, model_name, say=say and options.progress)
