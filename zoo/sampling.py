"""``zoo sample``: images from a bundle's generator or decoder graph, with ONNX Runtime alone.

Deliberately free of torch: numpy, ONNX Runtime and Pillow are all a deployment needs. A graph
that can be sampled declares its role (``sampler`` or ``decoder``) and what the role needs (the latent
input's name, size and distribution, the image output, the label input and class count of conditional
models): see :func:`zoo.family.sampler_info`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from zoo.bundles.manifest import Bundle, GraphEntry
from zoo.errors import ZooError
from zoo.roles import GraphRole

MAX_SAMPLES = 10_000


def sample_bundle(bundle_dir: str | Path, *, n: int = 64, seed: int = 0, out: str | Path | None = None,
                  force: bool = False) -> Path:
    """Draw ``n`` images from the bundle's sampler graph on the CPU provider and save them as a PNG grid.

    Conditional models cycle through the classes, one class per column. Returns the PNG's path.
    """
    from zoo.ort import CPU, session
    from zoo.toolkit.images import save_grid, to_pixels

    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= MAX_SAMPLES:
        raise ZooError(f"--n must be a whole number from 1 to {MAX_SAMPLES}, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2**32 - 1:
        raise ZooError(f"--seed must be a whole number from 0 to {2**32 - 1}, got {seed!r}")
    if out is not None and Path(out).is_dir():
        raise ZooError(f"--out {out} is a folder; give a .png file name")
    bundle = Bundle.open(bundle_dir)
    graph = sampler_graph(bundle)
    target = Path(out) if out else Path(f"{bundle.path.name}-samples-seed{seed}.png")
    if target.suffix.lower() != ".png":
        raise ZooError(f"--out {target} must end in .png")
    if target.exists() and not force:
        raise ZooError(f"{target} already exists; pass --force to replace it, or --out another file")
    info = graph.role_info
    feeds: dict[str, np.ndarray] = {info["latent_input"]: draw_latents(info, n, np.random.default_rng(seed))}
    columns = None
    if info.get("label_input"):
        classes = int(info["num_classes"])
        feeds[info["label_input"]] = (np.arange(n) % classes).astype(np.int64)
        columns = classes
    images = session(str(bundle.graph_path(graph)), CPU).run([info["output"]], feeds)[0]
    if info.get("pixel_space", "model_input") == "model_input":
        norm = graph.meta("normalization")
        images = to_pixels(images, norm["mean"], norm["std"])
    target.parent.mkdir(parents=True, exist_ok=True)
    return save_grid(np.clip(images, 0.0, 1.0), target, columns)


def sampler_graph(bundle: Bundle) -> GraphEntry:
    """The bundle's fp32 sampler graph, else its decoder; a one-line ZooError when it has neither."""
    graphs = bundle.manifest.with_role(GraphRole.SAMPLER) or bundle.manifest.with_role(GraphRole.DECODER)
    if not graphs:
        raise ZooError(f"{bundle.path} holds no sampler or decoder graph to draw from (family "
                       f"{bundle.manifest.family!r}; graph roles: {', '.join(bundle.manifest.roles())}); "
                       "`zoo sample` needs one")
    return graphs[0]


def draw_latents(info: dict[str, Any], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` latent vectors from the distribution a sampler or decoder declares."""
    shape = (n, int(info["latent_dim"]))
    if info.get("distribution", "standard_normal") == "uniform":
        return rng.uniform(-1.0, 1.0, shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)
