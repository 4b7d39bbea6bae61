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
    if len(labels) and not np.issubdtype(labels.dtype, np.integer):
        raise ZooError(f"{where}: {split} class labels are {labels.dtype}, not int64; give class indices (or "
                       "declare real targets: TargetInfo('real', ...))")
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


def check_class_width(family: Any, net: Any, data: Any, spec: Any, device: Any) -> None:
    """Every graph with class scores gives exactly one score per class of the data."""
    import torch

    info = data.info
    if not info.num_classes or info.target.kind != "class":
        return
    try:
        graphs = family.graphs(net, info)
    except NotImplementedError:  # a family that trains but does not export (yet)
        return
    for graph in graphs:
        if not graph.class_output:
            continue
        inputs = [torch.as_tensor(x, device=device) for x in graph.random_inputs(_PROBE, np.random.default_rng(0))]
        was_training = net.training
        net.eval()
        with torch.no_grad():
            outputs = graph.module(*inputs)
        net.train(was_training)
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        scores = outputs[list(graph.output_names).index(graph.class_output)]
        width = scores.shape[-1] if scores.dim() > 1 else 1
        if width != info.num_classes:
            raise ZooError(f"model {spec.name!r} of plugin {spec.plugin!r} gives {width} class scores "
                           f"({graph.class_output!r} of graph {graph.name!r}) but the data has "
                           f"{info.num_classes} classes; pass num_classes from the data (Family.data_args)")


def check_first_batch(family: Any, net: Any, data: Any, spec: Any, dataset: str, device: Any) -> None:
    """Both checks; the dataset's plugin is looked up for the message."""
    from zoo.data import parse_dataset
    from zoo.registry import get_dataset_spec

    check_data(data, dataset, get_dataset_spec(parse_dataset(dataset)[0]).plugin)
    check_class_width(family, net, data, spec, device)
