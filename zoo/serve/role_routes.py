"""Role endpoints: ``/v1/models/{name}/predict`` (uploaded files → the rows of ``zoo predict``, through the role's
handlers, whatever role a plugin registers) and ``/v1/models/{name}/sample`` (sampler or decoder: a PNG grid, as
``zoo sample``); both reach the graph through its batcher."""

from __future__ import annotations

import asyncio
import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from zoo.errors import ZooError
from zoo.role_handlers import PredictRequest
from zoo.roles import GraphRole
from zoo.serve.errors import ServeError, bad_request
from zoo.serve.state import state

MAX_SAMPLES = 1024


def _role_graph(request: Request, *roles: str) -> Any:
    served = state(request).table.bundle(request.path_params["name"])
    graph = served.graph_with_role(*roles)
    if graph is None:
        raise ServeError(404, f"model {served.name!r} has no {' or '.join(roles)} graph (roles: "
                              f"{', '.join(served.bundle.manifest.roles())})")
    return graph


async def _images(request: Request) -> list[tuple[str, bytes]]:
    """The uploaded image files: multipart form files (any field name), or the raw body as one image."""
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=256, max_fields=256)
        except ServeError:
            raise
        except Exception as exc:  # the multipart parser's own errors
            raise bad_request(f"the multipart body is malformed ({exc})") from None
        files = [(value.filename or key, await value.read()) for key, value in form.multi_items()
                 if hasattr(value, "read")]
    else:
        body = await request.body()
        files = [("body", body)] if body else []
    if not files:
        raise bad_request("send one or more image files (multipart form files, or the image as the body)")
    return files


class BatchedSession:
    """What a role's predict handler gets as its ONNX Runtime session: ``run`` goes through the graph's batcher,
    so the handler's calls share batches with every other request's (the handler runs in a worker thread)."""

    def __init__(self, graph: Any, loop: asyncio.AbstractEventLoop, served: Any) -> None:
        self.graph, self.loop, self.served = graph, loop, served

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray], *_: Any) -> list[np.ndarray]:
        work = self.served.within_time(self.graph.batcher.submit(dict(feeds)))
        outputs = asyncio.run_coroutine_threadsafe(work, self.loop).result()
        return [outputs[name] for name in (output_names or self.graph.entry.output_names)]

    def get_inputs(self) -> Any:
        return self.graph.session.get_inputs()

    def get_outputs(self) -> Any:
        return self.graph.session.get_outputs()


@dataclass(frozen=True)
class ServedPredictRequest(PredictRequest):
    """A :class:`~zoo.role_handlers.PredictRequest` whose ``session()`` is the served graph's (batched)."""

    batched: Any = None

    def session(self) -> Any:
        return self.batched


async def _uploads(request: Request, folder: Path) -> list[tuple[str, Path]]:
    """The uploaded files written to ``folder`` (each in its own sub-folder, under its own base name)."""
    saved = []
    for index, (name, data) in enumerate(await _images(request)):
        path = folder / str(index) / (Path(name).name or "upload")
        path.parent.mkdir()
        path.write_bytes(data)
        saved.append((name, path))
    return saved


async def predict(request: Request) -> Response:
    """Run the bundle's predictable graph on uploaded files through its role's handlers (as ``zoo predict``):
    ``{"model", "rows": [{"input", "summary", …}]}``; ``?top=K`` alternatives per row (default 3)."""
    served = state(request)
    bundle = served.table.bundle(request.path_params["name"])
    if bundle.predictor is None:
        raise ServeError(404, f"model {bundle.name!r} has no graph `zoo predict` can use (roles: "
                              f"{', '.join(bundle.bundle.manifest.roles())})")
    entry, handlers = bundle.predictor
    try:
        top = int(request.query_params.get("top", "3"))
    except ValueError:
        raise bad_request("?top must be a whole number") from None
    if top < 1:
        raise bad_request("?top must be at least 1")
    loop = asyncio.get_running_loop()
    batched = BatchedSession(bundle.graphs[entry.name], loop, served)
    with tempfile.TemporaryDirectory(prefix="zoo-serve-") as folder:
        uploads = await _uploads(request, Path(folder))
        asked = ServedPredictRequest(bundle.bundle, entry, tuple(p for _, p in uploads), top, batched)
        try:
            rows = await loop.run_in_executor(served.handler_threads(), handlers.predict, asked)
        except ZooError as exc:
            raise bad_request(_named(str(exc), uploads)) from None
    return JSONResponse({"model": bundle.name, "rows": [_renamed(row.to_dict(), uploads) for row in rows]})


def _named(text: str, uploads: list[tuple[str, Path]]) -> str:
    """A message or value with the temporary paths replaced by the names the client sent."""
    for name, path in uploads:
        text = text.replace(str(path), name)
    return text


def _renamed(row: dict[str, Any], uploads: list[tuple[str, Path]]) -> dict[str, Any]:
    return {key: _named(value, uploads) if isinstance(value, str) else value for key, value in row.items()}


async def sample(request: Request) -> Response:
    """``{"n": 16, "seed": 0}`` → the PNG grid ``zoo sample --n 16 --seed 0`` draws (``"format": "json"``: pixels)."""
    from zoo.sampling import draw_latents
    from zoo.toolkit.images import grid, to_pixels

    graph = _role_graph(request, GraphRole.SAMPLER, GraphRole.DECODER)
    body = await request.body()
    try:
        doc = json.loads(body) if body else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"the request body is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise bad_request('send a JSON object such as {"n": 16, "seed": 0}')
    n, seed, kind = doc.get("n", 16), doc.get("seed", 0), doc.get("format", "png")
    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= MAX_SAMPLES:
        raise ServeError(422, f"'n' must be a whole number from 1 to {MAX_SAMPLES}, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2**32 - 1:
        raise ServeError(422, f"'seed' must be a whole number from 0 to {2**32 - 1}, got {seed!r}")
    if kind not in ("png", "json"):
        raise ServeError(422, f"'format' must be 'png' or 'json', got {kind!r}")
    info = graph.entry.role_info
    feeds = {info["latent_input"]: draw_latents(info, n, np.random.default_rng(seed))}
    columns = None
    if info.get("label_input"):
        columns = int(info["num_classes"])
        feeds[info["label_input"]] = (np.arange(n) % columns).astype(np.int64)
    images = (await state(request).within_time(graph.batcher.submit(feeds)))[info["output"]]
    if info.get("pixel_space", "model_input") == "model_input":
        norm = graph.entry.meta("normalization")
        images = to_pixels(images, norm["mean"], norm["std"])
    pixels = np.clip(images, 0.0, 1.0)
    if kind == "json":
        return JSONResponse({"model": request.path_params["name"], "shape": list(pixels.shape),
                             "pixels": pixels.tolist()})
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(grid(pixels, columns)).save(out, format="PNG")
    return Response(out.getvalue(), media_type="image/png")


ROUTES = [Route("/v1/models/{name}/predict", predict, methods=["POST"]),
          Route("/v1/models/{name}/sample", sample, methods=["POST"])]
