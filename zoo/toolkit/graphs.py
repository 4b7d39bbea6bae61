"""The graph most families export (documented in docs/plugins.md, "The toolkit"): one input, one output,
checked on the run's own data. numpy only; no family named here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from zoo.family import GraphSpec


def data_graph(model: Any, *, input_name: str, output_name: str, sample_shape: Sequence[int], role: str,
               role_info: dict[str, Any], classes: bool = False, random_scale: float = 1.0,
               **extra: Any) -> GraphSpec:
    """The ``model`` graph of a model with one input and one output, checked on the run's own data: random
    inputs of ``sample_shape`` (standard normal × ``random_scale``), the validation samples as real inputs with
    their targets as labels (the variant gate judges on them), the training samples to calibrate int8 on.
    ``classes``: the output holds class scores (parity reports top-1 agreement). ``extra``: other
    :class:`zoo.family.GraphSpec` fields (``metadata``, ``atol``, …)."""
    shape = tuple(int(n) for n in sample_shape)

    def random_inputs(batch: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        return ((rng.standard_normal((batch, *shape)) * random_scale).astype(np.float32),)

    return GraphSpec(name="model", module=model, input_names=[input_name], output_names=[output_name],
                     random_inputs=random_inputs, real_inputs=lambda splits: (splits.x_val,),
                     calibration_inputs=lambda splits: (splits.x_train,), real_labels=lambda splits: splits.y_val,
                     class_output=output_name if classes else None, role=role, role_info=role_info, **extra)
