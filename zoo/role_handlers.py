"""Role handlers: what zoo's tools do with a graph of a given role (public contract, docs/plugins.md).

A role (:class:`zoo.roles.RoleSpec`, registered through the ``register_roles`` hook) names a
:class:`RoleHandlers` subclass as a lazy ``"module:attr"`` reference. The tools pick a bundle's graph by
role and hand it to that role's handlers:

- ``zoo predict BUNDLE FILE...`` → :meth:`RoleHandlers.predict`: the user's files (images, CSV rows, WAVs,
  text…) become feeds, the outputs :class:`PredictRow` s that ``--json``, the text table and a server print;
- ``zoo deploy BUNDLE --target T`` → :meth:`RoleHandlers.deploy`: the graph with pre/postprocessing inside
  (written to the request's folder) and a :class:`DeployPlan` (``deploy.json``, the program for python,
  node or the web, its README, test vectors); zoo writes the files;
- the int8/fp16 variant gate (``zoo export --quantize``/``--fp16``, ``zoo verify``) →
  :meth:`RoleHandlers.gate`: the variant's outputs against the fp32 graph's on the same inputs, judged
  by the role's own quality rule (:class:`GateResult`);
- ``zoo serve``'s OpenAI-compatible ``/v1/completions`` → :meth:`RoleHandlers.generate`: a
  :class:`TextGenerator` loaded once per server worker (tokenise, detokenise, the generation loop).

The built-in roles (``classifier``, ``sampler``, ``decoder``; the lm plugin's ``lm``) use exactly this API.
``Bundle``, ``Manifest``, ``GraphEntry``, ``ParityReport``, ``ValueInfo`` and ``TestSetEntry`` are re-exported
here as part of the contract. Free of torch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.bundles.manifest import (  # noqa: F401 - re-exported: reading bundles is part of the public contract
    Bundle,
    GraphEntry,
    Manifest,
    ParityReport,
    TestSetEntry,
    ValueInfo,
)
from zoo.errors import ZooError
from zoo.roles import RoleSpec

#: What a role's handlers can do, by tool.
TOOLS = ("predict", "deploy", "gate", "generate")
#: The targets of ``zoo deploy``.
TARGETS = ("python", "node", "web")


@dataclass(frozen=True)
class PredictRequest:
    """What ``zoo predict`` asks a role's handlers: run ``graph`` of ``bundle`` on the user's ``inputs`` (files,
    in the order given); ``top`` is how many alternatives a row's summary may show."""

    bundle: Bundle
    graph: GraphEntry
    inputs: tuple[Path, ...]
    top: int = 3

    def session(self) -> Any:
        """An ONNX Runtime CPU session of the graph."""
        from zoo.ort import CPU, session

        return session(str(self.bundle.graph_path(self.graph)), CPU)


@dataclass(frozen=True)
class PredictRow:
    """One result of ``zoo predict``: the input it is about (a file, ``file.csv:3``), a one-line ``summary`` for
    the text table, and ``values``, JSON data (what ``--json`` prints and a server returns)."""

    input: str
    summary: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """``{"input": …, "summary": …, **values}``."""
        return {"input": self.input, "summary": self.summary, **self.values}


def class_rows(inputs: Sequence[Any], logits: np.ndarray, labels: Sequence[str], top: int = 3,
               key: str = "input") -> list[PredictRow]:
    """The rows of a classifier's ``zoo predict``: for each input (a file) and its row of ``logits``, the most
    probable class with the ``top`` most probable shown (``"yes  (yes 0.912, no 0.088)"``), and as values
    ``{key: input, "class", "index", "probabilities": {label: p}}`` (softmax in float64)."""
    scores = np.asarray(logits, np.float64)
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    rows = []
    for item, p in zip(inputs, probabilities, strict=True):
        best = int(p.argmax())
        shown = ", ".join(f"{labels[i]} {p[i]:.3f}" for i in np.argsort(-p, kind="stable")[:top])
        rows.append(PredictRow(str(item), f"{labels[best]}  ({shown})", {
            key: str(item), "class": labels[best], "index": best,
            "probabilities": {label: float(v) for label, v in zip(labels, p, strict=True)}}))
    return rows


