"""Plain-data descriptions of what plugins register: models, families and datasets.

Specs are cheap to build and never import torch: code is referenced lazily as ``"module:attr"``
strings (or callables) and only resolved when a model is built or trained.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Union

from zoo.errors import PluginError

#: A lazy reference to code: ``"package.module:attribute"`` or the callable itself.
LazyRef = Union[str, Callable[..., Any]]  # noqa: UP007 - a runtime alias, kept 3.10-safe

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class InputSpec:
    """Shape of one image a model consumes by default: channels × height × width."""

    channels: int
    height: int
    width: int

    def validate(self) -> None:
        for label, value in (("channels", self.channels), ("height", self.height), ("width", self.width)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"input {label} must be a positive integer, got {value!r}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)


@dataclass(frozen=True)
class ModelSpec:
    """One model: how to find, describe and build it.

    ``model_args`` are the builder's keyword defaults (architecture); ``defaults`` are the training
    hyperparameters the family's trainer uses unless the user overrides them (epochs, batch_size, lr…).
    """

    name: str
    family: str
    summary: str
    builder: LazyRef
    input: InputSpec
    defaults: dict[str, Any] = field(default_factory=dict)
    model_args: dict[str, Any] = field(default_factory=dict)
    plugin: str = ""  # filled in by the registry: who registered it
    #: The dataset ``zoo train NAME`` uses when ``--data`` is not given (a language model's is text).
    dataset: str = "digits"
    #: Narrower than the family's: the sample kinds (``"image"``, ``"features"``…) and target kinds
    #: (``"class"``, ``"real"``…) this model takes; ``None`` takes what its family takes.
    data_kinds: tuple[str, ...] | None = None
    target_kinds: tuple[str, ...] | None = None

    def validate(self) -> None:
        _check_name("model", self.name)
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ValueError(f"model {self.name!r}: dataset must name a dataset, got {self.dataset!r}")
        _check_name("family", self.family)
        if not self.summary or not isinstance(self.summary, str):
            raise ValueError(f"model {self.name!r} needs a one-line summary")
        _check_ref(f"model {self.name!r} builder", self.builder)
        if not isinstance(self.input, InputSpec):
            raise ValueError(f"model {self.name!r}: input must be an InputSpec")
        self.input.validate()
        for label, mapping in (("defaults", self.defaults), ("model_args", self.model_args)):
            if not isinstance(mapping, dict) or not all(isinstance(k, str) for k in mapping):
                raise ValueError(f"model {self.name!r}: {label} must be a dict with string keys")
        for label, kinds in (("data_kinds", self.data_kinds), ("target_kinds", self.target_kinds)):
            if kinds is not None:
                _check_kinds(f"model {self.name!r}", label, kinds)

    @property
    def qualified_name(self) -> str:
        """``plugin:name``: names this very spec even when another plugin registered the same name."""
        return f"{self.plugin}:{self.name}" if self.plugin else self.name

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (the documented ``zoo info --json`` contract)."""
        return {
            "name": self.name,
            "family": self.family,
            "plugin": self.plugin,
            "summary": self.summary,
            "input": {"channels": self.input.channels, "height": self.input.height, "width": self.input.width},
            "defaults": dict(self.defaults),
            "model_args": dict(self.model_args),
            "builder": describe_ref(self.builder),
        }


