"""Turning one :class:`zoo.family.GraphSpec` into a checked ONNX file, and reading such files back safely."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from zoo.bundles.dynamo import export_program
from zoo.errors import ZooError

EXPORTERS = ("dynamo", "torchscript")
DEFAULT_OPSET = 18
#: Export with a batch of more than one, so the exporter cannot freeze the batch axis to 1.
EXPORT_BATCH = 2
#: Protobuf cannot hold more than 2 GiB: bigger graphs must keep their weights in an external file.
PROTOBUF_LIMIT = 2**31


def export_graph(graph: Any, path: Path, *, opset: int, exporter: str, metadata: dict[str, Any],
                 external_data: bool = False) -> None:
    """Export ``graph.module`` to ``path`` with a dynamic batch axis, check it fully and stamp metadata.

    With ``external_data`` (forced for graphs over 2 GiB) the weights go to one file beside the
    graph, ``<file name>.data``, referenced by a relative path.
    """
    import torch

    if exporter not in EXPORTERS:
        raise ZooError(f"unknown exporter {exporter!r}; use {' or '.join(EXPORTERS)}")
    example = tuple(torch.from_numpy(a) for a in graph.random_inputs(EXPORT_BATCH, np.random.default_rng(0)))
    module = graph.module.eval()
    size = sum(p.numel() * p.element_size() for p in [*module.parameters(), *module.buffers()])
    external_data = external_data or graph.external_data or size >= PROTOBUF_LIMIT - (64 << 20)
    extra_axes = getattr(graph, "dynamic_axes", {})
    # The exporters print progress and deprecation chatter; keep the user's terminal clean.
    quiet = contextlib.redirect_stdout(io.StringIO())
    # A refusal is one line (its cause); torch.export prints and logs the whole traced program first.
    chatter = contextlib.redirect_stderr(io.StringIO())
    with warnings.catch_warnings(record=True) as caught, quiet, chatter, no_logging(), torch.no_grad():
        warnings.simplefilter("always")
        try:
            if exporter == "dynamo":
                dims = {"batch": torch.export.Dim("batch")}
                shapes = tuple({0: dims["batch"], **{axis: dims.setdefault(label, torch.export.Dim(label))
                                                     for axis, label in extra_axes.get(name, {}).items()}}
                               for name in graph.input_names)
                program = export_program(module, example, opset=opset, input_names=list(graph.input_names),
                                         output_names=list(graph.output_names), dynamic_shapes=shapes)
                program.save(str(path), external_data=external_data)
            else:
                axes = {name: {0: "batch", **extra_axes.get(name, {})}
                        for name in [*graph.input_names, *graph.output_names]}
                torch.onnx.export(
                    module, example, str(path), dynamo=False, opset_version=opset,
                    input_names=list(graph.input_names), output_names=list(graph.output_names),
                    dynamic_axes=axes,
                )
                if external_data:
                    _weights_to_one_file(path)
        except ZooError:
            raise
        except Exception as exc:
            from zoo.faults import os_error_in

            os_error = os_error_in(exc, path)
            if os_error is not None:  # the disk, a file-size limit: the user's to fix, and the file is named
                raise os_error from exc
            raise ZooError(f"exporting graph {graph.name!r} with the {exporter} exporter failed: {cause_line(exc)} "
                           "(zoo --debug shows the exporter's whole message)") from exc
    branches = [w for w in caught if _is_data_dependent_branch(w)]
    if branches:  # the tracer recorded one branch of an `if` on a tensor's value: does the graph take the other?
        refuse_traced_branch(graph, path, branches[0])
    from zoo.roles import role_metadata

    props = {**{k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}, **graph.metadata,
             **role_metadata(getattr(graph, "role", None), getattr(graph, "role_info", {}))}
    stamp_metadata(path, props)
    check_graph(path, graph.name)


#: The line of an exporter's long report that says what went wrong (torch.export prints ~100 lines around it).
_CAUSE = re.compile(r"^\s*(?:[\w.]*(?:Error|Exception)|Error|error):\s*(\S.*)$")


def _first(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else ""


def cause_line(exc: BaseException) -> str:
    """One line naming the cause of an exporter's failure: the innermost error's first ``...Error: ...`` line,
    else its first line, at most 300 characters."""
    inner = exc
    while inner.__cause__ is not None and inner.__cause__ is not inner:
        inner = inner.__cause__
    lines = [line.strip() for text in (str(inner), str(exc)) for line in text.splitlines() if line.strip()]
    marked = [m.group(0).strip() for line in lines if (m := _CAUSE.match(line))]
    text = marked[0] if marked else lines[0] if lines else type(inner).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _is_data_dependent_branch(warning: warnings.WarningMessage) -> bool:
    """A TracerWarning saying the trace turned a tensor into a Python bool (an ``if`` on a value or a shape)."""
    return warning.category.__name__ == "TracerWarning" and "Python boolean" in str(warning.message)


#: Inputs that take other branches than the traced ones: the example inputs negated and scaled.
BRANCH_PROBES = (-1.0, 10.0, -10.0, 0.1)


def refuse_traced_branch(graph: Any, path: Path, warning: warnings.WarningMessage) -> None:
    """Refuse a traced graph that computes something else than the module on inputs taking another branch.

    The tracer records only the branch the example took. Run the graph and the module on the example inputs
    negated and scaled (``BRANCH_PROBES``); a branch on shapes alone gives the same outputs and passes."""
    import torch

    from zoo.bundles.parity import compare
    from zoo.ort import CPU, run_graph

    base = graph.random_inputs(4, np.random.default_rng(1))
    probes = [tuple((a * np.asarray(k, a.dtype)) if np.issubdtype(a.dtype, np.floating) else a for a in base)
              for k in BRANCH_PROBES]
    outputs, _ = run_graph(path, CPU, [dict(zip(graph.input_names, p, strict=True)) for p in probes])
    atol = max(10 * graph.atol, 1e-4)
    module = graph.module.eval()
    for probe, got in zip(probes, outputs, strict=True):
        with torch.no_grad():
            want = module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in probe))
        want = want if isinstance(want, (tuple, list)) else (want,)
        for ref, out in zip(want, got, strict=False):
            result = compare(ref.detach().cpu().numpy(), np.asarray(out), atol=atol, rtol=atol)
            if not result["passed"]:
                where = f"{Path(warning.filename).name}:{warning.lineno}"
                raise ZooError(f"graph {graph.name!r} branches on a tensor's value ({where}); the torchscript "
                               f"tracer kept one branch, and the graph misses the model by "
                               f"{result.get('max_abs_diff', float('nan')):.3g} on inputs that take another; "
                               "export with --exporter dynamo (the default), or make the branch tensor code "
                               "(torch.where)")


def stamp_metadata(path: Path, props: dict[str, str]) -> None:
    """Set ``metadata_props`` of a graph file; external weights stay where they are."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(path))


