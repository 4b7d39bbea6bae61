"""The ASGI application one worker runs: routes, the limits and logging around every request, startup and reload.

:func:`create_app` reads the options the supervisor left in the environment (uvicorn calls it in each worker
process), loads every bundle before the worker answers, and with ``--reload`` polls the bundles for a re-export.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zoo.serve import chat, completions, metrics, oip, role_routes
from zoo.serve.errors import ServeError
from zoo.serve.models import ModelTable
from zoo.serve.options import ServeOptions
from zoo.serve.state import ServerState, within

log = logging.getLogger("zoo.serve")
access = logging.getLogger("zoo.serve.access")


def route_label(path: str) -> tuple[str, str | None]:
    """A request's route for metrics and logs (a bounded set of names) and the model it names, if any."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["v2", "models"] and len(parts) >= 3:
        return ("infer" if parts[-1] == "infer" else "ready" if parts[-1] == "ready" else "metadata"), parts[2]
    if parts[:2] == ["v1", "models"] and len(parts) == 4:
        return parts[3] if parts[3] in ("predict", "sample") else "other", parts[2]
    if parts[:2] == ["v1", "completions"]:
        return "completions", None
    if parts[:3] == ["v1", "chat", "completions"]:
        return "chat", None
    if parts[:2] == ["v2", "health"]:
        return "health", None
    return {"metrics": "metrics", "v2": "server", "v1/models": "models"}.get("/".join(parts), "other"), None


def error_response(path: str, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error in the protocol of the route: OpenAI's ``{"error": {"message", …}}`` under ``/v1/completions``,
    the Open Inference Protocol's ``{"error": "…"}`` elsewhere."""
    if path.startswith(("/v1/completions", "/v1/chat/")):
        body: Any = {"error": {"message": message, "type": "invalid_request_error" if status < 500 else "server_error",
                               "code": status}}
    else:
        body = {"error": message}
    return JSONResponse(body, status_code=status, headers=headers)


class Guard:
    """ASGI middleware: the body size (413) and body read time (408) limits, metrics and one JSON log line
    per request."""

    def __init__(self, app: ASGIApp, options: ServeOptions) -> None:
        self.app = app
        self.options = options

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        route, model = route_label(path)
        status = {"code": 500, "bytes": 0, "body": 0}
        limit = self.options.max_body_bytes

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            elif message["type"] == "http.response.body":
                status["bytes"] += len(message.get("body", b""))
            await send(message)

        body_done = False

        async def receiving() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                message = await within(receive(), self.options.timeout_s)
            except asyncio.TimeoutError:
                raise ServeError(408, f"the request body did not arrive within {self.options.timeout_s:g} s") from None
            if message["type"] == "http.request":
                status["body"] += len(message.get("body", b""))
                if status["body"] > limit:
                    raise ServeError(413, f"the request body is over --max-body-mb {self.options.max_body_mb:g}")
                body_done = not message.get("more_body", False)
            return message

        try:
            length = int(dict(scope["headers"]).get(b"content-length", b"0"))
        except ValueError:
            length = 0
        try:
            if length > limit:
                response = error_response(path, 413, f"the request body ({length} bytes) is over --max-body-mb "
                                                     f"{self.options.max_body_mb:g}; send less per request")
                await response(scope, receive, sending)
            else:
                await self.app(scope, receiving, sending)
        finally:
            elapsed = time.perf_counter() - started
            metrics.REQUESTS.labels(route, str(status["code"])).inc()
            metrics.LATENCY.labels(route).observe(elapsed)
            access.info(orjson.dumps({"ts": round(time.time(), 3), "worker": os.getpid(), "method": scope["method"],
                                    "path": path, "route": route, "model": model, "status": status["code"],
                                    "ms": round(elapsed * 1000, 2), "in_bytes": status["body"],
                                    "out_bytes": status["bytes"]}).decode())


async def serve_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServeError)
    if exc.status == 503:
        route, model = route_label(request.url.path)
        metrics.REJECTED.labels(model or route).inc()
    return error_response(request.url.path, exc.status, exc.message, exc.headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: f"no route {request.url.path}; see /v2, /v2/models/NAME, /v1/completions",
               405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
    return error_response(request.url.path, exc.status_code, message, dict(exc.headers or {}))


async def internal_error(request: Request, exc: Exception) -> Response:
    log.exception("internal error on %s", request.url.path)
    return error_response(request.url.path, 500, f"internal error: {type(exc).__name__}: {exc}")


async def prometheus(request: Request) -> Response:
    content, kind = metrics.render()
    return Response(content, media_type=kind)


def _configure_logging() -> None:
    # no caller lookup (file, line) for each record: the access line does not print it, and looking it up walked
    # the stack once per request (the logging HOWTO's "Optimization" advice)
    logging._srcfile = None  # type: ignore[attr-defined]
    if not access.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("zoo serve [%(process)d] %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def create_app(options: ServeOptions | None = None) -> Starlette:
    """The worker's application for ``options`` (by default the ones ``zoo serve`` put in the environment)."""
    options = options or ServeOptions.from_env()
    _configure_logging()
    served = ServerState(options, ModelTable(options))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.get_running_loop().run_in_executor(None, served.table.load)
        poller = asyncio.create_task(_poll(served)) if options.reload else None
        served.ready = True
        yield
        served.ready = False
        if poller is not None:
            poller.cancel()

    routes = [*oip.ROUTES, *role_routes.ROUTES, *completions.ROUTES, *chat.ROUTES, Route("/metrics", prometheus)]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={ServeError: serve_error, HTTPException: http_error,
                                        Exception: internal_error})
    app.state.zoo = served
    app.add_middleware(Guard, options=options)
    return app


async def _poll(served: ServerState) -> None:
    while True:
        await asyncio.sleep(served.options.reload_interval_s)
        try:
            await served.table.poll()
        except Exception:  # never let a reload problem stop the worker
            log.exception("reload check failed")