@dataclass(frozen=True)
class DeployRequest:
    """What ``zoo deploy`` asks a role's handlers: deploy ``graph`` of ``bundle`` for ``target`` (python, node,
    web). Write ``model.onnx`` (and any file the program reads, e.g. ``tokenizer.json``) into ``folder``."""

    bundle: Bundle
    graph: GraphEntry
    target: str
    folder: Path


@dataclass(frozen=True)
class DeployVectors:
    """Test vectors a deployed program checks itself against (``--check``): named inputs and the outputs it
    must give, with an absolute tolerance per output (0 means equal). Written as raw little-endian binary."""

    inputs: Mapping[str, np.ndarray]
    outputs: Mapping[str, np.ndarray]
    atol: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DeployPlan:
    """What a role deploys besides the files it wrote: ``info`` (``deploy.json``), ``programs`` (file name →
    text: ``run.py``, ``run.js``, ``index.html``…), the ``readme``, test ``vectors``, and the packages the
    program needs (``npm`` dependencies for node and web, ``pip`` requirement lines for python)."""

    info: Mapping[str, Any]
    programs: Mapping[str, str]
    readme: str
    vectors: DeployVectors | None = None
    npm: Mapping[str, str] = field(default_factory=dict)
    pip: tuple[str, ...] = ()


@dataclass(frozen=True)
class GateCase:
    """One input set of the gate: the inputs, the fp32 graph's outputs (``reference``), the variant's, and the
    true targets when the case holds real samples that have them (``labels``)."""

    name: str
    inputs: Mapping[str, np.ndarray]
    reference: Mapping[str, np.ndarray]
    outputs: Mapping[str, np.ndarray]
    labels: np.ndarray | None = None

    @property
    def real(self) -> bool:
        """Whether the case holds real samples (else random inputs, outside what int8 was calibrated on)."""
        return "real" in self.name


@dataclass(frozen=True)
class GateEvidence:
    """What the variant gate judges: one variant (``int8``, ``fp16``) of one graph, on one provider."""

    graph: str
    variant: str
    role_info: Mapping[str, Any]
    metadata: Mapping[str, str]
    cases: tuple[GateCase, ...]

    def real_cases(self) -> list[GateCase]:
        """The cases of real samples."""
        return [case for case in self.cases if case.real]


@dataclass(frozen=True)
class GateResult:
    """The gate's verdict: ``passed``, the ``rule`` in one line (shown in reports), and its ``metrics``
    (numbers, e.g. ``top1_agreement``, ``accuracy_drop``; stored in the parity report)."""

    passed: bool
    rule: str
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class GenerateRequest:
    """What ``zoo serve`` asks a :class:`TextGenerator`: continue ``prompt_ids`` by at most ``max_new_tokens``
    tokens (fewer at the model's context), greedy at ``temperature`` 0, else drawn from the softmax filtered by
    ``top_k`` (0: off) and ``top_p`` (1: off) with ``seed``."""

    prompt_ids: tuple[int, ...]
    max_new_tokens: int
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0


class TextGenerator:
    """A language model loaded once (made by :meth:`RoleHandlers.generate`); ``context`` is the most tokens it
    holds. One generation at a time per object."""

    context: int = 0

    def encode(self, text: str) -> list[int]:
        """The token ids of ``text``, tokenised as training tokenised its text."""
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``."""
        raise NotImplementedError

    def generate(self, request: GenerateRequest, on_token: Callable[[int], None]) -> list[int]:
        """The new tokens; ``on_token`` gets each one as it is chosen and may raise to stop before the next step."""
        raise NotImplementedError

    def generate_batch(self, requests: Sequence[GenerateRequest], on_token: Callable[[int, int], None],
                       finished: Callable[[int], bool] | None = None) -> list[list[int]]:
        """Each request's new tokens (one API request's list of prompts); ``on_token(row, token)`` gets each as it
        is chosen and may raise to stop them all, ``finished(row)`` (asked after it) says a row needs no more. This
        default runs the requests one after another through :meth:`generate`; a generator that decodes several
        rows at once overrides it."""
        results: list[list[int]] = []
        for row, request in enumerate(requests):
            tokens: list[int] = []

            def each(token: int, row: int = row, tokens: list[int] = tokens) -> None:
                tokens.append(token)
                on_token(row, token)
                if finished is not None and finished(row):
                    raise _RowFinished

            with contextlib.suppress(_RowFinished):
                self.generate(request, each)
            results.append(tokens)
        return results


class _RowFinished(Exception):
    """Ends one row of :meth:`TextGenerator.generate_batch`'s default loop."""


