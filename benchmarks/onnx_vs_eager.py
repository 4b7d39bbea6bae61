"""ONNX Runtime (CPU) against eager PyTorch latency, per built-in graph, at batch 1 and 64.

Both run in this one process, interleaved call by call with the same thread count (zoo's one timing
method, :mod:`zoo.timing`, the same as ``zoo bench``), so the ratio is measured side by side. A ratio
above 1 means ONNX Runtime is faster. Models are untrained
(latency does not depend on the weights' values).

    python benchmarks/onnx_vs_eager.py [--threads 2] [--rounds 200] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def graphs_for(name: str) -> list[Any]:
    import zoo
    from zoo.data import DataInfo

    spec = zoo.get_spec(name)
    family = zoo.load_family(spec.family)
    classes = int(spec.model_args.get("num_classes", 10))
    info = DataInfo(name="bench", channels=spec.input.channels, height=spec.input.height, width=spec.input.width,
                    num_classes=classes, class_names=[str(i) for i in range(classes)],
                    mean=[0.0] * spec.input.channels, std=[1.0] * spec.input.channels)
    args = {**spec.model_args, **family.data_args(spec, info)}
    model = family.build(spec, info, args).eval()
    return family.graphs(model, info)


def time_pair(graph: Any, session: Any, batch: int, rounds: int) -> dict[str, Any]:
    """Eager torch and ONNX Runtime timed with zoo's one method (:func:`zoo.timing.interleaved`, as ``zoo bench``)."""
    import torch

    from zoo.timing import interleaved, ratio_spread, spread

    inputs = graph.random_inputs(batch, np.random.default_rng(0))
    tensors = tuple(torch.from_numpy(a) for a in inputs)
    feeds = dict(zip(graph.input_names, inputs, strict=True))
    with torch.inference_mode():
        times = interleaved({"eager": lambda: graph.module(*tensors), "ort": lambda: session.run(None, feeds)},
                            warmup=10, rounds=rounds)
    ratio = ratio_spread(times["eager"], times["ort"])
    return {"eager_ms": spread(times["eager"])["p50_ms"], "ort_ms": spread(times["ort"])["p50_ms"],
            "speedup": ratio["median"], "speedup_p10": ratio["p10"], "speedup_p90": ratio["p90"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--models", help="Comma list of models (default: every registered one).")
    parser.add_argument("--json", dest="json_path", type=Path)
    args = parser.parse_args()

    import torch

    import zoo
    from zoo.bundles.onnx_graph import export_graph
    from zoo.ort import import_onnxruntime
    from zoo.timing import machine_load

    load_start = machine_load()

    ort = import_onnxruntime()
    torch.set_num_threads(args.threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    batches = [int(b) for b in args.batches.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        wanted = set(args.models.split(",")) if args.models else None
        for spec in zoo.list_models():
            if wanted is not None and spec.name not in wanted:
                continue
            for graph in graphs_for(spec.name):
                path = Path(tmp) / f"{spec.name}-{graph.name}.onnx"
                export_graph(graph, path, opset=18, exporter="dynamo", metadata={})
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                for batch in batches:
                    rows.append({"model": spec.name, "graph": graph.name, "batch": batch,
                                 **time_pair(graph, session, batch, args.rounds)})
    load_end = machine_load()
    print(f"threads={args.threads} rounds={args.rounds} torch={torch.__version__} onnxruntime={ort.__version__}")
    print(f"machine at start: {load_start.describe()}; at end: {load_end.describe()}")
    print(f"{'model':14} {'graph':14} {'batch':>5} {'eager ms':>9} {'ORT ms':>9} {'ORT speed-up':>12} {'p10-p90':>12}")
    slower = []
    for r in rows:
        flag = "" if r["speedup"] > 1.0 else "  <- ONNX Runtime not faster"
        print(f"{r['model']:14} {r['graph']:14} {r['batch']:>5} {r['eager_ms']:>9.3f} {r['ort_ms']:>9.3f} "
              f"{r['speedup']:>11.2f}x {r['speedup_p10']:>5.2f}-{r['speedup_p90']:.2f}x{flag}")
        if flag:
            slower.append(f"{r['model']}/{r['graph']}@{r['batch']}")
    print("every graph is faster under ONNX Runtime" if not slower else f"not faster: {', '.join(slower)}")
    if args.json_path:
        args.json_path.write_text(json.dumps({"threads": args.threads, "load_start": load_start.to_dict(),
                                                "load_end": load_end.to_dict(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
