"""docs/plugins.md is the reference of the public contract: every public class, field, method and function of
``zoo.family``, ``zoo.specs``, ``zoo.data`` and ``zoo.role_handlers`` must be in it with the signature
``inspect.signature`` gives
(parameter names, kinds and simple defaults), written as inline code: `` `GraphSpec(name, module, …)` ``.
Like datasette's test of its hook documentation: a new member or a changed signature fails here until
the guide says so."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
MODULES = ("zoo.family", "zoo.specs", "zoo.data", "zoo.role_handlers")
#: Modules whose members a contract module re-exports as its own.
REEXPORTED_FROM = {"zoo.family": ("zoo.roles", "zoo.reports.sections", "zoo.explain.types"),
                   "zoo.data": ("zoo.data.kinds",), "zoo.role_handlers": ("zoo.bundles.manifest",)}
#: Documented by the Family section (hook methods), which is being rewritten for the run context: only the
#: class itself is checked here for now.
PROSE_ONLY: set[str] = set()
SIMPLE = (type(None), bool, int, float, str)


def _default(value: object) -> str:
    if isinstance(value, SIMPLE) or (isinstance(value, tuple | list) and all(isinstance(v, SIMPLE) for v in value)):
        return repr(value)
    return "..."


def render(name: str, target: object, *, method: bool = False) -> str:
    """``name(a, b=1, *, c=None)``: the signature without annotations (and without ``self``/``cls``)."""
    signature = inspect.signature(target)
    parts: list[str] = []
    star_done = False
    params = list(signature.parameters.values())
    if method and params and params[0].name in ("self", "cls"):
        params = params[1:]
    for p in params:
        if p.kind is p.KEYWORD_ONLY and not star_done:
            parts.append("*")
            star_done = True
        if p.kind is p.VAR_POSITIONAL:
            parts.append(f"*{p.name}")
            star_done = True
        elif p.kind is p.VAR_KEYWORD:
            parts.append(f"**{p.name}")
        elif p.default is p.empty:
            parts.append(p.name)
        else:
            parts.append(f"{p.name}={_default(p.default)}")
    return f"{name}({', '.join(parts)})"


def public_members() -> Iterator[tuple[str, str]]:
    """(member, how the guide must write it) for every public member of the contract modules."""
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        homes = (module_name, *REEXPORTED_FROM.get(module_name, ()))
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) not in homes:
                continue
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if name in PROSE_ONLY:
                yield name, f"class {name}"
                continue
            if inspect.isfunction(obj):
                yield f"{module_name}.{name}", render(name, obj)
                continue
            if dataclasses.is_dataclass(obj) or "__init__" in vars(obj):
                yield f"{module_name}.{name}", render(name, obj)
            yield from _class_members(module_name, name, obj)


def _class_members(module_name: str, name: str, cls: type) -> Iterator[tuple[str, str]]:
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    for attr, value in vars(cls).items():
        if attr.startswith("_") or attr in fields:
            continue
        where = f"{module_name}.{name}.{attr}"
        if isinstance(value, property):
            yield where, f"{name}.{attr}"
        elif isinstance(value, classmethod | staticmethod):
            yield where, render(f"{name}.{attr}", getattr(cls, attr))
        elif inspect.isfunction(value):
            yield where, render(f"{name}.{attr}", value, method=True)
        else:  # a class constant (GraphRole.SAMPLER) or attribute
            yield where, f"{name}.{attr}"


MEMBERS = sorted(set(public_members()))


def test_the_contract_has_members() -> None:
    names = {member for member, _ in MEMBERS}
    assert {"zoo.family.GraphSpec", "zoo.family.sampler_info", "zoo.specs.ModelSpec", "zoo.data.DataInfo"} <= names


@pytest.mark.parametrize(("member", "written"), MEMBERS, ids=[m for m, _ in MEMBERS])
def test_every_public_member_is_documented_with_its_signature(member: str, written: str) -> None:
    guide = GUIDE.read_text()
    assert f"`{written}`" in guide, f"docs/plugins.md must document {member} as `{written}`"


def test_render_writes_signatures_without_annotations() -> None:
    def f(a: int, b: str = "x", *args: int, c: object = object(), **kw: int) -> None: ...

    assert render("f", f) == "f(a, b='x', *args, c=..., **kw)"
