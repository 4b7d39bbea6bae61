"""The bare exporter script `benchmarks/fixed_costs.py` compares `zoo export` with: the same graphs, no checks.

Loads the trained model as ``zoo export`` does (``load_run``), then calls the public
``torch.onnx.export(dynamo=True)`` once per graph with the same arguments, and saves each file.

    python benchmarks/scripts/bare_export.py RUN_DIR OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from zoo.runs import load_run


def main(run_dir: str, out: str) -> None:
    run = load_run(run_dir)
    Path(out).mkdir(parents=True, exist_ok=True)
    for graph in run.family.graphs(run.model, run.data_info):
        example = tuple(torch.from_numpy(a) for a in graph.random_inputs(2, np.random.default_rng(0)))
        batch = torch.export.Dim("batch")
        program = torch.onnx.export(graph.module.eval(), example, dynamo=True, opset_version=18, verbose=False,
                                    input_names=list(graph.input_names), output_names=list(graph.output_names),
                                    dynamic_shapes=tuple({0: batch} for _ in example))
        program.save(str(Path(out) / f"{graph.name}.onnx"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
