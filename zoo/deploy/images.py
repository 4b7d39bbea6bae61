"""`zoo deploy` of image roles (classifier, sampler, decoder): the graph with pre/postprocessing inside
(:mod:`zoo.bundles.pregraph`), ``deploy.json``, the programs in ``templates/``, test vectors.

Image files are decoded by zoo's one rule: python's ``run.py`` with ``decoding.py`` (a copy of
:mod:`zoo.data.decoding`, what training and ``zoo predict`` use), node's ``run.js`` and the page's ``main.js``
with one ``decode.js`` (pngjs; libjpeg-turbo in WebAssembly, the JPEG decoder Pillow uses)."""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.role_handlers import DeployPlan, DeployRequest, DeployVectors, GraphEntry
from zoo.roles import GraphRole

#: What each target's folder gets from the templates, and the packages it needs.
PROGRAMS = {"python": ["run.py"], "node": ["run.js", "decode.js", "noise.js"],
            "web": ["index.html", "main.js", "decode.js", "noise.js"]}
#: Image decoders, the same code under node and in the browser: pngjs, and libjpeg-turbo in WebAssembly (what
#: Pillow decodes JPEG with, so pixels are identical; pure-JavaScript JPEG decoders are not).
DECODERS = {"pngjs": "^7.0.0", "@cwasm/jpeg-turbo": "^0.1.3"}
NPM_PACKAGES = {"node": {"onnxruntime-node": "^1.20.0", **DECODERS}, "web": {"onnxruntime-web": "^1.20.0", **DECODERS}}
PIP_PACKAGES = ("onnxruntime>=1.20", "numpy", "pillow")
#: Real validation samples stored as test vectors.
VECTOR_SAMPLES = 16
#: Deployed outputs against ONNX Runtime in Python (other builds of ORT may sum in another order).
VECTOR_ATOL = {"probabilities": 1e-5, "top_probabilities": 1e-5, "top_indices": 0, "pixels": 1}


def image_plan(request: DeployRequest, kind: str) -> DeployPlan:
    """Write ``model.onnx`` (the pregraph) into the request's folder; the plan of the rest (``kind``: classifier
    or sampler)."""
    from zoo.bundles.pregraph import DeployGraph, build_pregraph

    graph = DeployGraph(request.graph.name, request.graph, kind)
    description = build_pregraph(request.bundle.path, graph, request.folder / "model.onnx")
    info = _info(request.bundle.manifest, graph, description)
    templates = resources.files("zoo.deploy") / "templates"
    programs = {name: (templates / name).read_text() for name in PROGRAMS[request.target]}
    if request.target == "python":  # the decoding rule itself, beside run.py
        programs["decoding.py"] = (resources.files("zoo.data") / "decoding.py").read_text()
    return DeployPlan(info=info, programs=programs, readme=_readme(request.target, info),
                      vectors=_vectors(request, graph, info), npm=NPM_PACKAGES.get(request.target, {}),
                      pip=PIP_PACKAGES)


def _info(manifest: Any, graph: Any, description: dict[str, Any]) -> dict[str, Any]:
    info = {"model": manifest.model, "family": manifest.family, "graph": graph.name, "kind": graph.kind,
            "role": graph.entry.role, "channels": int(graph.entry.meta("preprocessing")["channels"]),
            "pregraph": description, "pixel_unit": manifest.data.get("pixel_unit")}
    if graph.kind == GraphRole.CLASSIFIER:
        info["class_labels"] = description["class_labels"]
    else:
        info["noise"] = description["noise"]
    return info


def _vectors(request: DeployRequest, graph: Any, info: dict[str, Any]) -> DeployVectors:
    """Test vectors for the deployed graph: inputs and ONNX Runtime's outputs."""
    from zoo.bundles.vectors import read_test_set
    from zoo.ort import CPU, session

    bundle = request.bundle.path
    feeds = _vector_inputs(bundle, graph.entry, graph.kind, info)
    sess = session(str(request.folder / "model.onnx"), CPU)
    names = [o.name for o in sess.get_outputs()]
    outputs = dict(zip(names, sess.run(None, feeds), strict=True))
    if graph.kind == GraphRole.CLASSIFIER:  # the deployed graph agrees with the bundle's own expected outputs
        real = next(s for s in graph.entry.test_sets if "real" in s.inputs)
        _, (logits,) = read_test_set(bundle / real.dir)
        if not np.array_equal(outputs["top_indices"][:, 0], logits[:len(outputs["top_indices"])].argmax(1)):
            raise ZooError("the deployed graph disagrees with the bundle's test vectors; export the bundle again")
    return DeployVectors(feeds, outputs, {name: VECTOR_ATOL.get(name, 1e-5) for name in outputs})


