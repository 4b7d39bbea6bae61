"""Checks on the first batch, before any step: the data agrees with its description, and a classifier's
scores are as wide as the class list. Each failure is one line naming the plugin at fault."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from zoo.errors import ZooError

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
