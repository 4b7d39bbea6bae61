"""Building a run before its first step: device, seeds and precision; options turned into the spec, family,
hyperparameters, data and :class:`~zoo.family.RunContext`; the checks on the first batch.

Devices and seeding.

Numeric precision: fp32, bf16 autocast (CPU, CUDA), fp16 autocast with a grad scaler (CUDA).

Turning options into a run's parts: the spec, family, hyperparameters, device, data and context.

Checks on the first batch, before any step: the data agrees with its description, and a classifier's
scores are as wide as the class list; the model has no lazy layers and returns what its graphs name;
the family returns its monitored metric. Each failure is one line naming the plugin at fault.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from zoo.engine.distributed import World, init_process_group
from zoo.engine.options import (
    SMOKE_EPOCHS,
    SMOKE_VAL,
    TrainConfig,
    TrainOptions,
    check_model_args,
    parse_image_size,
    resolve_hyperparameters,
)
from zoo.errors import ZooError
from zoo.family import RunContext

# === devices and seeds ===============================================================================================

def pick_device(requested: str) -> Any:
    """``auto`` = CUDA when torch can use it, else CPU; ``cuda`` without a usable GPU is an error."""
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cpu":
        return torch.device("cpu")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ZooError("--device cuda was asked for, but torch sees no usable GPU; use --device cpu or auto")
        return torch.device(requested)
    raise ZooError(f"unknown device {requested!r}; use auto, cpu or cuda")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def deterministic_mode(enabled: bool) -> Iterator[None]:
    """While active (when ``enabled``): deterministic algorithms only, no cuDNN autotuning."""
    import torch

    if not enabled:
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
    cudnn = torch.backends.cudnn
    previous = (torch.are_deterministic_algorithms_enabled(), cudnn.benchmark, cudnn.deterministic)
    torch.use_deterministic_algorithms(True)
    cudnn.benchmark, cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        cudnn.benchmark, cudnn.deterministic = previous[1], previous[2]


# === numeric precision ===============================================================================================

class Precision:
    """Autocast context for the forward pass, and the grad scaler (``16-mixed`` only)."""

    def __init__(self, name: str, device: Any) -> None:
        import torch

        self.name = name
        self.device = device
        self.scaler: Any = None
        if name == "16-mixed":
            if device.type != "cuda":
                raise ZooError("--precision 16-mixed needs a CUDA device; on the CPU use --precision bf16-mixed")
            self.scaler = torch.amp.GradScaler("cuda")
        elif name == "bf16-mixed":
            if device.type == "cuda" and not torch.cuda.is_bf16_supported():
                raise ZooError("this GPU has no bfloat16 support; use --precision 16-mixed or 32")
        elif name != "32":
            raise ZooError(f"unknown precision {name!r}; use 32, bf16-mixed or 16-mixed")

    def autocast(self) -> Any:
        import torch

        if self.name == "32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.name == "bf16-mixed" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def backward(self, loss: Any) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def unscale(self, optimizer: Any) -> None:
        """Make the gradients true-sized (before clipping them)."""
        if self.scaler:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: Any, grad_clip: float | None = None) -> None:
        """Step ``optimizer`` (through the grad scaler), clipping the gradient norm to ``grad_clip`` first."""
        if grad_clip:
            import torch

            self.unscale(optimizer)
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        if self.scaler:
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    def update(self) -> None:
        """Once per batch, after every optimizer stepped."""
        if self.scaler:
            self.scaler.update()


# === options to a run's parts ========================================================================================

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
    #: The model arguments the family chose for DP-SGD (``Family.private_model_args``) that the run took.
    private_args: dict[str, Any] = field(default_factory=dict)


def with_default_dataset(options: TrainOptions) -> TrainOptions:
    """The options with the model's own dataset filled in when ``--data`` was not given."""
    if options.dataset is not None:
        return options
    from zoo.registry import get_spec

    return replace(options, dataset=get_spec(options.model).dataset)


