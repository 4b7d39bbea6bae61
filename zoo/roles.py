"""Graph roles: what an exported graph is (a classifier, a sampler, an encoder, a decoder, …).

A :class:`zoo.family.GraphSpec` declares its ``role`` and ``role_info`` (the facts that role needs);
the exporter stamps both into the graph's ``metadata_props`` (``zoo_role``, ``zoo_role_info``) and the
manifest, and the tools that use a bundle pick graphs by role, never by family: ``zoo predict`` takes a
classifier, ``zoo sample`` a sampler or decoder. Roles are an open registry: :func:`register_role` adds
one (with the ``role_info`` keys it requires). Re-exported from :mod:`zoo.family`, the public contract.
Free of torch and numpy.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from zoo.errors import ZooError

#: Metadata keys the exporter writes into every graph that declares a role.
ROLE_KEY = "zoo_role"
ROLE_INFO_KEY = "zoo_role_info"
#: The older sampler key (bundles before roles); still written for sampler and decoder graphs.
SAMPLER_KEY = "zoo_sampler"
#: Latent distributions ``zoo sample`` can draw from.
DISTRIBUTIONS = ("standard_normal", "uniform")
#: How a graph's image output maps back to pixels: through the data's ``(pixel - mean) / std``
#: (``"model_input"``, what ``zoo.toolkit.layers.PixelsToInput`` produces) or already in [0, 1] (``"unit"``).
PIXEL_SPACES = ("model_input", "unit")


class GraphRole:
    """The built-in role names (plain strings; more can be added with :func:`register_role`)."""

    CLASSIFIER = "classifier"
    SAMPLER = "sampler"
    ENCODER = "encoder"
    DECODER = "decoder"


@dataclass(frozen=True)
class RoleSpec:
    """A role: its name, a one-line summary, the ``role_info`` keys it requires, which of those keys name one
    of the graph's inputs or outputs (checked when a ``GraphSpec`` is made), and its ``handlers``: a lazy
    ``"module:attr"`` reference to a :class:`zoo.role_handlers.RoleHandlers` subclass (what ``zoo predict``,
    ``zoo deploy`` and the int8/fp16 gate do with graphs of this role; ``None``: none of that). ``plugin`` is
    filled in by zoo with the registering plugin's name (roles are namespaced: ``plugin:name``)."""

    name: str
    summary: str
    required: tuple[str, ...] = ()
    input_keys: tuple[str, ...] = ()
    output_keys: tuple[str, ...] = ()
    handlers: str | None = None
    plugin: str = ""

    @property
    def qualified(self) -> str:
        """``plugin:name`` (core roles, registered by zoo itself, are named plainly)."""
        return self.name if self.plugin == CORE else f"{self.plugin}:{self.name}"

    def validate(self) -> None:
        """Raise a ZooError naming what is wrong with the spec."""
        if (not self.name or ":" in self.name or self.name != self.name.lower()
                or not self.name.replace("-", "").replace("_", "").isalnum()):
            raise ZooError(f"graph role name {self.name!r} is invalid; use lower-case letters, digits, '-' or '_'")
        if self.handlers is not None and (self.handlers.count(":") != 1 or not all(self.handlers.split(":"))):
            raise ZooError(f"graph role {self.name!r}: handlers {self.handlers!r} must be a 'module:attr' reference")


#: The plugin name of the roles zoo itself registers (classifier, sampler, decoder, encoder).
CORE = "zoo"
_ROLES: dict[str, RoleSpec] = {}  # "plugin:name" -> spec
_BUILTIN: set[str] = {CORE}  # plugins shipped with zoo: their roles keep a plain name when another plugin has it
_loader: Callable[[], object] | None = None


def set_role_loader(loader: Callable[[], object]) -> None:
    """What :func:`role_spec` calls once when a name is not known yet (the plugin registry loads the plugins)."""
    global _loader
    _loader = loader


def add_role(spec: RoleSpec, *, builtin: bool = False) -> RoleSpec:
    """File a role under ``spec.plugin`` (the registry calls this for each ``register_roles`` registration)."""
    spec.validate()
    key = f"{spec.plugin}:{spec.name}"
    if key in _ROLES and _ROLES[key] != spec:
        raise ZooError(f"graph role {spec.name!r} is already registered by plugin {spec.plugin!r} with other "
                       "requirements")
    if builtin:
        _BUILTIN.add(spec.plugin)
    _ROLES[key] = spec
    return spec


def remove_roles(keys: Sequence[str]) -> None:
    """Forget roles by ``plugin:name`` (the registry, before it loads the plugins again)."""
    for key in keys:
        _ROLES.pop(key, None)


