"""`zoo deploy`: a bundle as a ready-to-run folder for node, the web or plain Python.

The folder holds ``model.onnx`` (the graph with pre- and postprocessing inside, see
:mod:`zoo.bundles.pregraph`), ``deploy.json`` (labels, channels, noise: plain JSON), a small program
for the target's ONNX Runtime, its README, and ``vectors/`` (test vectors as raw little-endian binary
described by ``vectors.json``, readable without protobuf). No preprocessing code for the deployer to write.
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.roles import GraphRole

TARGETS = ("node", "web", "python")
#: What each target's folder gets from the templates, and the packages it needs.
PROGRAMS = {"python": ["run.py"], "node": ["run.js"], "web": ["index.html", "main.js"]}
NPM_PACKAGES = {"node": {"onnxruntime-node": "^1.20.0", "pngjs": "^7.0.0"}, "web": {"onnxruntime-web": "^1.20.0"}}
#: Real validation samples stored as test vectors.
VECTOR_SAMPLES = 16
#: Deployed outputs against ONNX Runtime in Python (other builds of ORT may sum in another order).
VECTOR_ATOL = {"probabilities": 1e-5, "top_probabilities": 1e-5, "top_indices": 0, "pixels": 1}


def deploy_bundle(bundle_dir: str | Path, target: str, out: str | Path | None = None, *, force: bool = False) -> Path:
    """Write the deployment folder for ``target``; returns its path."""
    from zoo.bundles.manifest import Bundle
    from zoo.bundles.pregraph import build_pregraph, deploy_graph

    if target not in TARGETS:
        raise ZooError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    opened = Bundle.open(bundle_dir)
    bundle, manifest = opened.path, opened.manifest
    folder = Path(out) if out else Path(f"{bundle.name}-{target}")
    if folder.exists() and not force:
        raise ZooError(f"{folder} already exists; pass --force to replace it, or --out another folder")
    graph = deploy_graph(manifest)  # before writing anything: a bundle with nothing to deploy leaves no folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    description = build_pregraph(bundle, graph, folder / "model.onnx")
    info = _info(manifest, graph, description)
    (folder / "deploy.json").write_text(json.dumps(info, indent=2))
    _write_vectors(folder, bundle, graph, info)
    templates = resources.files("zoo.deploy") / "templates"
    for name in PROGRAMS[target]:
        (folder / name).write_text((templates / name).read_text())
    if target in NPM_PACKAGES:
        package = {"name": f"zoo-{manifest.model}-{target}", "version": "1.0.0", "private": True,
                   "dependencies": NPM_PACKAGES[target]}
        (folder / "package.json").write_text(json.dumps(package, indent=2))
    if target == "python":
        (folder / "requirements.txt").write_text("onnxruntime>=1.20\nnumpy\npillow\n")
    (folder / "README.md").write_text(_readme(target, info))
    return folder


def _info(manifest: Any, graph: Any, description: dict[str, Any]) -> dict[str, Any]:
    info = {"model": manifest.model, "family": manifest.family, "graph": graph.name, "kind": graph.kind,
            "role": graph.entry.role, "channels": int(graph.entry.meta("preprocessing")["channels"]),
            "pregraph": description, "pixel_unit": manifest.data.get("pixel_unit")}
    if graph.kind == GraphRole.CLASSIFIER:
        info["class_labels"] = description["class_labels"]
    else:
        info["noise"] = description["noise"]
    return info


def _write_vectors(folder: Path, bundle: Path, graph: Any, info: dict[str, Any]) -> None:
    """Test vectors for the deployed graph: inputs and ONNX Runtime's outputs, as raw binary + JSON."""
    from zoo.bundles.vectors import read_test_set
    from zoo.ort import CPU, session

    feeds = _vector_inputs(bundle, graph, info)
    sess = session(str(folder / "model.onnx"), CPU)
    names = [o.name for o in sess.get_outputs()]
    outputs = dict(zip(names, sess.run(None, feeds), strict=True))
    if graph.kind == GraphRole.CLASSIFIER:  # the deployed graph agrees with the bundle's own expected outputs
        real = next(s for s in graph.entry.test_sets if "real" in s.inputs)
        _, (logits,) = read_test_set(bundle / real.dir)
        if not np.array_equal(outputs["top_indices"][:, 0], logits[:len(outputs["top_indices"])].argmax(1)):
            raise ZooError("the deployed graph disagrees with the bundle's test vectors; export the bundle again")
    (folder / "vectors").mkdir()
    table: dict[str, Any] = {"inputs": {}, "outputs": {}, "layout": "raw little-endian, C order"}
    for kind, arrays in (("inputs", feeds), ("outputs", outputs)):
        for name, array in arrays.items():
            file = f"{kind[:-1]}_{name}.bin"
            np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tofile(folder / "vectors" / file)
            table[kind][name] = {"file": file, "dtype": str(array.dtype), "shape": list(array.shape),
                                 **({"atol": VECTOR_ATOL.get(name, 1e-5)} if kind == "outputs" else {})}
    (folder / "vectors" / "vectors.json").write_text(json.dumps(table, indent=2))


def _vector_inputs(bundle: Path, graph: Any, info: dict[str, Any]) -> dict[str, np.ndarray]:
    """Real validation samples as 8-bit NHWC images (classifier), or seeded noise (sampler)."""
    from zoo.bundles.vectors import read_test_set
    from zoo.data.units import from_8bit_factor
    from zoo.sampling import draw_latents

    if graph.kind == GraphRole.CLASSIFIER:
        norm = graph.entry.meta("normalization")
        real = next(s for s in graph.entry.test_sets if "real" in s.inputs)
        (x, *_), _ = read_test_set(bundle / real.dir)
        x = x[:VECTOR_SAMPLES]
        mean = np.asarray(norm["mean"], np.float32)[None, :, None, None]
        std = np.asarray(norm["std"], np.float32)[None, :, None, None]
        raw = (x * std + mean) / np.float32(norm["scale"])
        levels = np.clip(np.round(raw / np.float32(from_8bit_factor(norm))), 0, 255).astype(np.uint8)
        return {"image": levels.transpose(0, 2, 3, 1).copy()}
    noise = info["noise"]
    feeds = {noise["input"]: draw_latents(graph.entry.role_info, VECTOR_SAMPLES, np.random.default_rng(0))}
    if noise.get("label_input"):
        feeds[noise["label_input"]] = (np.arange(VECTOR_SAMPLES) % noise["num_classes"]).astype(np.int64)
    return feeds


def _readme(target: str, info: dict[str, Any]) -> str:
    from zoo.bundles.runtime_checks import REQUIREMENTS

    kind = info["kind"]
    usage = {
        "python": ("pip install -r requirements.txt", "python run.py IMAGE.png" if kind == GraphRole.CLASSIFIER
                   else "python run.py --samples 16", "python run.py --check"),
        "node": ("ONNXRUNTIME_NODE_INSTALL=skip npm install   # the CPU build ships in the package; no CUDA download",
                 "node run.js IMAGE.png" if kind == GraphRole.CLASSIFIER else "node run.js --samples 16",
                 "node run.js --check"),
        "web": ("npm install   # onnxruntime-web's files, served from node_modules (no CDN)",
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
Resizing inside the graph is ONNX `Resize` (linear, antialias=1, exclude_outside=1, half-pixel): Pillow's
antialiased bilinear resize that zoo trains with, to within one grey level (rounding ties).

## Other runtimes
{chr(10).join(f"- {name}: {need}" for name, need in REQUIREMENTS.items())}
"""
