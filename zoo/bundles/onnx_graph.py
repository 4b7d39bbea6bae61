"""Turning one :class:`zoo.family.GraphSpec` into a checked ONNX file."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError

EXPORTERS = ("dynamo", "torchscript")
DEFAULT_OPSET = 18
#: Export with a batch of more than one, so the exporter cannot freeze the batch axis to 1.
EXPORT_BATCH = 2


def export_graph(graph: Any, path: Path, *, opset: int, exporter: str, metadata: dict[str, Any]) -> None:
    """Export ``graph.module`` to ``path`` with a dynamic batch axis, check it fully and stamp metadata."""
    import onnx
    import torch

    if exporter not in EXPORTERS:
        raise ZooError(f"unknown exporter {exporter!r}; use {' or '.join(EXPORTERS)}")
    example = tuple(torch.from_numpy(a) for a in graph.random_inputs(EXPORT_BATCH, np.random.default_rng(0)))
    module = graph.module.eval()
    # The exporters print progress and deprecation chatter; keep the user's terminal clean.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet_torch_logs(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            if exporter == "dynamo":
                batch = torch.export.Dim("batch")
                program = torch.onnx.export(
                    module, example, dynamo=True, opset_version=opset, verbose=False,
                    input_names=list(graph.input_names), output_names=list(graph.output_names),
                    dynamic_shapes=tuple({0: batch} for _ in example),
                )
                program.save(str(path))
            else:
                axes = {name: {0: "batch"} for name in [*graph.input_names, *graph.output_names]}
                torch.onnx.export(
                    module, example, str(path), dynamo=False, opset_version=opset,
                    input_names=list(graph.input_names), output_names=list(graph.output_names),
                    dynamic_axes=axes,
                )
        except ZooError:
            raise
        except Exception as exc:
            raise ZooError(f"exporting graph {graph.name!r} with the {exporter} exporter failed: {exc}") from None
    model = onnx.load(str(path))
    props = {**{k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}, **graph.metadata}
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(path))
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise ZooError(f"graph {graph.name!r} fails the ONNX checker: {exc}") from None


@contextlib.contextmanager
def _quiet_torch_logs() -> Iterator[None]:
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def describe_graph(path: Path) -> dict[str, Any]:
    """Names, shapes, dtypes and opset of an ONNX file, for the manifest."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def values(items: Any) -> list[dict[str, Any]]:
        out = []
        for value in items:
            tensor = value.type.tensor_type
            shape = [d.dim_param or d.dim_value for d in tensor.shape.dim]
            out.append({"name": value.name, "shape": shape,
                        "dtype": onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name})
        return out

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return {"opset": opset, "inputs": values(model.graph.input), "outputs": values(model.graph.output),
            "metadata": {p.key: p.value for p in model.metadata_props}}
