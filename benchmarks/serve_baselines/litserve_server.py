"""LitServe serving a bundle's first graph for benchmarks/serve_load.py: ONNX Runtime in ``setup``, LitServe's own
dynamic batching (``max_batch_size``, ``batch_timeout``), the same Open Inference Protocol JSON body. Loopback only.

    python benchmarks/serve_baselines/litserve_server.py BUNDLE --port N [--max-batch 64] [--batch-timeout 0.002]
"""

from __future__ import annotations

import argparse

import litserve as ls
import numpy as np
import onnxruntime as ort

from zoo.bundles import Bundle


class BundleAPI(ls.LitAPI):
    """One ORT session; requests decoded to arrays, stacked into one batch, split back."""

    def __init__(self, bundle: str, max_batch_size: int, batch_timeout: float) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.bundle_dir = bundle

    def setup(self, device: str) -> None:
        bundle = Bundle.open(self.bundle_dir)
        self.entry = next(iter(bundle.manifest.graphs.values()))
        self.session = ort.InferenceSession(str(bundle.graph_path(self.entry)), providers=["CPUExecutionProvider"])

    def decode_request(self, request: dict) -> np.ndarray:
        tensor = request["inputs"][0]
        return np.asarray(tensor["data"], np.float32).reshape(tensor["shape"])

    def batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        self.rows = [len(x) for x in inputs]
        return np.concatenate(inputs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.entry.input_names[0]: x})[0]

    def unbatch(self, output: np.ndarray) -> list[np.ndarray]:
        return list(np.split(output, np.cumsum(self.rows)[:-1]))

    def encode_response(self, output: np.ndarray) -> dict:
        return {"outputs": [{"name": self.entry.output_names[0], "shape": list(output.shape), "datatype": "FP32",
                             "data": output.ravel().tolist()}]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("bundle")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--batch-timeout", type=float, default=0.002)
    args = parser.parse_args()
    api = BundleAPI(args.bundle, args.max_batch, args.batch_timeout)
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1)
    server.run(host="127.0.0.1", port=args.port, generate_client_file=False)