def register_role(spec: RoleSpec) -> RoleSpec:
    """Add a role directly (the same spec twice is allowed; a different one under a taken name is not).

    Prefer the ``register_roles`` hook, which records the plugin; a direct call files the role under
    ``spec.plugin``, else the top-level package of the calling module."""
    if not spec.plugin:
        caller = sys._getframe(1).f_globals.get("__name__", "") or "unknown"
        spec = replace(spec, plugin=caller.split(".")[0] or "unknown")
    return add_role(spec)


def _candidates(name: str) -> list[RoleSpec]:
    if ":" in name:
        return [_ROLES[name]] if name in _ROLES else []
    return [spec for spec in _ROLES.values() if spec.name == name]


def role_spec(name: str) -> RoleSpec:
    """The registered role of that name: ``plugin:name``, or a plain name registered by zoo, by a plugin shipped
    with zoo, or by one plugin only. A ZooError naming the known roles, or every plugin that registers an
    ambiguous plain name, otherwise."""
    global _loader
    found = _candidates(name)
    if not found and _loader is not None:
        loader, _loader = _loader, None  # once: the plugins are loaded now
        loader()
        found = _candidates(name)
    if not found:
        raise ZooError(f"unknown graph role {name!r}; use one of {', '.join(known_roles())} "
                       "(or register it with the register_roles hook)")
    if len(found) > 1:
        builtin = [spec for spec in found if spec.plugin in _BUILTIN]
        if len(builtin) == 1:
            return builtin[0]
        plugins = sorted(spec.plugin for spec in found)
        raise ZooError(f"graph role {name!r} is registered by plugins {', '.join(repr(p) for p in plugins)}; "
                       f"name one of them: {', '.join(f'{p}:{name}' for p in plugins)}")
    return found[0]


def known_roles() -> list[str]:
    """Names of every registered role: plain where one plugin registers it (or zoo does), else ``plugin:name``."""
    names = []
    for spec in _ROLES.values():
        plain = _candidates(spec.name)
        unique = len(plain) == 1 or [s for s in plain if s.plugin in _BUILTIN] == [spec]
        names.append(spec.name if unique else f"{spec.plugin}:{spec.name}")
    return sorted(set(names))


def role_key(name: str | None) -> str | None:
    """The registered ``plugin:name`` a role name means (the name itself when no plugin here registers it)."""
    if name is None:
        return None
    try:
        spec = role_spec(name)
    except ZooError:
        return name
    return f"{spec.plugin}:{spec.name}"


def same_role(a: str | None, b: str | None) -> bool:
    """Whether two role names (plain or ``plugin:name``) mean the same registered role."""
    return a is not None and b is not None and (a == b or role_key(a) == role_key(b))


def check_role(graph: str, role: str | None, info: dict[str, Any], inputs: Sequence[str],
               outputs: Sequence[str]) -> None:
    """Raise a ZooError unless ``role`` is registered, ``info`` has its required keys and names real inputs/outputs."""
    if role is None:
        if info:
            raise ZooError(f"graph {graph!r} has role_info but no role; set GraphSpec.role")
        return
    spec = role_spec(role)
    missing = [key for key in spec.required if key not in info]
    if missing:
        raise ZooError(f"graph {graph!r} (role {role!r}) lacks role_info {missing}; "
                       f"use zoo.family.{role}_info(...) or give them")
    for keys, names, kind in ((spec.input_keys, inputs, "input"), (spec.output_keys, outputs, "output")):
        for key in keys:
            if info.get(key) is not None and info[key] not in names:
                raise ZooError(f"graph {graph!r} (role {role!r}): role_info {key}={info[key]!r} is not one of its "
                               f"{kind}s {list(names)}")
    try:
        json.dumps(info)
    except TypeError as exc:
        raise ZooError(f"graph {graph!r}: role_info must be JSON data ({exc})") from exc


def role_metadata(role: str | None, info: dict[str, Any]) -> dict[str, str]:
    """The ``metadata_props`` a role is stamped as (empty for a graph without one)."""
    if role is None:
        return {}
    props = {ROLE_KEY: role_spec(role).qualified, ROLE_INFO_KEY: json.dumps(info, sort_keys=True)}
    if props[ROLE_KEY] in (GraphRole.SAMPLER, GraphRole.DECODER) and "latent_input" in info:
        props[SAMPLER_KEY] = json.dumps({"noise_input": info["latent_input"], "latent_dim": info["latent_dim"],
                                         "label_input": info.get("label_input"),
                                         "num_classes": info.get("num_classes", 0)})
    return props


def classifier_info(*, output: str, class_names: Sequence[str], top_k: int = 5,
                    input_kind: str = "image") -> dict[str, Any]:
    """``role_info`` of a classifier: the output of class scores (logits), the class names, the default top-k,
    and what its one input is (``"image"``: ``zoo predict`` feeds it preprocessed image files; anything else,
    say ``"sequence"``, is not fed by ``zoo predict``)."""
    if not class_names:
        raise ZooError("classifier_info needs the class names (DataInfo.class_names)")
    return {"output": output, "class_names": list(class_names), "num_classes": len(class_names), "top_k": int(top_k),
            "input_kind": input_kind}


