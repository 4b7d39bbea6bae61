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
from collections.abc import Sequence
from dataclasses import dataclass
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
#: (``"model_input"``, what ``zoo.layers.PixelsToInput`` produces) or already in [0, 1] (``"unit"``).
PIXEL_SPACES = ("model_input", "unit")


class GraphRole:
    """The built-in role names (plain strings; more can be added with :func:`register_role`)."""

    CLASSIFIER = "classifier"
    SAMPLER = "sampler"
    ENCODER = "encoder"
    DECODER = "decoder"


@dataclass(frozen=True)
class RoleSpec:
    """A role: its name, a one-line summary, the ``role_info`` keys it requires, and which of those
    keys name one of the graph's inputs or outputs (checked when a ``GraphSpec`` is made)."""

    name: str
    summary: str
    required: tuple[str, ...] = ()
    input_keys: tuple[str, ...] = ()
    output_keys: tuple[str, ...] = ()


_ROLES: dict[str, RoleSpec] = {}


def register_role(spec: RoleSpec) -> RoleSpec:
    """Add a role to the registry (the same spec twice is allowed; a different one under a taken name is not)."""
    if not spec.name or not spec.name.replace("-", "").replace("_", "").isalnum() or spec.name != spec.name.lower():
        raise ZooError(f"graph role name {spec.name!r} is invalid; use lower-case letters, digits, '-' or '_'")
    if spec.name in _ROLES and _ROLES[spec.name] != spec:
        raise ZooError(f"graph role {spec.name!r} is already registered with other requirements")
    _ROLES[spec.name] = spec
    return spec


def role_spec(name: str) -> RoleSpec:
    """The registered role of that name (a ZooError naming the known ones otherwise)."""
    if name not in _ROLES:
        raise ZooError(f"unknown graph role {name!r}; use one of {', '.join(sorted(_ROLES))} "
                       "(or register it with zoo.family.register_role)")
    return _ROLES[name]


def known_roles() -> list[str]:
    """Names of every registered role."""
    return sorted(_ROLES)


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
    props = {ROLE_KEY: role, ROLE_INFO_KEY: json.dumps(info, sort_keys=True)}
    if role in (GraphRole.SAMPLER, GraphRole.DECODER) and "latent_input" in info:
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
register_role(RoleSpec(GraphRole.CLASSIFIER, "image → class scores (zoo predict)", ("output", "class_names"),
                       output_keys=("output",)))
register_role(RoleSpec(GraphRole.SAMPLER, "latent noise [, label] → image (zoo sample)", _SAMPLER_KEYS,
                       input_keys=("latent_input", "label_input"), output_keys=("output",)))
register_role(RoleSpec(GraphRole.DECODER, "latent code [, label] → image (zoo sample)", _SAMPLER_KEYS,
                       input_keys=("latent_input", "label_input"), output_keys=("output",)))
register_role(RoleSpec(GraphRole.ENCODER, "image → latent code", ("image_input", "latent_output", "latent_dim"),
                       input_keys=("image_input",), output_keys=("latent_output",)))


def check_role_shapes(graph: str, role: str | None, info: dict[str, Any], feeds: dict[str, Any],
                      outputs: dict[str, Any]) -> None:
    """At export: what the role promises holds for real arrays (class-score width, latent sizes); a ZooError if not."""
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
