"""A bundle, opened once and checked: ``Bundle.open(path)`` → a typed :class:`Manifest` of :class:`GraphEntry`.

Opening reads ``manifest.json`` once, refuses a malformed one in one line, checks that every path the manifest
names (graph files, external data, test-set folders) stays inside the bundle and is listed with its hash,
checks every hash, and checks where each graph file says its external weights are: all before any graph is
run. ``zoo verify``, ``zoo bench``, ``zoo predict`` and ``zoo sample`` read bundles only through it, and the
card is written from its typed entries. Needs only ``onnx`` (external data, the checker), never torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from zoo.errors import ZooError
from zoo.roles import ROLE_INFO_KEY, ROLE_KEY, SAMPLER_KEY, GraphRole, same_role

MANIFEST = "manifest.json"
PARITY = "parity.json"
CARD = "card.md"
#: Each graph lives in its own folder, ``<graph>/model.onnx`` beside its ``test_data_set_N`` folders
#: (the ONNX model-zoo layout); variants are graphs of their own, ``<graph>.int8/``, ``<graph>.fp16/``.
GRAPH_FILE = "model.onnx"
BUNDLE_FORMAT = 2
#: What a graph's stored test vectors hold (``GraphEntry.expected_outputs``): the fp32 PyTorch model's outputs
#: (fp32 graphs, and variants of bundles written before this field) or the variant graph's own outputs under
#: ONNX Runtime's CPU provider, so that a harness can hold every stored set to the declared tolerance.
FP32_OUTPUTS = "pytorch-fp32"
OWN_OUTPUTS = "own-onnxruntime-cpu"


@dataclass(frozen=True)
class ValueInfo:
    """One graph input or output: name, shape (symbolic axes as strings) and numpy dtype name."""

    name: str
    shape: list[int | str]
    dtype: str


@dataclass(frozen=True)
class TestSetEntry:
    """A stored test set: its folder (relative to the bundle) and what kind of inputs it holds."""

    dir: str
    inputs: str


@dataclass(frozen=True)
class GraphEntry:
    """One graph of the manifest (the fp32 export or a variant)."""

    name: str
    file: str
    source_graph: str
    variant: str
    atol: float
    rtol: float
    inputs: list[ValueInfo]
    outputs: list[ValueInfo]
    test_sets: list[TestSetEntry]
    external_data: list[str]
    metadata: dict[str, str]
    opset: int | None = None
    class_output: str | None = None
    max_accuracy_drop: float | None = None
    method: str | None = None
    optimized: str | None = None
    expected_outputs: str = FP32_OUTPUTS

    @property
    def input_names(self) -> list[str]:
        return [v.name for v in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [v.name for v in self.outputs]

    @property
    def role(self) -> str | None:
        """The graph's role (``zoo_role``), or None for a graph that declares none; a graph of a bundle from
        before roles that carries the old sampler metadata is a sampler."""
        if ROLE_KEY not in self.metadata and SAMPLER_KEY in self.metadata:
            return GraphRole.SAMPLER
        return self.metadata.get(ROLE_KEY)

    @property
    def role_info(self) -> dict[str, Any]:
        """What the role needs (``zoo_role_info``); bundles from before roles get their sampler facts."""
        if ROLE_INFO_KEY in self.metadata:
            info = self.meta(ROLE_INFO_KEY)
            if not isinstance(info, dict):
                raise ZooError(f"graph {self.name!r}: metadata {ROLE_INFO_KEY!r} is not a JSON object; export again")
            return info
        if SAMPLER_KEY in self.metadata:
            old = self.meta(SAMPLER_KEY)
            return {"latent_input": old["noise_input"], "latent_dim": old["latent_dim"], "output": self.output_names[0],
                    "distribution": "standard_normal", "label_input": old.get("label_input"),
                    "num_classes": old.get("num_classes", 0), "pixel_space": "model_input"}
        return {}

    def meta(self, key: str) -> Any:
        """A JSON-encoded metadata value, decoded (a ZooError if the bundle lacks it)."""
        if key not in self.metadata:
            raise ZooError(f"graph {self.name!r} lacks metadata {key!r}; export the bundle again with this zoo")
        try:
            return json.loads(self.metadata[key])
        except json.JSONDecodeError as exc:
            raise ZooError(f"graph {self.name!r}: metadata {key!r} is not valid JSON ({exc}); export again") from exc


@dataclass(frozen=True)
class Manifest:
    """``manifest.json``, typed. ``data`` keeps the whole document as written (``to_dict``)."""

    format: int
    model: str
    family: str
    plugin: str
    graphs: dict[str, GraphEntry]
    files: dict[str, str]
    run: dict[str, Any] = field(default_factory=dict)
    parity_passed: bool | None = None
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)

    def with_role(self, *roles: str, variant: str | None = "fp32") -> list[GraphEntry]:
        """Graphs whose role is one of ``roles`` (plain or ``plugin:name``; fp32 ones only, unless ``variant`` is
        None or another)."""
        return [g for g in self.graphs.values()
                if any(same_role(g.role, r) for r in roles) and (variant is None or g.variant == variant)]

    def roles(self) -> list[str]:
        """The roles present, for messages."""
        return sorted({g.role or "none" for g in self.graphs.values()})


@dataclass(frozen=True)
class ParityReport:
    """A parity report (``parity.json``, ``zoo verify --json``), typed; ``to_dict`` gives the JSON back."""

    passed: bool
    graphs: dict[str, dict[str, dict[str, Any]]]
    skipped_providers: dict[str, str] = field(default_factory=dict)
    pytorch_skipped: str | None = None
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParityReport:
        if not isinstance(data, dict) or not isinstance(data.get("graphs"), dict):
            raise ZooError("parity report is malformed (no graphs); verify the bundle again")
        return cls(bool(data.get("passed")), data["graphs"], dict(data.get("skipped_providers") or {}),
                   data.get("pytorch_skipped"), dict(data))

    def result(self, graph: str, provider: str) -> dict[str, Any]:
        """The result of one graph on one provider (empty when it was not checked there)."""
        return self.graphs.get(graph, {}).get(provider, {})

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


class Bundle:
    """An opened, checked bundle folder. Make one with :meth:`Bundle.open`."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest

    @classmethod
    def open(cls, path: str | Path, *, check_graphs: bool = False) -> Bundle:
        """Read and check the bundle at ``path`` (``check_graphs`` also runs the ONNX checker on every graph)."""
        bundle = Path(path)
        if not bundle.is_dir():
            raise ZooError(f"bundle {bundle} does not exist; pass the folder that `zoo export` printed")
        if not (bundle / MANIFEST).is_file():
            raise ZooError(f"{bundle} is not a zoo bundle (no {MANIFEST}); pass the folder that `zoo export` printed")
        try:
            data = json.loads((bundle / MANIFEST).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ZooError(f"{bundle / MANIFEST} is corrupted ({exc}); export again") from exc
        manifest = parse_manifest(data, bundle / MANIFEST)
        opened = cls(bundle, manifest)
        opened._check_paths()
        opened._check_hashes()
        opened._check_external_data(check_graphs)
        return opened

    def file(self, relative: str) -> Path:
        """The path of a file the manifest names."""
        return self.path / relative

    def graph_path(self, entry: GraphEntry) -> Path:
        return self.path / entry.file

    def parity(self) -> ParityReport | None:
        """The parity report stored at export (None for a bundle exported with --no-verify)."""
        path = self.path / PARITY
        if not path.is_file():
            return None
        try:
            return ParityReport.from_dict(json.loads(path.read_text()))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ZooError(f"{path} is corrupted ({exc}); export again") from exc

    def _inside(self, relative: str, what: str) -> Path:
        root = self.path.resolve()
        target = (self.path / relative).resolve()
        if PurePosixPath(relative).is_absolute() or not target.is_relative_to(root):
            raise ZooError(f"{what} {relative!r} points outside the bundle; the bundle is not safe to use")
        return target

    def _check_paths(self) -> None:
        """Every path the manifest names stays inside the bundle and is listed with a hash."""
        files = self.manifest.files
        for name in files:
            self._inside(name, "manifest entry")
        for entry in self.manifest.graphs.values():
            for relative in [entry.file, *entry.external_data]:
                self._inside(relative, f"graph {entry.name!r} file")
                if relative not in files:
                    raise ZooError(f"graph {entry.name!r} names {relative!r}, which the manifest does not list with a "
                                   "hash; export the bundle again")
            for test_set in entry.test_sets:
                self._inside(test_set.dir, f"graph {entry.name!r} test set")
                prefix = test_set.dir.rstrip("/") + "/"
                if not any(name.startswith(prefix) for name in files):
                    raise ZooError(f"graph {entry.name!r} test set {test_set.dir!r} has no files listed in the "
                                   "manifest; export the bundle again")

    def _check_hashes(self) -> None:
        from zoo.digest import file_sha256 as sha256

        for name, expected in self.manifest.files.items():
            path = self.path / name
            if not path.is_file():
                raise ZooError(f"bundle file {name} is missing; copy the whole bundle folder or export again")
            if sha256(path) != expected:
                raise ZooError(f"bundle file {name} does not match its manifest hash (changed or corrupted); "
                               "export again")

    def _check_external_data(self, check_graphs: bool) -> None:
        """Where each graph file itself says its weights are: inside the bundle and listed."""
        from zoo.bundles.onnx_graph import check_graph, external_data_files

        root = self.path.resolve()
        for name, entry in self.manifest.graphs.items():
            path = self.path / entry.file
            for location in external_data_files(path):
                target = (path.parent / location).resolve()
                if Path(location).is_absolute() or not target.is_relative_to(root):
                    raise ZooError(f"graph {name!r} keeps its weights at {location!r}, outside the bundle; "
                                   "refusing to read it (export the bundle again)")
                if target.relative_to(root).as_posix() not in self.manifest.files:
                    raise ZooError(f"graph {name!r} refers to weights {location!r} the manifest does not list; "
                                   "export the bundle again")
            if check_graphs:
                check_graph(path, name)
            self._check_declared_io(entry)


    def _check_declared_io(self, entry: GraphEntry) -> None:
        """The graph file's own inputs and outputs are the ones the manifest declares (names, dtypes, shapes)."""
        from zoo.bundles.onnx_graph import describe_graph

        try:
            found = describe_graph(self.path / entry.file)
        except ZooError:
            raise
        except Exception as exc:  # a graph onnx cannot describe (an unknown element type)
            raise ZooError(f"graph {entry.name!r} cannot be read ({type(exc).__name__}); export the bundle "
                           "again") from exc
        for side, declared in (("inputs", entry.inputs), ("outputs", entry.outputs)):
            actual = [(v["name"], str(v["dtype"]), list(v["shape"])) for v in found[side]]
            if actual != [(v.name, v.dtype, list(v.shape)) for v in declared]:
                raise ZooError(f"graph {entry.name!r} has {side} {actual}, but the manifest declares "
                               f"{[(v.name, v.dtype, v.shape) for v in declared]}; the bundle is not as exported: "
                               "export it again")


def parse_manifest(data: Any, where: Path | str = MANIFEST) -> Manifest:
    """A typed :class:`Manifest` from decoded JSON; a one-line ZooError for anything malformed."""
    if not isinstance(data, dict):
        raise ZooError(f"{where} is not a manifest (a JSON object is expected, got {type(data).__name__}); "
                       "export again")
    if data.get("format") != BUNDLE_FORMAT:
        raise ZooError(f"{where} is a bundle of format {data.get('format')}, this zoo reads format "
                       f"{BUNDLE_FORMAT}; export it again with this zoo")
    files = data.get("files")
    if not isinstance(files, dict) or not files or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise ZooError(f"{where} lists no files (or not as name → sha256); export again")
    graphs = data.get("graphs")
    if not isinstance(graphs, dict) or not graphs:
        raise ZooError(f"{where} lists no graphs; export again")
    run = data.get("run", {})
    return Manifest(
        format=BUNDLE_FORMAT, model=_text(data, "model", where, ""), family=_text(data, "family", where, ""),
        plugin=_text(data, "plugin", where, ""), files=dict(files),
        graphs={name: graph_entry(name, entry, where) for name, entry in graphs.items()},
        run=run if isinstance(run, dict) else {}, parity_passed=data.get("parity_passed"), data=data,
    )


def _text(data: dict[str, Any], key: str, where: Path | str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise ZooError(f"{where}: {key!r} must be a string, got {type(value).__name__}; export again")
    return value


def graph_entry(name: str, entry: Any, where: Path | str = MANIFEST) -> GraphEntry:
    """A typed :class:`GraphEntry` from one decoded manifest graph entry."""
    what = f"{where} graph {name!r}"
    if not isinstance(entry, dict):
        raise ZooError(f"{what} is not an object; export again")
    for key in ("file", "source_graph", "variant"):
        if not isinstance(entry.get(key, name if key == "source_graph" else "fp32" if key == "variant" else None), str):
            raise ZooError(f"{what} lacks {key!r} (or it is not a string); export again")
    try:
        values = {side: [ValueInfo(str(v["name"]), list(v["shape"]), str(v["dtype"])) for v in entry[side]]
                  for side in ("inputs", "outputs")}
        sets = [TestSetEntry(str(s["dir"]), str(s.get("inputs", ""))) for s in entry.get("test_sets", [])]
        external = [str(f) for f in entry.get("external_data", [])]
        metadata = {str(k): str(v) for k, v in entry.get("metadata", {}).items()}
        atol, rtol = float(entry.get("atol", 1e-5)), float(entry.get("rtol", 1e-5))
        drop = entry.get("max_accuracy_drop")
        drop = None if drop is None else float(drop)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ZooError(f"{what} is malformed ({type(exc).__name__}: {exc}); export again") from exc
    for key, value in (("atol", atol), ("rtol", rtol), ("max_accuracy_drop", drop)):
        if value is not None and not 0 <= value < float("inf"):  # a NaN tolerance would let every element pass
            raise ZooError(f"{what}: {key} is {value}, not a finite number ≥ 0; export again")
    for key, kind in (("opset", int), ("class_output", str), ("method", str), ("optimized", str)):
        if entry.get(key) is not None and not isinstance(entry.get(key), kind):
            raise ZooError(f"{what}: {key} must be a {kind.__name__}, got {type(entry.get(key)).__name__}; "
                           "export again")
    return GraphEntry(
        name=name, file=entry["file"], source_graph=entry.get("source_graph", name),
        variant=entry.get("variant", "fp32"), atol=atol, rtol=rtol, inputs=values["inputs"],
        outputs=values["outputs"], test_sets=sets, external_data=external, metadata=metadata,
        opset=entry.get("opset"), class_output=entry.get("class_output"),
        max_accuracy_drop=drop, method=entry.get("method"),
        optimized=entry.get("optimized"), expected_outputs=str(entry.get("expected_outputs", FP32_OUTPUTS)),
    )
