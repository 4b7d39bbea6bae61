"""The dynamo ONNX exporter with its graph-independent set-up done once per process.

``torch.onnx.export(..., dynamo=True)`` rebuilds two things on every call that do not depend on the
graph: the exporter's operator registry (every torchlib function, looked up by name among torch's
operators: one to two seconds) and, from it, the table of ATen decompositions to apply (the ones
without an ONNX function: a few tenths of a second). The exporter only reads both (``run_decompositions``
copies its table), so each is built once per opset and reused for every graph of every bundle in the
process: the registry is handed to the exporter's core, the table to its decomposition step.

Only torch's private exporter modules make that possible; where they are missing or differ (another
torch version), the public ``torch.onnx.export`` is used instead: slower, same graph.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import cache
from typing import Any


def export_program(module: Any, example: tuple[Any, ...], *, opset: int, input_names: list[str],
                   output_names: list[str], dynamic_shapes: tuple[dict[int, Any], ...]) -> Any:
    """Export ``module`` with the dynamo exporter; the ``ONNXProgram`` (as ``torch.onnx.export`` returns it)."""
    import torch

    core = _core_export()
    registry = registry_for(opset)
    if core is None or registry is None:
        return torch.onnx.export(module, example, dynamo=True, opset_version=opset, verbose=False,
                                 input_names=input_names, output_names=output_names, dynamic_shapes=dynamic_shapes)
    from torch.onnx._internal.exporter import _dynamic_shapes

    # As torch.onnx.export does: named dims become plain dynamic ones for torch.export, and the finished
    # graph's symbolic axes are renamed back to those names ("batch", not "s34").
    export_shapes, rename = _dynamic_shapes.convert_str_to_export_dim(dynamic_shapes)
    with _shared_decompositions(registry, _decomposition_table(opset)):
        program = core(module, example, None, registry=registry, dynamic_shapes=export_shapes,
                       input_names=input_names, output_names=output_names, verbose=False, optimize=True,
                       opset_version=opset)
    if rename:
        program._rename_dynamic_axes(dynamic_shapes)
    return program


@cache
def registry_for(opset: int) -> Any:
    """The exporter's operator registry for ``opset`` (built on first use, then shared); None if unavailable."""
    try:
        from torch.onnx._internal.exporter import _constants, _registration
    except ImportError:
        return None
    # As torch.onnx.export does: below torchlib's own opset the registry stays at torchlib's (and the
    # exporter converts the finished graph down).
    return _registration.ONNXRegistry.from_torchlib(opset_version=max(opset, _constants.TORCHLIB_OPSET))


@cache
def _core_export() -> Any:
    try:
        from torch.onnx._internal.exporter import _core
    except ImportError:
        return None
    return getattr(_core, "export", None)


@cache
def _decomposition_table(opset: int) -> dict[Any, Any] | None:
    """The ATen decompositions the exporter applies with this opset's registry (None if unavailable)."""
    try:
        from torch.onnx._internal.exporter import _decomp
    except ImportError:
        return None
    registry = registry_for(opset)
    return _decomp.create_onnx_friendly_decomposition_table(set(_decomp.get_onnx_implemented_overloads(registry)))


@contextlib.contextmanager
def _shared_decompositions(registry: Any, table: dict[Any, Any] | None) -> Iterator[None]:
    """For the duration, the exporter's decomposition step uses ``table`` (built once) with ``registry``."""
    try:
        from torch.onnx._internal.exporter import _fx_passes
    except ImportError:
        table = None
    original = getattr(_fx_passes, "decompose_with_registry", None) if table is not None else None
    if original is None:
        yield
        return

    def decompose(program: Any, given: Any) -> Any:
        return program.run_decompositions(table) if given is registry else original(program, given)

    _fx_passes.decompose_with_registry = decompose
    try:
        yield
    finally:
        _fx_passes.decompose_with_registry = original