def check_graph(path: Path, name: str) -> None:
    """The ONNX checker with ``full_check`` (shape inference too); a ZooError on failure."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise ZooError(f"graph {name!r} fails the ONNX checker: {str(exc).strip().splitlines()[0]}") from None


def external_data_files(path: Path) -> list[str]:
    """The external data files a graph refers to, as written in the graph (relative paths)."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: not an ONNX file
        raise ZooError(f"{path} is not a readable ONNX graph ({type(exc).__name__}: {_first(exc)}); "
                       "export the bundle again") from exc
    tensors = [*model.graph.initializer, *(a.t for n in model.graph.node for a in n.attribute if a.HasField("t"))]
    return sorted({ExternalDataInfo(t).location for t in tensors if uses_external_data(t)})


def _weights_to_one_file(path: Path) -> None:
    """Rewrite a graph so that all its weights sit in one ``<file name>.data`` beside it."""
    import onnx

    scattered = external_data_files(path)
    model = onnx.load(str(path))
    for name in scattered:
        (path.parent / name).unlink()
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=f"{path.name}.data", size_threshold=1024)


@contextlib.contextmanager
def quiet_logger(name: str | None = None) -> Iterator[None]:
    """Only errors from logger ``name`` (the root logger by default) for the duration."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def no_logging() -> Iterator[None]:
    """No log records from any library while exporting (``--debug`` still has the error's whole message)."""
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def describe_graph(path: Path) -> dict[str, Any]:
    """Names, shapes, dtypes and opset of an ONNX file, for the manifest."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: not an ONNX file
        raise ZooError(f"{path} is not a readable ONNX graph ({type(exc).__name__}: {_first(exc)}); "
                       "export the bundle again") from exc

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