def prepare(options: TrainOptions, world: World) -> RunParts:
    """Resolve the model, family, hyperparameters and data; join the process group."""
    from zoo.building import load_family
    from zoo.data import DataOptions, load_dataset, parse_dataset
    from zoo.engine.reporting import tensorboard_writer
    from zoo.registry import get_dataset_spec, get_unambiguous_spec

    spec = get_unambiguous_spec(options.model)
    family = load_family(spec.family)
    private = family.private_hyperparameters(spec) if options.dp_epsilon is not None else {}
    hp = resolve_hyperparameters(
        family.hyperparameters, {**spec.defaults, **private},
        {"epochs": options.epochs, "batch_size": options.batch_size, "lr": options.lr,
         "optimizer": options.optimizer, **options.hp},
    )
    get_dataset_spec(parse_dataset(options.dataset)[0])  # unknown dataset: fail before touching torch
    device = pick_device(rank_device(options.device, world))
    precision = Precision(options.precision, device)
    if options.tensorboard and world.is_main:
        tensorboard_writer()  # not installed: say so before a run folder exists
    init_process_group(world, device)
    normalize, image_size, crop = weights_inputs(options, say=world.is_main and options.progress)
    data_options = DataOptions(image_size=image_size, channels=options.channels, args=dict(options.data_args),
                               normalize=normalize, train_samples=options.train_samples, crop=crop)
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
    private_args = family.private_model_args(spec) if options.dp_epsilon is not None else {}  # e.g. GroupNorm
    model_args = {**spec.model_args, **data_args, **private_args, **options.args}
    check_model_args(spec.name, spec.model_args, model_args, options.args, data.info)
    config = TrainConfig(
        model=spec.name, family=spec.family, dataset=options.dataset, seed=options.seed,
        device=str(device), hyperparameters=hp, model_args=model_args,
        data_options={"image_size": list(data_options.image_size) if data_options.image_size else None,
                      "channels": options.channels, "args": dict(options.data_args),
                      "normalize": normalize.to_dict() if normalize else None,
                      "train_samples": options.train_samples,
                      **({"crop": crop.to_dict()} if crop else {})},  # no key without: configs stay as they were
    )
    ctx = replace(ctx, data=data)
    taken = {k: v for k, v in private_args.items() if k not in options.args}
    return RunParts(spec, family, config, data, device, precision, epochs, model_args, data_args, ctx, taken)


def weights_inputs(options: TrainOptions, say: bool) -> tuple[Any, tuple[int, int] | None, Any]:
    """The run's normalisation, image size and evaluation transform: ``--normalize``, ``--image-size`` and
    ``--crop-pct`` when given, else what the ``--init`` weights' own ``config.json`` states (timm's
    ``pretrained_cfg``, an image processor's mean/std), else the data's statistics and size and the squash. Reads
    the weights' JSON only, before any data is loaded."""
    from zoo.data.crop import INTERPOLATIONS, EvalCrop, parse_crop_pct
    from zoo.data.normalize import parse_normalize, weights_preprocessing
    from zoo.engine.adapt import init_config

    normalize, image_size = parse_normalize(options.normalize), parse_image_size(options.image_size)
    stated = weights_preprocessing(*init_config(options.init)) if options.init else None
    interpolation = stated.interpolation if stated and stated.interpolation else "bilinear"
    crop = parse_crop_pct(options.crop_pct, interpolation)
    if stated is None:
        return normalize, image_size, crop
    taken = []
    if options.normalize is None and stated.normalization is not None:
        normalize = stated.normalization
        taken.append(f"mean {list(normalize.mean)} std {list(normalize.std)}")
    if image_size is None and stated.input_size is not None:
        image_size = stated.input_size
        taken.append(f"image size {image_size[0]}x{image_size[1]}")
    if options.crop_pct is None and stated.crop_pct is not None:
        if 0 < stated.crop_pct <= 1:
            crop = EvalCrop(stated.crop_pct, interpolation if interpolation in INTERPOLATIONS else "bilinear",
                            f"weights: {options.init}")
            taken.append(f"crop_pct {crop.crop_pct:g} ({crop.interpolation}"
                         f"{'' if interpolation in INTERPOLATIONS else f' for their {interpolation!r}'})")
        elif say:
            print(f"zoo: --init {options.init} states crop_pct {stated.crop_pct:g}, not a fraction in (0, 1]; "
                  "squashing the images (set --crop-pct to choose)", file=sys.stderr)
    if taken and say:
        print(f"zoo: --init {options.init} states its inputs: {', '.join(taken)} (set --normalize / --image-size "
              "/ --crop-pct to override)", file=sys.stderr)
    return normalize, image_size, crop


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
    from zoo.engine.adapt import prepare_model

    if options.freeze_backbone:
        from zoo.engine.adapt import freeze_backbone

        freeze_backbone(net)
    prepare_model(net, options, device, say=say)


def starting_weights(net: Any, options: TrainOptions, model_name: str, say: bool) -> Any:
    """``--init``: load the weights into ``net`` and return their :class:`InitRecord` (None without ``--init``).
    Called before the run folder exists, so a wrong file leaves nothing behind."""
    if not options.init:
        return None
    from zoo.engine.adapt import load_init

    return load_init(net, options.init, model_name, say=say and options.progress)


# === the first batch =================================================================================================

#: Random samples (the graph's own ``random_inputs``) pushed through a class-score graph to measure its width.
_PROBE = 2


