"""`zoo deploy`: a bundle as a ready-to-run folder for node, the web or plain Python (or ``zoo serve``).

The graph to deploy is picked by role (:func:`zoo.role_handlers.graph_for`) and its role's handlers
(:meth:`zoo.role_handlers.RoleHandlers.deploy`) write ``model.onnx`` (the graph with pre- and postprocessing
inside) and say what else the folder holds (:class:`zoo.role_handlers.DeployPlan`); this module writes
``deploy.json``, the program for the target, its README, the package lists and ``vectors/`` (test vectors as raw
little-endian binary described by ``vectors.json``, readable without protobuf). No preprocessing code for the
deployer to write. The folder is staged and published like a bundle, and ``--force`` never replaces anything but
a deploy folder, nor the input (:mod:`zoo.deploy.folder`). Image roles decode files by zoo's one rule
(:mod:`zoo.deploy.images`: ``decoding.py`` for python, ``decode.js`` for node and the browser). ``--target serve``
is :mod:`zoo.deploy.serve_folder`: the bundle behind ``zoo serve``, with ``run.sh`` and a systemd unit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from zoo.deploy.folder import MARKER, MARKER_KEY, check_out, staged
from zoo.errors import ZooError
from zoo.role_handlers import TARGETS, DeployPlan, DeployRequest, DeployVectors


def deploy_bundle(bundle_dir: str | Path, target: str, out: str | Path | None = None, *, force: bool = False) -> Path:
    """Write the deployment folder for ``target``; returns its path."""
    from zoo.bundles.manifest import Bundle
    from zoo.role_handlers import graph_for

    if target not in (*TARGETS, "serve"):
        raise ZooError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}, serve")
    opened = Bundle.open(bundle_dir)
    folder = Path(out) if out else Path(f"{opened.path.name}-{target}")
    check_out(opened.path, folder, force)
    if target == "serve":  # zoo serve over a copy of the bundle: any role, no role handler asked
        from zoo.deploy.serve_folder import write_marker, write_serve_folder

        with staged(folder, force) as staging:
            write_marker(staging, write_serve_folder(opened, staging, folder), MARKER_KEY)
        return folder
    graph, handlers = graph_for(opened, "deploy")  # before writing anything: nothing to deploy leaves no folder
    with staged(folder, force) as staging:
        plan = handlers.deploy(DeployRequest(opened, graph, target, staging))
        write_plan(staging, plan, f"zoo-{opened.manifest.model}-{target}", target)
    return folder


def write_plan(folder: Path, plan: DeployPlan, package_name: str, target: str) -> None:
    """Write what a role's deploy plan lists: ``deploy.json``, programs, vectors, package lists, README."""
    (folder / MARKER).write_text(json.dumps({**plan.info, MARKER_KEY: 1}, indent=2))  # 1: this layout
    if plan.vectors is not None:
        _write_vectors(folder, plan.vectors)
    for name, text in plan.programs.items():
        (folder / name).write_text(text)
    if plan.npm and target in ("node", "web"):
        package = {"name": package_name, "version": "1.0.0", "private": True, "dependencies": dict(plan.npm)}
        (folder / "package.json").write_text(json.dumps(package, indent=2))
    if plan.pip and target == "python":
        (folder / "requirements.txt").write_text("".join(f"{line}\n" for line in plan.pip))
    (folder / "README.md").write_text(plan.readme)


def _write_vectors(folder: Path, vectors: DeployVectors) -> None:
    """Test vectors as raw little-endian binary, described by ``vectors/vectors.json``."""
    (folder / "vectors").mkdir()
    table: dict[str, dict] = {"inputs": {}, "outputs": {}, "layout": "raw little-endian, C order"}
    for kind, arrays in (("inputs", vectors.inputs), ("outputs", vectors.outputs)):
        for name, array in arrays.items():
            array = np.asarray(array)
            file = f"{kind[:-1]}_{name}.bin"
            np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tofile(folder / "vectors" / file)
            table[kind][name] = {"file": file, "dtype": str(array.dtype), "shape": list(array.shape),
                                 **({"atol": vectors.atol.get(name, 1e-5)} if kind == "outputs" else {})}
    (folder / "vectors" / "vectors.json").write_text(json.dumps(table, indent=2))
