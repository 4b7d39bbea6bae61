"""The bundles a worker serves: each opened once (``Bundle.open``), an ONNX Runtime session and a batcher per graph.

Names: a bundle is served under the name given on the command line (``NAME=FOLDER``) or its folder's name;
``NAME`` alone is its primary graph (the first fp32 graph with a role) and ``NAME.GRAPH`` any graph,
variants included (``cnn.model.int8``). With ``--reload``, :meth:`ModelTable.poll` notices a bundle re-exported
in place (``zoo export --force`` swaps the folder atomically), opens the new one and swaps it in; requests
already holding the old graphs finish on them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.bundles.manifest import Bundle, GraphEntry
from zoo.errors import ZooError
from zoo.serve import metrics
from zoo.serve.batching import Batcher, BatchStats, Feeds, Outputs
from zoo.serve.errors import not_found
from zoo.serve.options import ServeOptions

log = logging.getLogger("zoo.serve")


@dataclass
class ServedGraph:
    """One graph of a served bundle: its manifest entry, its session and its batcher."""

    model: str
    entry: GraphEntry
    session: Any
    batcher: Batcher
    batchable: bool

    def run(self, feeds: Feeds) -> Outputs:
        """One ONNX Runtime call (in the batcher's thread)."""
        values = self.session.run(None, feeds)
        return dict(zip(self.entry.output_names, values, strict=True))


@dataclass
class ServedBundle:
    """A bundle as served: its name, folder, the opened bundle and its graphs."""

    name: str
    path: Path
    bundle: Bundle
    graphs: dict[str, ServedGraph]
    primary: str
    stamp: tuple[int, ...]
    lm: Any = None
    predictor: tuple[GraphEntry, Any] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def graph_with_role(self, *roles: str) -> ServedGraph | None:
        """The first fp32 graph with one of ``roles``."""
        for entry in self.bundle.manifest.with_role(*roles):
            return self.graphs[entry.name]
        return None

    async def close(self) -> None:
        for graph in self.graphs.values():
            await graph.batcher.close()


def bundle_stamp(path: Path) -> tuple[int, ...]:
    """What changes when a bundle folder is replaced or re-written: the folder's and the manifest's identity."""
    folder, manifest = os.stat(path), os.stat(path / "manifest.json")
    return folder.st_ino, manifest.st_ino, manifest.st_mtime_ns, manifest.st_size


def batchable(entry: GraphEntry) -> bool:
    """Whether requests can be concatenated: every input and output has a symbolic first (batch) axis."""
    return all(v.shape and isinstance(v.shape[0], str) for v in [*entry.inputs, *entry.outputs])


def primary_graph(bundle: Bundle) -> str:
    """The graph a bare bundle name stands for: the first fp32 graph with a role, else the first graph."""
    graphs = list(bundle.manifest.graphs.values())
    for entry in graphs:
        if entry.variant == "fp32" and entry.role:
            return entry.name
    return graphs[0].name


def load_bundle(name: str, path: Path, options: ServeOptions) -> ServedBundle:
    """Open and check the bundle, make a session (and batcher) per graph; nothing runs yet."""
    from zoo.ort import CPU, session

    stamp = bundle_stamp(path)
    bundle = Bundle.open(path)
    graphs = {}
    for entry in bundle.manifest.graphs.values():
        model = name if entry.name == primary_graph(bundle) else f"{name}.{entry.name}"
        sess = session(str(bundle.graph_path(entry)), CPU, threads=options.threads, spinning=False)
        can_batch = batchable(entry)
        label = f"{name}.{entry.name}"
        batcher = Batcher(label, lambda feeds: feeds, max_batch=options.max_batch if can_batch else 1,
                          max_delay_s=options.max_delay_ms / 1000 if can_batch else 0.0,
                          max_queue=options.max_queue, on_batch=_batch_metrics(label),
                          on_depth=metrics.QUEUE_DEPTH.labels(label).set)
        graphs[entry.name] = ServedGraph(model, entry, sess, batcher, can_batch)
        batcher.run = graphs[entry.name].run
    predictor, generating = _handled(bundle, "predict"), _handled(bundle, "generate")
    lm = generating[1].generate(bundle, generating[0]) if generating else None
    return ServedBundle(name, path, bundle, graphs, primary_graph(bundle), stamp, lm, predictor)


def _handled(bundle: Bundle, tool: str) -> tuple[GraphEntry, Any] | None:
    """The graph whose role's handlers do ``tool`` and those handlers (``zoo.role_handlers.graph_for``), or None."""
    from zoo.role_handlers import graph_for

    try:
        return graph_for(bundle, tool)
    except ZooError:
        return None


def _batch_metrics(label: str) -> Any:
    rows, requests = metrics.BATCH_ROWS.labels(label), metrics.BATCH_REQUESTS.labels(label)

    def record(stats: BatchStats) -> None:
        rows.observe(stats.rows)
        requests.observe(stats.requests)

    return record


class ModelTable:
    """Every bundle this worker serves, by name; swapped atomically on reload."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.bundles: dict[str, ServedBundle] = {}
        self.chat_template: Any = None  # zoo.serve.chat.ChatTemplate with --chat-template

    def load(self) -> None:
        if self.options.chat_template:
            from zoo.serve.chat import load_template

            self.chat_template = load_template(self.options.chat_template)
        for name, folder in self.options.bundles.items():
            self.bundles[name] = load_bundle(name, Path(folder), self.options)

    def bundle(self, name: str) -> ServedBundle:
        """The served bundle called ``name`` (404 otherwise)."""
        if name not in self.bundles:
            raise not_found(f"no model named {name!r}; this server has: {', '.join(sorted(self.bundles))}")
        return self.bundles[name]

    def graph(self, model: str) -> ServedGraph:
        """``NAME`` (the bundle's primary graph) or ``NAME.GRAPH``; 404 naming what exists otherwise."""
        name, _, graph = model.partition(".")
        served = self.bundle(name)
        key = graph or served.primary
        if key not in served.graphs:
            raise not_found(f"model {name!r} has no graph {graph!r}; it has: "
                            f"{', '.join(g.model for g in served.graphs.values())}")
        return served.graphs[key]

    def models(self) -> list[ServedGraph]:
        return [g for b in self.bundles.values() for g in b.graphs.values()]

    async def poll(self) -> None:
        """Reload every bundle whose folder changed since it was opened (a half-written one is retried later)."""
        loop = asyncio.get_running_loop()
        for name, served in list(self.bundles.items()):
            try:
                stamp = bundle_stamp(served.path)
            except OSError:
                continue  # mid-swap: the folder is briefly absent; look again next time
            if stamp == served.stamp:
                continue
            try:
                fresh = await loop.run_in_executor(None, load_bundle, name, served.path, self.options)
            except (ZooError, OSError) as exc:
                log.warning("reload of %s failed, still serving the old bundle: %s", name, exc)
                continue
            self.bundles[name] = fresh
            log.info("reloaded %s from %s", name, served.path)
            asyncio.get_running_loop().create_task(served.close())