def check_data(data: Any, dataset: str, plugin: str) -> None:
    """The splits' shapes, lengths and targets against their :class:`zoo.data.DataInfo`, by its kinds."""
    from zoo.data.kinds import TargetKind

    info = data.info
    where = f"dataset {dataset!r} of plugin {plugin!r}"
    if info.kind == "text":
        check_tokens(data, where)
        return
    expected = info.sample_shape
    for split, x, y in (("training", data.x_train, data.y_train), ("validation", data.x_val, data.y_val)):
        shape = tuple(x.shape[1:])
        if expected and math.prod(shape) != math.prod(expected):  # the layout may differ (rows as a sequence)
            raise ZooError(f"{where}: {split} samples are {shape} but its DataInfo says {expected} "
                           f"({info.kind}); fix the loader (or let zoo prepare the data: return RawData, RawTable "
                           "or RawAudio)")
        if len(x) != len(y):
            raise ZooError(f"{where}: {len(x)} {split} samples but {len(y)} targets; fix the loader")
        dtype = getattr(x, "dtype", None)
        if dtype is not None and info.kind in ("image", "features", "audio") and np.dtype(dtype) != np.float32:
            raise ZooError(f"{where}: {split} samples are {np.dtype(dtype)}, not float32; convert them in the "
                           "loader (x.astype(np.float32))")
        if info.target.kind == TargetKind.CLASS:
            check_class_targets(np.asarray(y[: min(len(y), 4096)]), info, split, where)
        elif info.target.kind == TargetKind.REAL:
            check_real_targets(np.asarray(y), info, split, where)


def check_class_targets(labels: np.ndarray, info: Any, split: str, where: str) -> None:
    """Class targets: whole numbers within the classes."""
    if len(labels) and labels.dtype != np.int64:
        raise ZooError(f"{where}: {split} class labels are {labels.dtype}, not int64; give int64 class indices "
                       "(labels.astype(np.int64)), or declare real targets (TargetInfo('real', ...))")
    if len(labels) and info.num_classes and (labels.min() < 0 or labels.max() >= info.num_classes):
        raise ZooError(f"{where}: {split} labels reach {int(labels.max())} but its DataInfo has "
                       f"{info.num_classes} classes; fix the loader")


def check_real_targets(values: np.ndarray, info: Any, split: str, where: str) -> None:
    """Real targets: finite float32, one value per target column."""
    columns = info.target.columns
    width = 1 if values.ndim == 1 else math.prod(values.shape[1:])
    if values.dtype != np.float32 or width != columns:
        raise ZooError(f"{where}: {split} targets are {values.dtype} {tuple(values.shape)} but its DataInfo says "
                       f"{columns} real target column(s); give float32 N×{columns} targets (zoo.data.real_targets)")
    if not np.isfinite(values).all():
        raise ZooError(f"{where}: {split} targets hold NaN or infinite values; fix the loader")


def check_tokens(data: Any, where: str) -> None:
    """Text data after the family tokenised it: rows of integer token ids below the vocabulary size."""
    text = data.info.text
    if text is None:  # the engine refuses untokenised text before this
        raise ZooError(f"{where}: text data was not tokenised; train a language model on it")
    for split, x, y in (("training", data.x_train, data.y_train), ("validation", data.x_val, data.y_val)):
        x = np.asarray(x)
        if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer):
            raise ZooError(f"{where}: {split} samples are {x.dtype} {tuple(x.shape)}, not rows of token ids; "
                           "fix the family's prepare_data")
        if len(x) != len(y):
            raise ZooError(f"{where}: {len(x)} {split} token rows but {len(y)} labels; fix the family's prepare_data")
        if x.size and text.vocab_size and (x.min() < 0 or x.max() >= text.vocab_size):
            raise ZooError(f"{where}: {split} token ids reach {int(x.max())} but the tokenizer has "
                           f"{text.vocab_size} tokens; fix the family's prepare_data")


def check_model(net: Any, spec: Any) -> None:
    """The built model has every parameter's shape (no lazy layers) and float32 floating-point parameters."""
    import torch

    where = f"model {spec.name!r} of plugin {spec.plugin!r}"
    lazy = [name for name, module in net.named_modules() if isinstance(module, torch.nn.modules.lazy.LazyModuleMixin)
            and any(torch.nn.parameter.is_lazy(p) for p in module.parameters(recurse=False))]
    if lazy:
        kind = type(dict(net.named_modules())[lazy[0]]).__name__
        more = " and more" if lazy[1:] else ""
        raise ZooError(f"{where} has lazy layers ({kind} at {lazy[0] or 'the root'!r}{more}) "
                       "whose shapes zoo needs before training (optimizers, checkpoints, export); build them with "
                       "their sizes (nn.Linear(in_features, out), sizes from the data through Family.data_args)")
    for name, tensor in [*net.named_parameters(), *net.named_buffers()]:
        if tensor.is_floating_point() and tensor.dtype != torch.float32:
            raise ZooError(f"{where} holds {str(tensor.dtype).removeprefix('torch.')} tensors ({name!r}); build it in "
                           "float32 (zoo's --precision runs mixed precision itself)")