class RoleHandlers:
    """What the tools do with graphs of one role. Subclass it and override what your role supports; a method
    left as it is means the tool does not handle the role (``zoo predict`` and ``zoo deploy`` then refuse the
    bundle in one line; the gate keeps only the element tolerance)."""

    def accepts(self, graph: GraphEntry, tool: str) -> bool:
        """Whether ``tool`` (``"predict"``, ``"deploy"``) can use this graph of the role (default: yes)."""
        return True

    def predict(self, request: PredictRequest) -> list[PredictRow]:
        """One :class:`PredictRow` per result (usually one per input file)."""
        raise NotImplementedError

    def deploy(self, request: DeployRequest) -> DeployPlan:
        """Write ``model.onnx`` (and the files the program reads) into ``request.folder``; the plan of the rest."""
        raise NotImplementedError

    def gate(self, evidence: GateEvidence) -> GateResult:
        """Judge a variant against the fp32 graph (default: the element tolerance alone decides)."""
        return GateResult(True, "element tolerance on real samples")

    def generate(self, bundle: Bundle, graph: GraphEntry) -> TextGenerator:
        """A :class:`TextGenerator` over this graph of ``bundle`` (``zoo serve``'s ``/v1/completions``)."""
        raise NotImplementedError

    def supports(self, tool: str) -> bool:
        """Whether this class overrides ``tool`` (one of ``TOOLS``)."""
        if tool not in TOOLS:
            raise ZooError(f"unknown tool {tool!r}; one of {', '.join(TOOLS)}")
        return getattr(type(self), tool) is not getattr(RoleHandlers, tool)


def _load(spec: RoleSpec) -> RoleHandlers:
    from zoo.specs import resolve

    if spec.handlers is None:
        return RoleHandlers()
    obj = resolve(spec.handlers, owner=spec.plugin)
    handlers = obj() if isinstance(obj, type) else obj
    if not isinstance(handlers, RoleHandlers):
        raise ZooError(f"graph role {spec.qualified!r} (plugin {spec.plugin!r}): handlers {spec.handlers!r} is not "
                       "a zoo.role_handlers.RoleHandlers subclass; fix the plugin's RoleSpec")
    return handlers


def handlers_for(role: str | None) -> RoleHandlers:
    """The handlers of a role (plain or ``plugin:name``), imported once per catalogue; the base class (nothing
    handled) for no role or one that no installed plugin registers."""
    from zoo.registry import catalog, get_role

    if role is None:
        return RoleHandlers()
    try:
        spec = get_role(role)
    except ZooError:
        return RoleHandlers()
    loaded = catalog().role_handlers
    if spec.qualified not in loaded:
        loaded[spec.qualified] = _load(spec)
    return loaded[spec.qualified]


def graph_for(bundle: Bundle, tool: str) -> tuple[GraphEntry, RoleHandlers]:
    """The bundle's first fp32 graph whose role's handlers do ``tool`` and accept it, with those handlers; a
    one-line ZooError naming the bundle's roles and the roles that do ``tool`` otherwise."""
    from zoo.registry import catalog
    from zoo.roles import known_roles

    for graph in bundle.manifest.graphs.values():
        if graph.variant != "fp32" or graph.role is None:
            continue
        handlers = handlers_for(graph.role)
        if handlers.supports(tool) and handlers.accepts(graph, tool):
            return graph, handlers
    catalog()
    able = [name for name in known_roles() if handlers_for(name).supports(tool)]
    raise ZooError(f"{bundle.path} holds no graph `zoo {tool}` can use (family {bundle.manifest.family!r}; graph "
                   f"roles: {', '.join(bundle.manifest.roles())}); `zoo {tool}` handles the roles "
                   f"{', '.join(able) or 'none'}")
