"""``zoo sample``: images from a bundle's generator or decoder graph, with ONNX Runtime alone.

Deliberately free of torch: numpy, ONNX Runtime and Pillow are all a deployment needs. A graph
that can be sampled declares it in its metadata (``SAMPLER_KEY``: the noise input's name, the
latent size and, for conditional models, the label input and class count).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError

SAMPLER_KEY = "zoo_sampler"
MAX_SAMPLES = 10_000


def sampler_metadata(*, noise_input: str, latent_dim: int, label_input: str | None = None,
                     num_classes: int = 0) -> dict[str, str]:
    """The graph metadata that makes a graph drawable by ``zoo sample``."""
    return {SAMPLER_KEY: json.dumps({"noise_input": noise_input, "latent_dim": int(latent_dim),
                                     "label_input": label_input, "num_classes": int(num_classes)})}


def sample_bundle(bundle_dir: str | Path, *, n: int = 64, seed: int = 0, out: str | Path | None = None,
                  force: bool = False) -> Path:
    """Draw ``n`` images from the bundle's sampler graph on the CPU provider and save them as a PNG grid.

    Conditional models cycle through the classes, one class per column. Returns the PNG's path.
    """
    from zoo.bundles.bundle import MANIFEST, check_files
    from zoo.engine.runs import read_json
    from zoo.pictures import save_grid, to_pixels
    from zoo.runtime import CPU, session

    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= MAX_SAMPLES:
        raise ZooError(f"--n must be a whole number from 1 to {MAX_SAMPLES}, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2**32 - 1:
        raise ZooError(f"--seed must be a whole number from 0 to {2**32 - 1}, got {seed!r}")
    bundle = Path(bundle_dir)
    if not (bundle / MANIFEST).is_file():
        raise ZooError(f"{bundle} is not a zoo bundle (no {MANIFEST}); pass the folder that `zoo export` printed")
    target = Path(out) if out else Path(f"{bundle.name}-samples-seed{seed}.png")
    if target.is_dir():
        raise ZooError(f"--out {target} is a folder; give a .png file name")
    if target.suffix.lower() != ".png":
        raise ZooError(f"--out {target} must end in .png")
    if target.exists() and not force:
        raise ZooError(f"{target} already exists; pass --force to replace it, or --out another file")
    manifest = read_json(bundle / MANIFEST, "bundle manifest")
    check_files(bundle, manifest)
    graph = _sampler_graph(bundle, manifest)
    sampler = json.loads(graph["metadata"][SAMPLER_KEY])
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {
        sampler["noise_input"]: rng.standard_normal((n, sampler["latent_dim"])).astype(np.float32)}
    columns = None
    if sampler.get("label_input"):
        classes = int(sampler["num_classes"])
        feeds[sampler["label_input"]] = (np.arange(n) % classes).astype(np.int64)
        columns = classes
    images = session(str(bundle / graph["file"]), CPU).run(None, feeds)[0]
    norm = json.loads(graph["metadata"]["normalization"])
    target.parent.mkdir(parents=True, exist_ok=True)
    return save_grid(to_pixels(images, norm["mean"], norm["std"]), target, columns)


def _sampler_graph(bundle: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    for graph in manifest.get("graphs", {}).values():
        if SAMPLER_KEY in graph.get("metadata", {}):
            return graph
    raise ZooError(f"{bundle} is a {manifest.get('family', 'unknown')!r} bundle with no generator or decoder "
                   "graph to draw from; zoo sample works on GAN and VAE bundles")
