"""Test vectors in the ONNX model-zoo layout, readable by any runtime's own test harness.

Beside each graph's ``model.onnx``::

    test_data_set_0/input_0.pb  input_1.pb ...  output_0.pb ...

each a serialized ``onnx.TensorProto`` named after the graph input or output it belongs to. The
expected outputs are those of the fp32 PyTorch model. Needs ``onnx`` and numpy only (no torch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo.errors import ZooError

SET_PREFIX = "test_data_set_"

#: One test set: the inputs fed to the graph and the outputs it should give, in graph order.
TestSet = tuple[list[np.ndarray], list[np.ndarray]]


def write_test_set(folder: Path, inputs: list[tuple[str, np.ndarray]], outputs: list[tuple[str, np.ndarray]]) -> None:
    """Write one ``test_data_set_N`` folder (``folder``) of named input and output tensors."""
    from onnx import numpy_helper

    folder.mkdir(parents=True)
    for kind, tensors in (("input", inputs), ("output", outputs)):
        for index, (name, array) in enumerate(tensors):
            proto = numpy_helper.from_array(np.ascontiguousarray(array), name=name)
            (folder / f"{kind}_{index}.pb").write_bytes(proto.SerializeToString())


def read_test_set(folder: Path) -> TestSet:
    """The inputs and expected outputs stored in one ``test_data_set_N`` folder."""
    return _read_tensors(folder, "input"), _read_tensors(folder, "output")


def data_set_folders(graph_dir: Path) -> list[Path]:
    """The ``test_data_set_N`` folders beside a graph, in order of N."""
    found = [p for p in graph_dir.glob(f"{SET_PREFIX}*") if p.is_dir() and p.name[len(SET_PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(SET_PREFIX):]))


def _read_tensors(folder: Path, kind: str) -> list[np.ndarray]:
    from onnx import TensorProto, numpy_helper

    arrays = []
    index = 0
    while (path := folder / f"{kind}_{index}.pb").exists():
        proto = TensorProto()
        try:
            proto.ParseFromString(path.read_bytes())
            arrays.append(numpy_helper.to_array(proto))
        except Exception as exc:
            raise ZooError(f"test vector {path} cannot be read ({exc}); export the bundle again") from None
        index += 1
    if not arrays:
        raise ZooError(f"test set {folder} has no {kind}_0.pb; export the bundle again")
    return arrays
