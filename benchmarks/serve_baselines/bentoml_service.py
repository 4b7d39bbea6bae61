"""BentoML serving a bundle's first graph for benchmarks/serve_load.py: ONNX Runtime in the service, BentoML's own
adaptive batching (``batchable=True``, ``max_batch_size``), the same Open Inference Protocol JSON body (its
``inputs`` list is the batchable argument: each request's tensors are concatenated into one run). Loopback only.

    ZOO_BENCH_BUNDLE=BUNDLE ZOO_BENCH_MAX_BATCH=64 bentoml serve bentoml_service:BundleService --port N \
        --host 127.0.0.1 --working-dir benchmarks/serve_baselines
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
import numpy as np

MAX_BATCH = int(os.environ.get("ZOO_BENCH_MAX_BATCH", "64"))


@bentoml.service(workers=1, traffic={"timeout": 30})
class BundleService:
    """One ORT session; each request's tensors decoded, stacked into one batch, split back per request."""

    def __init__(self) -> None:
        import onnxruntime as ort

        from zoo.bundles import Bundle

        bundle = Bundle.open(os.environ["ZOO_BENCH_BUNDLE"])
        self.entry = next(iter(bundle.manifest.graphs.values()))
        self.session = ort.InferenceSession(str(bundle.graph_path(self.entry)), providers=["CPUExecutionProvider"])

    @bentoml.api(route="/v2/models/model/infer", batchable=True, batch_dim=0, max_batch_size=MAX_BATCH,
                 max_latency_ms=int(os.environ.get("ZOO_BENCH_BENTO_LATENCY_MS", "30000")))
    def infer(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        arrays = [np.asarray(t["data"], np.float32).reshape(t["shape"]) for t in inputs]
        outputs = self.session.run(None, {self.entry.input_names[0]: np.concatenate(arrays)})[0]
        rows = np.cumsum([len(a) for a in arrays])[:-1]
        return [{"name": self.entry.output_names[0], "shape": list(o.shape), "datatype": "FP32",
                 "data": o.ravel().tolist()} for o in np.split(outputs, rows)]
