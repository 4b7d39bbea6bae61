"""Role endpoints: ``/v1/models/{name}/predict`` (classifier: image files → top-k, as ``zoo predict``) and
``/v1/models/{name}/sample`` (sampler or decoder: a PNG grid, as ``zoo sample``), through each graph's batcher."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from zoo.errors import ZooError
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


async def predict(request: Request) -> Response:
    """Classify uploaded images; ``?top=K`` classes per image (default 3, as ``zoo predict``)."""
    from zoo.predict import preprocess

    graph = _role_graph(request, GraphRole.CLASSIFIER)
    entry = graph.entry
    info = entry.role_info
    if info.get("input_kind", "image") != "image" or len(entry.inputs) != 1:
        raise ServeError(404, f"model {request.path_params['name']!r}'s classifier does not take images")
    try:
        top = int(request.query_params.get("top", "3"))
    except ValueError:
        raise bad_request("?top must be a whole number") from None
    if top < 1:
        raise bad_request("?top must be at least 1")
    files = await _images(request)
    batch = []
    for name, data in files:
        stream = io.BytesIO(data)
        try:
            batch.append(preprocess(stream, entry.metadata))  # type: ignore[arg-type]  # Pillow reads file objects
        except ZooError as exc:
            raise bad_request(str(exc).replace(str(stream), repr(name))) from None
    outputs = await state(request).within_time(graph.batcher.submit({entry.input_names[0]: np.concatenate(batch)}))
    logits = outputs[info["output"]].astype(np.float64)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    labels = list(info["class_names"])
    results = []
    for (name, _), p in zip(files, probabilities, strict=True):
        order = np.argsort(-p, kind="stable")[:top]
        results.append({"image": name, "class": labels[int(p.argmax())], "index": int(p.argmax()),
                        "top": [{"class": labels[i], "probability": float(p[i])} for i in order],
                        "probabilities": {label: float(v) for label, v in zip(labels, p, strict=True)}})
    return JSONResponse({"model": request.path_params["name"], "predictions": results})


async def sample(request: Request) -> Response:
    """``{"n": 16, "seed": 0}`` → the PNG grid ``zoo sample --n 16 --seed 0`` draws (``"format": "json"``: pixels)."""
    from zoo.pictures import grid, to_pixels
    from zoo.sampling import draw_latents

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
