"""Open Inference Protocol v2 (KServe v2) routes: health, server and model metadata, readiness, infer."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

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


class Infer:
    """``POST …/infer`` as a bare ASGI app (Starlette routes to it without a Request or Response object: this is
    the route called most, and those objects were a good part of its Python time). Errors are raised as
    :class:`ServeError` and answered by the app's handlers like any other route's."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = scope["path_params"]
        if params.get("version", VERSION) != VERSION:
            raise not_found(f"model {params['model']!r} has only version {VERSION}, not {params['version']!r}")
        served = scope["app"].state.zoo
        graph = served.table.graph(params["model"])
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        header_length = next((value.decode("latin-1") for key, value in scope["headers"]
                              if key == HEADER_LENGTH_KEY), None)
        doc, binary = split_body(b"".join(chunks), header_length)
        decoded = decode_request(doc, binary, graph.entry)
        outputs = await graph.batcher.submit(decoded.feeds, served.options.timeout_s)
        content, json_length = encode_response(graph.model, decoded, outputs)
        headers = [(b"content-length", str(len(content)).encode())]
        if json_length is None:
            headers.append((b"content-type", b"application/json"))
        else:
            headers += [(b"content-type", b"application/octet-stream"),
                        (HEADER_LENGTH_KEY, str(json_length).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})


infer = Infer()
HEADER_LENGTH_KEY = HEADER_LENGTH.encode()


ROUTES = [  # infer first: the router tries routes in order, and infer is the one called most
    Route("/v2/models/{model}/infer", infer, methods=["POST"]),
    Route("/v2/health/live", live), Route("/v2/health/ready", ready), Route("/v2", server_metadata),
    Route("/v2/models/{model}", model_metadata), Route("/v2/models/{model}/versions/{version}", model_metadata),
    Route("/v2/models/{model}/ready", model_ready), Route("/v2/models/{model}/versions/{version}/ready", model_ready),
    Route("/v2/models/{model}/versions/{version}/infer", infer, methods=["POST"]),
]

__all__ = ["ROUTES", "ServeError"]