def sampler_info(*, latent_input: str, latent_dim: int, output: str = "image", distribution: str = "standard_normal",
                 label_input: str | None = None, num_classes: int = 0,
                 pixel_space: str = "model_input") -> dict[str, Any]:
    """``role_info`` of a sampler (generator) or decoder: what ``zoo sample`` feeds it and how to read its output.

    ``latent_input`` takes ``batch × latent_dim`` floats drawn from ``distribution`` (``standard_normal``, or
    ``uniform`` on [-1, 1]); a conditional graph also takes class indices at ``label_input`` (``num_classes``
    of them). ``output`` is the image, in ``pixel_space`` (see ``PIXEL_SPACES``).
    """
    if distribution not in DISTRIBUTIONS:
        raise ZooError(f"latent distribution {distribution!r} is not known; use one of {', '.join(DISTRIBUTIONS)}")
    if pixel_space not in PIXEL_SPACES:
        raise ZooError(f"pixel_space {pixel_space!r} is not known; use one of {', '.join(PIXEL_SPACES)}")
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
        raise ZooError(f"latent_dim must be a positive whole number, got {latent_dim!r}")
    if label_input is not None and num_classes < 1:
        raise ZooError("a conditional sampler (label_input given) needs num_classes")
    return {"latent_input": latent_input, "latent_dim": latent_dim, "distribution": distribution,
            "label_input": label_input, "num_classes": int(num_classes), "output": output, "pixel_space": pixel_space}


decoder_info = sampler_info


def encoder_info(*, image_input: str, latent_output: str, latent_dim: int) -> dict[str, Any]:
    """``role_info`` of an encoder: the image input and the output holding the latent code."""
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
        raise ZooError(f"latent_dim must be a positive whole number, got {latent_dim!r}")
    return {"image_input": image_input, "latent_output": latent_output, "latent_dim": latent_dim}


_SAMPLER_KEYS = ("latent_input", "latent_dim", "distribution", "output")
_IMAGES = "zoo.builtin_roles"
add_role(RoleSpec(GraphRole.CLASSIFIER, "image → class scores (zoo predict, zoo deploy)", ("output", "class_names"),
                  output_keys=("output",), handlers=f"{_IMAGES}.classifier:ClassifierHandlers", plugin=CORE))
add_role(RoleSpec(GraphRole.SAMPLER, "latent noise [, label] → image (zoo sample, zoo deploy)", _SAMPLER_KEYS,
                  input_keys=("latent_input", "label_input"), output_keys=("output",),
                  handlers=f"{_IMAGES}.sampler:SamplerHandlers", plugin=CORE))
add_role(RoleSpec(GraphRole.DECODER, "latent code [, label] → image (zoo sample, zoo deploy)", _SAMPLER_KEYS,
                  input_keys=("latent_input", "label_input"), output_keys=("output",),
                  handlers=f"{_IMAGES}.sampler:SamplerHandlers", plugin=CORE))
add_role(RoleSpec(GraphRole.ENCODER, "image → latent code", ("image_input", "latent_output", "latent_dim"),
                  input_keys=("image_input",), output_keys=("latent_output",), plugin=CORE))


def check_role_shapes(graph: str, role: str | None, info: dict[str, Any], feeds: dict[str, Any],
                      outputs: dict[str, Any]) -> None:
    """At export: what the role promises holds for real arrays (class-score width, latent sizes); a ZooError if not."""
    role = role_spec(role).qualified if role else None

    def width(arrays: dict[str, Any], key: str) -> int | None:
        array = arrays.get(info.get(key) or "")
        return None if array is None or len(array.shape) < 2 else int(array.shape[1])

    if role == GraphRole.CLASSIFIER and width(outputs, "output") not in (None, info["num_classes"]):
        raise ZooError(f"graph {graph!r} (role classifier): output {info['output']!r} has {width(outputs, 'output')} "
                       f"class scores but the data has {info['num_classes']} classes; build the model with "
                       "num_classes from DataInfo (Family.data_args)")
    checks = {GraphRole.SAMPLER: (feeds, "latent_input"), GraphRole.DECODER: (feeds, "latent_input"),
              GraphRole.ENCODER: (outputs, "latent_output")}
    if role in checks:
        arrays, key = checks[role]
        if width(arrays, key) not in (None, info["latent_dim"]):
            raise ZooError(f"graph {graph!r} (role {role}): {info[key]!r} has {width(arrays, key)} values per "
                           f"sample, not latent_dim={info['latent_dim']}; fix the role_info or the model")