@dataclass(frozen=True)
class FamilySpec:
    """A family: the code that trains, evaluates and exports its models (a :class:`zoo.family.Family`)."""

    name: str
    summary: str
    factory: LazyRef
    plugin: str = ""
    #: The sample kinds the family trains on, as the dataset gives them (before ``Family.prepare_data``):
    #: ``"image"``, ``"text"``, ``"features"``, ``"audio"`` or a plugin's own ``"plugin:kind"``.
    data_kinds: tuple[str, ...] = ("image",)
    #: The target kinds it learns: ``"class"``, ``"real"``, ``"tokens"``, ``"none"``.
    target_kinds: tuple[str, ...] = ("class",)

    def validate(self) -> None:
        _check_name("family", self.name)
        if not self.summary:
            raise ValueError(f"family {self.name!r} needs a one-line summary")
        _check_ref(f"family {self.name!r} factory", self.factory)
        _check_kinds(f"family {self.name!r}", "data_kinds", self.data_kinds)
        _check_kinds(f"family {self.name!r}", "target_kinds", self.target_kinds)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset that can be loaded by name.

    ``loader(seed=..., val_fraction=...[, path=...])`` returns :class:`zoo.data.RawData` (zoo then converts,
    resizes, splits and normalises it) or ready :class:`zoo.data.DataSplits`. With ``needs_path`` the user
    names local files as ``NAME:PATH``.
    """

    name: str
    summary: str
    loader: LazyRef
    input: InputSpec | None = None
    num_classes: int | None = None
    size: int | None = None
    needs_path: bool = False
    plugin: str = ""
    #: The loader's own keyword options a user sets with ``--data-arg KEY=VALUE``: name → one-line help.
    args: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        _check_name("dataset", self.name)
        if not isinstance(self.args, dict) or not all(isinstance(k, str) and k.isidentifier() for k in self.args):
            raise ValueError(f"dataset {self.name!r}: args must map keyword names to their help")
        if not self.summary:
            raise ValueError(f"dataset {self.name!r} needs a one-line summary")
        _check_ref(f"dataset {self.name!r} loader", self.loader)
        if self.input is not None:
            self.input.validate()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (the ``zoo datasets --json`` contract)."""
        shape = None if self.input is None else list(self.input.shape)
        return {"name": self.name, "plugin": self.plugin, "summary": self.summary, "needs_path": self.needs_path,
                "input": shape, "num_classes": self.num_classes, "size": self.size}


#: Sample and target kinds zoo knows; any other must be a plugin's own, written ``"plugin:kind"``.
_KNOWN_KINDS = {"data_kinds": ("image", "text", "features", "audio"),
                "target_kinds": ("class", "real", "tokens", "none")}


def _check_kinds(owner: str, label: str, kinds: object) -> None:
    if not isinstance(kinds, tuple) or not kinds or not all(isinstance(k, str) for k in kinds):
        raise ValueError(f"{owner}: {label} must be a non-empty tuple of strings, got {kinds!r}")
    known = _KNOWN_KINDS[label]
    for kind in kinds:
        if kind not in known and (label == "target_kinds" or ":" not in kind):
            own = " or a plugin's own 'plugin:kind'" if label == "data_kinds" else ""
            raise ValueError(f"{owner}: {label} has {kind!r}; use {', '.join(map(repr, known))}{own}")


def _check_name(kind: str, name: object) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"{kind} name {name!r} is invalid: use lower-case letters, digits, '.', '_' or '-'"
        )


def _check_ref(label: str, ref: object) -> None:
    if callable(ref):
        return
    if not isinstance(ref, str) or not _REF.match(ref):
        raise ValueError(f"{label} must be a callable or a 'module:attribute' string, got {ref!r}")


def describe_ref(ref: LazyRef) -> str:
    """Readable form of a lazy reference."""
    if isinstance(ref, str):
        return ref
    return f"{getattr(ref, '__module__', '?')}:{getattr(ref, '__qualname__', repr(ref))}"


def resolve(ref: LazyRef, *, owner: str = "") -> Any:
    """Import the object a lazy reference names; errors name the plugin that gave the reference."""
    if not isinstance(ref, str):
        return ref
    module_name, _, attr_path = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr_path.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # an import error inside plugin code is the plugin's problem
        who = f" (from plugin {owner!r})" if owner else ""
        raise PluginError(
            f"cannot load {ref!r}{who}: {type(exc).__name__}: {exc}; "
            "fix or uninstall that plugin, or run with ZOO_LOAD_PLUGINS= to skip third-party plugins"
        ) from exc
    return obj