def _vector_inputs(bundle: Any, entry: GraphEntry, kind: str, info: dict[str, Any]) -> dict[str, np.ndarray]:
    """Real validation samples as 8-bit NHWC images (classifier), or seeded noise (sampler)."""
    from zoo.bundles.vectors import read_test_set
    from zoo.data.crop import graph_crop, pad_to_scale
    from zoo.data.units import from_8bit_factor
    from zoo.sampling import draw_latents

    if kind == GraphRole.CLASSIFIER:
        norm = entry.meta("normalization")
        real = next(s for s in entry.test_sets if "real" in s.inputs)
        (x, *_), _ = read_test_set(bundle / real.dir)
        x = x[:VECTOR_SAMPLES]
        mean = np.asarray(norm["mean"], np.float32)[None, :, None, None]
        std = np.asarray(norm["std"], np.float32)[None, :, None, None]
        raw = (x * std + mean) / np.float32(norm["scale"])
        levels = np.clip(np.round(raw / np.float32(from_8bit_factor(norm))), 0, 255).astype(np.uint8)
        crop = graph_crop(entry.metadata)
        nhwc = levels.transpose(0, 2, 3, 1).copy()
        # a graph that crops gets each sample edge-padded to the scale size: its crop gives the sample back
        return {"image": nhwc if crop is None else pad_to_scale(nhwc, crop)}
    noise = info["noise"]
    feeds = {noise["input"]: draw_latents(entry.role_info, VECTOR_SAMPLES, np.random.default_rng(0))}
    if noise.get("label_input"):
        feeds[noise["label_input"]] = (np.arange(VECTOR_SAMPLES) % noise["num_classes"]).astype(np.int64)
    return feeds


#: How images become the graph's uint8 input: zoo's one rule (zoo/data/decoding.py), stated for deployers.
_IMAGES = """## Images
PNG and JPEG files are decoded by zoo's one rule, the same as in training and `zoo predict` (`--pixels IMAGE`, or
`?pixels=IMAGE` on the page, prints what the graph receives): 16-bit samples keep their high byte (`value >> 8`);
1/2/4-bit grey is scaled to 0-255; palettes are looked up (with their transparency); CMYK becomes RGB as
(255 - C)(255 - K)/255; alpha is composited over black, c*a/255 rounded; one channel is ITU-R 601-2 luma,
(19595 R + 38470 G + 7471 B + 32768) >> 16, three channels RGB. EXIF orientation and colour profiles are not
applied. Python decodes with `decoding.py` (Pillow), node and the browser with `decode.js` (pngjs, and libjpeg-turbo
in WebAssembly: the JPEG decoder Pillow uses).
"""


def _crop_words(info: dict[str, Any]) -> str:
    """The README's line on the evaluation transform, when the graph crops ("" when it squashes)."""
    resize = str(info["pregraph"].get("resize", ""))
    if "centre" not in resize:
        return ""
    return (f"This model was trained with the evaluation transform (not squashed): the graph resizes {resize}. "
            "Feed whole images; do not crop or resize them first.\n")


def _readme(target: str, info: dict[str, Any]) -> str:
    from zoo.bundles.runtime_checks import REQUIREMENTS

    kind = info["kind"]
    usage = {
        "python": ("pip install -r requirements.txt", "python run.py IMAGE.png" if kind == GraphRole.CLASSIFIER
                   else "python run.py --samples 16 --seed 0", "python run.py --check"),
        "node": ("ONNXRUNTIME_NODE_INSTALL=skip npm install   # the CPU build ships in the package; no CUDA download",
                 "node run.js IMAGE.png" if kind == GraphRole.CLASSIFIER else "node run.js --samples 16 --seed 0",
                 "node run.js --check"),
        "web": ("npm install   # onnxruntime-web and the image decoders, served from node_modules (no CDN)",
                "python -m http.server 8000   # then open http://127.0.0.1:8000/ (fetch and wasm need http)",
                "open http://127.0.0.1:8000/?check=1"),
    }[target]
    io = "\n".join(f"- `{k}`: {v}" for k, v in {**info["pregraph"]["inputs"], **info["pregraph"]["outputs"]}.items())
    extra = ""
    if kind == "sampler":
        extra = f"\nNoise: {info['noise']['distribution']}, shape {info['noise']['shape']} (`deploy.json`).\n"
    return f"""# {info['model']} ({info['kind']}) for {target}

`model.onnx` has the preprocessing and postprocessing inside: no code to write around it.

```
{usage[0]}
{usage[1]}
{usage[2]}   # test vectors in vectors/ (raw binary, vectors.json says dtype and shape)
```

## Graph
{io}
{extra}
{_IMAGES if kind == GraphRole.CLASSIFIER else ""}
Resizing inside the graph is ONNX `Resize` (linear, antialias=1, exclude_outside=1, half-pixel): Pillow's
antialiased bilinear resize that zoo trains with, to within one grey level (rounding ties).
{_crop_words(info) if kind == GraphRole.CLASSIFIER else ""}
## Other runtimes
{chr(10).join(f"- {name}: {need}" for name, need in REQUIREMENTS.items())}
"""
