"""The catalogue of everything installed plugins registered, and pure queries over it.

Building the catalogue loads plugin modules (never torch) and calls their ``register_*`` hooks one
plugin at a time, so a plugin that raises or registers something invalid is reported and skipped
while the rest still load.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import UnknownNameError
from zoo.plugins import PluginRecord, load_plugins, report_problem
from zoo.specs import DatasetSpec, FamilySpec, ModelSpec

_KINDS: dict[str, tuple[str, type]] = {
    "families": ("register_families", FamilySpec),
    "models": ("register_models", ModelSpec),
    "datasets": ("register_datasets", DatasetSpec),
}


@dataclass
class Catalog:
    """Registered specs by name, plus the record of every plugin seen."""

    models: dict[str, ModelSpec] = field(default_factory=dict)
    families: dict[str, FamilySpec] = field(default_factory=dict)
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    qualified: dict[str, Any] = field(default_factory=dict)  # "plugin:name" -> spec, for clashes
    plugins: list[PluginRecord] = field(default_factory=list)
    manager: Any = None


_catalog: Catalog | None = None


def catalog() -> Catalog:
    """The catalogue, built on first use."""
    global _catalog
    if _catalog is None:
        _catalog = build_catalog()
    return _catalog


def reset() -> None:
    """Forget the catalogue (tests, or after installing a plugin in-process)."""
    global _catalog
    _catalog = None


def build_catalog() -> Catalog:
    pm, records = load_plugins()
    cat = Catalog(plugins=records, manager=pm)
    by_name = {r.name: r for r in records}
    for kind, (hook_name, spec_type) in _KINDS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            record = by_name[impl.plugin_name]
            if record.status != "loaded":
                continue
            register = _make_register(cat, kind, spec_type, record)
            try:
                impl.function(register=register)
            except Exception as exc:
                report_problem(record, f"raised in {hook_name} ({type(exc).__name__}: {exc})")
    _drop_orphan_models(cat, by_name)
    return cat


def _make_register(cat: Catalog, kind: str, spec_type: type, record: PluginRecord) -> Callable[[Any], None]:
    table: dict[str, Any] = getattr(cat, kind)

    def register(spec: Any) -> None:
        if not isinstance(spec, spec_type):
            report_problem(record, f"registered {spec!r} as one of its {kind}, expected a {spec_type.__name__}")
            return
        try:
            spec.validate()
        except ValueError as exc:
            report_problem(record, f"registered an invalid spec: {exc}")
            return
        spec = _with_plugin(spec, record.name)
        cat.qualified[f"{kind}/{record.name}:{spec.name}"] = spec
        record.registered.setdefault(kind, []).append(spec.name)
        if spec.name in table:
            other = table[spec.name].plugin
            report_problem(
                record,
                f"{kind[:-1]} name {spec.name!r} is already registered by plugin {other!r}; "
                f"the one from {other!r} keeps the plain name, use '{record.name}:{spec.name}' for this one",
            )
            return
        table[spec.name] = spec

    return register


def _with_plugin(spec: Any, plugin: str) -> Any:
    from dataclasses import replace

    return replace(spec, plugin=plugin)


def _drop_orphan_models(cat: Catalog, by_name: dict[str, PluginRecord]) -> None:
    for name, spec in list(cat.models.items()):
        if spec.family not in cat.families:
            del cat.models[name]
            report_problem(
                by_name[spec.plugin],
                f"model {name!r} belongs to family {spec.family!r}, which no loaded plugin registers",
            )


_NOUNS = {"models": "model", "families": "family", "datasets": "dataset"}


def _lookup(kind: str, name: str) -> Any:
    cat = catalog()
    table: dict[str, Any] = getattr(cat, kind)
    if name in table:
        return table[name]
    if ":" in name and f"{kind}/{name}" in cat.qualified:
        return cat.qualified[f"{kind}/{name}"]
    close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.5)
    if close:
        hint = f"did you mean {', '.join(repr(c) for c in close)}?"
    else:
        hint = f"known {kind}: {', '.join(sorted(table)) or 'none'}"
    raise UnknownNameError(f"unknown {_NOUNS[kind]} {name!r}; {hint}")


def list_models(pattern: str = "*", family: str | None = None) -> list[ModelSpec]:
    """Registered models whose name matches ``pattern`` (shell wildcards), sorted by name."""
    specs = [
        spec
        for name, spec in catalog().models.items()
        if fnmatch.fnmatchcase(name, pattern) and (family is None or spec.family == family)
    ]
    return sorted(specs, key=lambda s: s.name)


def get_spec(name: str) -> ModelSpec:
    """The spec of a model; an unknown name raises with the closest matches."""
    return _lookup("models", name)


def get_family_spec(name: str) -> FamilySpec:
    return _lookup("families", name)


def get_dataset_spec(name: str) -> DatasetSpec:
    return _lookup("datasets", name)


def list_families() -> list[FamilySpec]:
    return sorted(catalog().families.values(), key=lambda s: s.name)


def list_datasets() -> list[DatasetSpec]:
    return sorted(catalog().datasets.values(), key=lambda s: s.name)


def list_plugins() -> list[PluginRecord]:
    return list(catalog().plugins)
