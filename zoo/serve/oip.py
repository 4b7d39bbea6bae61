"""Open Inference Protocol v2 (KServe v2) routes: health, server and model metadata, readiness, infer."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from zoo.serve.errors import ServeError, not_found
from zoo.serve.state import state
from zoo.serve.tensors import HEADER_LENGTH, decode_request, encode_response, split_body, tensor_metadata
from zoo.version import __version__

VERSION = "1"


def _check_version(request: Request) -> None:
    version = request.path_params.get("version")
    if version is not None and version != VERSION:
        raise not_found(f"model {request.path_params['model']!r} has only version {VERSION}, not {version!r}")


async def live(request: Request) -> Response:
    return JSONResponse({"live": True})


async def ready(request: Request) -> Response:
    serving = state(request).ready
    return JSONResponse({"ready": serving}, status_code=200 if serving else 503)


async def server_metadata(request: Request) -> Response:
    return JSONResponse({"name": "zoo", "version": __version__, "extensions": ["binary_tensor_data"]})


async def model_ready(request: Request) -> Response:
    _check_version(request)
    state(request).table.graph(request.path_params["model"])
    return JSONResponse({"name": request.path_params["model"], "ready": state(request).ready},
                        status_code=200 if state(request).ready else 503)


async def model_metadata(request: Request) -> Response:
    _check_version(request)
    graph = state(request).table.graph(request.path_params["model"])
    entry = graph.entry
    doc: dict[str, Any] = {"name": graph.model, "versions": [VERSION], "platform": "onnxruntime_onnx",
                           "inputs": tensor_metadata(entry.inputs), "outputs": tensor_metadata(entry.outputs),
                           "parameters": {"graph": entry.name, "variant": entry.variant, "role": entry.role,
                                          "batched": graph.batchable}}
    return JSONResponse(doc)


async def infer(request: Request) -> Response:
    _check_version(request)
    served = state(request)
    graph = served.table.graph(request.path_params["model"])
    body = await request.body()
    doc, binary = split_body(body, request.headers.get(HEADER_LENGTH))
    decoded = decode_request(doc, binary, graph.entry)
    outputs = await graph.batcher.submit(decoded.feeds, served.options.timeout_s)
    content, header_length = encode_response(graph.model, decoded, outputs)
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(content, media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(header_length)})


ROUTES = [  # infer first: the router tries routes in order, and infer is the one called most
    Route("/v2/models/{model}/infer", infer, methods=["POST"]),
    Route("/v2/health/live", live), Route("/v2/health/ready", ready), Route("/v2", server_metadata),
    Route("/v2/models/{model}", model_metadata), Route("/v2/models/{model}/versions/{version}", model_metadata),
    Route("/v2/models/{model}/ready", model_ready), Route("/v2/models/{model}/versions/{version}/ready", model_ready),
    Route("/v2/models/{model}/versions/{version}/infer", infer, methods=["POST"]),
]

__all__ = ["ROUTES", "ServeError"]