def check_graph_outputs(family: Any, net: Any, data: Any, spec: Any, device: Any) -> None:
    """Each exported graph's module, run on its own random inputs, returns what the graph names: one tensor
    per output name (a tensor for one, a tuple or list for several), floating outputs in float32; a graph with
    class scores gives one score per class of the data. A mistake names the model's plugin and the family's."""
    import torch

    info = data.info
    try:
        graphs = family.graphs(net, info)
    except NotImplementedError:  # a family that trains but does not export (yet)
        return
    for graph in graphs:
        inputs = [torch.as_tensor(x, device=device) for x in graph.random_inputs(_PROBE, np.random.default_rng(0))]
        was_training = net.training
        net.eval()
        with torch.no_grad():
            outputs = graph.module(*inputs)
        net.train(was_training)
        outputs = _check_outputs(outputs, graph, spec)
        if graph.class_output and info.num_classes and info.target.kind == "class":
            scores = outputs[list(graph.output_names).index(graph.class_output)]
            width = scores.shape[-1] if scores.dim() > 1 else 1
            if width != info.num_classes:
                raise ZooError(f"model {spec.name!r} of plugin {spec.plugin!r} gives {width} class scores "
                               f"({graph.class_output!r} of graph {graph.name!r}) but the data has "
                               f"{info.num_classes} classes; pass num_classes from the data (Family.data_args)")


def _check_outputs(outputs: Any, graph: Any, spec: Any) -> tuple[Any, ...]:
    """``outputs`` as a tuple of tensors, one per output name of ``graph``; a one-line error otherwise."""
    import torch

    from zoo.registry import get_family_spec

    names = list(graph.output_names)
    family = get_family_spec(spec.family)
    wanted = f"one tensor ({names[0]!r})" if len(names) == 1 else f"a tuple of {len(names)} tensors {names}"
    got = None
    if isinstance(outputs, dict):
        got = f"a dict (keys {sorted(map(str, outputs))[:4]})"
    elif isinstance(outputs, (tuple, list)) and (len(names) == 1 or len(outputs) != len(names)):
        got = f"a {type(outputs).__name__} of {len(outputs)}"
    elif not isinstance(outputs, (tuple, list, torch.Tensor)):
        got = f"a {type(outputs).__name__}"
    elif isinstance(outputs, (tuple, list)) and not all(isinstance(o, torch.Tensor) for o in outputs):
        got = "a tuple holding " + ", ".join(sorted({type(o).__name__ for o in outputs}))
    if got is not None:
        raise ZooError(f"model {spec.name!r} of plugin {spec.plugin!r}: forward returned {got}, but graph "
                       f"{graph.name!r} of the {spec.family!r} family (plugin {family.plugin!r}) takes {wanted}; "
                       f"return {wanted} from the model's forward")
    outputs = tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)
    for name, tensor in zip(names, outputs, strict=True):
        if tensor.is_floating_point() and tensor.dtype != torch.float32:
            raise ZooError(f"model {spec.name!r} of plugin {spec.plugin!r}: output {name!r} of graph {graph.name!r} "
                           f"is {str(tensor.dtype).removeprefix('torch.')} for float32 inputs; return float32 "
                           "(zoo's --precision runs mixed precision itself)")
    return outputs


def check_first_batch(family: Any, net: Any, data: Any, spec: Any, dataset: str, device: Any) -> None:
    """The data against its description, the model's parameters, and its outputs against the family's graphs;
    the dataset's plugin is looked up for the message."""
    from zoo.data import parse_dataset
    from zoo.registry import get_dataset_spec

    check_data(data, dataset, get_dataset_spec(parse_dataset(dataset)[0]).plugin)
    check_model(net, spec)
    check_graph_outputs(family, net, data, spec, device)


def check_monitored(family: Any, metrics: dict[str, Any], spec: Any) -> None:
    """At the first validation: the family's monitored metric is among the epoch's metrics."""
    from zoo.registry import get_family_spec

    metric, _ = family.monitor
    if metric not in metrics:
        plugin = get_family_spec(spec.family).plugin
        raise ZooError(f"family {spec.family!r} of plugin {plugin!r} monitors {metric!r} (best checkpoint, "
                       f"--early-stop) but its evaluate returned {sorted(k for k in metrics if k.startswith('val'))}; "
                       f"return {metric!r} from evaluate (or epoch_end), or set Family.monitor to one it returns")
