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
    """The splits' shapes, lengths and labels against their :class:`zoo.data.DataInfo`."""
    info = data.info
    where = f"dataset {dataset!r} of plugin {plugin!r}"
    for split, x, y in (("training", data.x_train, data.y_train), ("validation", data.x_val, data.y_val)):
        shape = tuple(x.shape[1:])
        if math.prod(shape) != math.prod(info.shape):  # the layout may differ (rows as a sequence), the size not
            raise ZooError(f"{where}: {split} samples are {shape} but its DataInfo says {tuple(info.shape)}; "
                           "fix the loader (or let zoo prepare the data: return RawData)")
        if len(x) != len(y):
            raise ZooError(f"{where}: {len(x)} {split} images but {len(y)} labels; fix the loader")
        labels = np.asarray(y[: min(len(y), 4096)])
        if len(labels) and info.num_classes and (labels.min() < 0 or labels.max() >= info.num_classes):
            raise ZooError(f"{where}: {split} labels reach {int(labels.max())} but its DataInfo has "
                           f"{info.num_classes} classes; fix the loader")


def check_class_width(family: Any, net: Any, data: Any, spec: Any, device: Any) -> None:
    """Every graph with class scores gives exactly one score per class of the data."""
    import torch

    info = data.info
    if not info.num_classes:
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
