"""The naive baseline of benchmarks/serve_load.py: FastAPI, one ONNX Runtime session, one run per request, no
batching (a sync endpoint, so FastAPI runs each in its thread pool). Loopback only.

    python benchmarks/serve_baselines/naive.py BUNDLE --port N
"""

from __future__ import annotations

import argparse

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI

from zoo.bundles import Bundle

parser = argparse.ArgumentParser()
parser.add_argument("bundle")
parser.add_argument("--port", type=int, required=True)
args = parser.parse_args()
bundle = Bundle.open(args.bundle)
entry = next(iter(bundle.manifest.graphs.values()))
session = ort.InferenceSession(str(bundle.graph_path(entry)), providers=["CPUExecutionProvider"])
app = FastAPI()


@app.post("/v2/models/{name}/infer")
def infer(name: str, body: dict) -> dict:
    feeds = {i["name"]: np.asarray(i["data"], np.float32).reshape(i["shape"]) for i in body["inputs"]}
    outputs = session.run(None, feeds)
    return {"model_name": name, "outputs": [{"name": o.name, "shape": list(v.shape), "datatype": "FP32",
                                             "data": v.ravel().tolist()} for o, v in zip(entry.outputs, outputs,
                                                                                         strict=True)]}


uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
