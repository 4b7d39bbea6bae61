"""The catalogue of everything installed plugins registered, and pure queries over it.

Building the catalogue loads plugin modules (never torch) and calls their ``register_*`` hooks one
plugin at a time, so a plugin that raises or registers something invalid is reported and skipped
while the rest still load.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field
from typing import Any

from zoo import roles
from zoo.errors import UnknownNameError, ZooError
from zoo.plugins import PluginRecord, call_hook, fail, load_plugins, report_problem, trace
from zoo.roles import RoleSpec
from zoo.specs import DatasetSpec, FamilySpec, ModelSpec

#: kind -> (hook that registers it, spec type), in the order the hooks are called.
_KINDS: dict[str, tuple[str, type]] = {
    "families": ("register_families", FamilySpec),
    "models": ("register_models", ModelSpec),
    "datasets": ("register_datasets", DatasetSpec),
    "roles": ("register_roles", RoleSpec),
}
_NOUNS = {"models": "model", "families": "family", "datasets": "dataset", "commands": "command", "roles": "graph role"}


@dataclass
class Catalog:
    """Registered specs by name, plus the record of every plugin seen."""

    models: dict[str, ModelSpec] = field(default_factory=dict)
    families: dict[str, FamilySpec] = field(default_factory=dict)
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    qualified: dict[str, Any] = field(default_factory=dict)  # "kind/plugin:name" -> spec, every spec
    roles: dict[str, RoleSpec] = field(default_factory=dict)  # "plugin:name" -> graph role, from register_roles
    role_handlers: dict[str, Any] = field(default_factory=dict)  # qualified role -> its loaded RoleHandlers
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
    if _catalog is not None:
        roles.remove_roles(list(_catalog.roles))
    _catalog = None
    roles.set_role_loader(catalog)


def build_catalog() -> Catalog:
    """Load the plugins and call each one's hooks; a plugin whose hook raises contributes nothing."""
    pm, records = load_plugins()
    cat = Catalog(plugins=records, manager=pm)
    for record in records:
        if record.status != "loaded":
            continue
        staged = _call_register_hooks(pm, record)
        if staged is not None:
            for kind, spec in staged:
                _commit(cat, kind, spec, record)
    _drop_orphan_models(cat, {r.name: r for r in records})
    return cat


def _call_register_hooks(pm: Any, record: PluginRecord) -> list[tuple[str, Any]] | None:
    """Everything one plugin registers, in order; ``None`` (and the plugin failed) if a hook raised."""
    staged: list[tuple[str, Any]] = []
    for kind, (hook_name, _) in _KINDS.items():
        if hook_name not in record.hooks:
            continue

        def register(spec: Any, kind: str = kind) -> None:
            trace(f"  {record.name} registers {_NOUNS[kind]} {getattr(spec, 'name', spec)!r}")
            staged.append((kind, spec))

        try:
            call_hook(pm, record.name, hook_name, register=register)
        except BaseException as exc:  # SystemExit too: a plugin must not end zoo
            if isinstance(exc, KeyboardInterrupt):
                raise
            fail(record, f"raised in {hook_name} ({type(exc).__name__}: {exc}); none of its registrations were used")
            return None
    return staged


def _commit(cat: Catalog, kind: str, spec: Any, record: PluginRecord) -> None:
    """Check one registered spec and file it; the first plugin keeps a plain name, all stay qualified."""
    from dataclasses import replace

    spec_type = _KINDS[kind][1]
    noun = _NOUNS[kind]
    if not isinstance(spec, spec_type):
        report_problem(record, f"registered {spec!r} as a {noun}, expected a {spec_type.__name__}")
        return
    if kind == "roles":
        _commit_role(cat, spec, record)
        return
    try:
        spec.validate()
    except ValueError as exc:
        report_problem(record, f"registered an invalid spec: {exc}")
        return
    spec = replace(spec, plugin=record.name)
    key = f"{kind}/{record.name}:{spec.name}"
    if key in cat.qualified:
        report_problem(record, f"registers {noun} {spec.name!r} twice; the second one is ignored")
        return
    cat.qualified[key] = spec
    table: dict[str, Any] = getattr(cat, kind)
    if spec.name in table:
        other = table[spec.name].plugin
        record.registered.setdefault(kind, []).append(f"{record.name}:{spec.name}")
        report_problem(
            record,
            f"{noun} name {spec.name!r} is already registered by plugin {other!r}; "
            f"the one from {other!r} keeps the plain name, use '{record.name}:{spec.name}' for this one",
        )
        return
    record.registered.setdefault(kind, []).append(spec.name)
    table[spec.name] = spec


def _commit_role(cat: Catalog, spec: RoleSpec, record: PluginRecord) -> None:
    """File a graph role as ``plugin:name``; plain names are resolved by :func:`zoo.roles.role_spec`."""
    from dataclasses import replace

    spec = replace(spec, plugin=record.name)
    key = f"{record.name}:{spec.name}"
    if key in cat.roles:
        report_problem(record, f"registers graph role {spec.name!r} twice; the second one is ignored")
        return
    try:
        roles.add_role(spec, builtin=record.builtin)
    except ZooError as exc:
        report_problem(record, f"registered an invalid graph role: {exc}")
        return
    cat.roles[key] = spec
    others = [s.plugin for s in cat.roles.values() if s.name == spec.name and s.plugin != record.name]
    record.registered.setdefault("roles", []).append(key if others else spec.name)
    if others:
        trace(f"  graph role {spec.name!r} is registered by plugins {', '.join(others)} and {record.name}: "
              f"name it {', '.join(f'{p}:{spec.name}' for p in [*others, record.name])}")


def _drop_orphan_models(cat: Catalog, by_name: dict[str, PluginRecord]) -> None:
    for key, spec in list(cat.qualified.items()):
        if not key.startswith("models/") or spec.family in cat.families:
            continue
        del cat.qualified[key]
        if cat.models.get(spec.name) is spec:
            del cat.models[spec.name]
        record = by_name[spec.plugin]
        models = record.registered.get("models", [])
        record.registered["models"] = [n for n in models if n not in (spec.name, f"{spec.plugin}:{spec.name}")]
        report_problem(
            record,
            f"model {spec.name!r} belongs to family {spec.family!r}, which no loaded plugin registers; it was dropped",
        )


def add_commands(group: Any) -> None:
    """Let each loaded plugin add click commands to ``group``; a clash or a raise is reported and skipped.

    Each plugin gets a group of its own to add to, so a plugin cannot replace a command zoo or
    another plugin already has.
    """
    import click

    cat = catalog()
    for record in cat.plugins:
        if record.status != "loaded" or "register_commands" not in record.hooks:
            continue
        staging = click.Group(name=group.name)
        try:
            call_hook(cat.manager, record.name, "register_commands", cli=staging)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            report_problem(record, f"raised in register_commands ({type(exc).__name__}: {exc}); "
                                   "none of its commands were added")
            continue
        for name, command in sorted(staging.commands.items()):
            if name in group.commands:
                report_problem(record, f"command {name!r} already exists in zoo; the plugin's one was not added")
                continue
            group.add_command(command, name)
            record.registered.setdefault("commands", []).append(name)




def _lookup(kind: str, name: str) -> Any:
    cat = catalog()
    table: dict[str, Any] = getattr(cat, kind)
    if name in table:
        return table[name]
    noun = _NOUNS[kind]
    plain, where = name, ""
    if ":" in name:
        if f"{kind}/{name}" in cat.qualified:
            return cat.qualified[f"{kind}/{name}"]
        plugin, _, plain = name.partition(":")
        record = next((r for r in cat.plugins if r.name == plugin), None)
        if record is None:
            raise UnknownNameError(f"no plugin {plugin!r} (in {name!r}); installed plugins: "
                                   f"{', '.join(r.name for r in cat.plugins)}")
        if record.status != "loaded":
            raise UnknownNameError(f"{noun} {name!r} needs plugin {plugin!r}, which is {record.status}: "
                                   f"{_why_not_loaded(record)}")
        where = f" from plugin {plugin!r}"
    close = difflib.get_close_matches(plain, list(table), n=3, cutoff=0.5)
    if close:
        hint = f"did you mean {', '.join(repr(c) for c in close)}?"
    else:
        hint = f"known {kind}: {', '.join(sorted(table)) or 'none'}"
    unloaded = [f"{r.name} ({r.status})" for r in cat.plugins if r.status != "loaded"]
    if unloaded:
        hint += f"; not loaded: {', '.join(unloaded)} (see `zoo plugins`)"
    raise UnknownNameError(f"unknown {noun} {plain!r}{where}; {hint}")


def _why_not_loaded(record: PluginRecord) -> str:
    if record.status == "blocked":
        return "remove it from ZOO_BLOCK_PLUGINS"
    if record.status == "skipped":
        return "add it to ZOO_LOAD_PLUGINS (or unset that), and do not pass --no-plugins"
    return record.error or "see `zoo plugins`"


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


def model_providers(name: str) -> list[str]:
    """Every ``plugin:name`` registered under the plain model name ``name`` (sorted; one when it is unique)."""
    return sorted(f"{spec.plugin}:{spec.name}" for key, spec in catalog().qualified.items()
                  if key.startswith("models/") and spec.name == name)


def get_unambiguous_spec(name: str) -> ModelSpec:
    """The spec of a model to train: a plain name that two plugins register is refused, naming both
    ``plugin:name`` forms (the first plugin's plain name must not silently train the other one's model)."""
    if ":" not in name:
        providers = model_providers(name)
        if len(providers) > 1:
            raise ZooError(f"model name {name!r} is registered by {len(providers)} plugins: {', '.join(providers)}; "
                           "train one of them by its full name (zoo train PLUGIN:NAME)")
    return get_spec(name)


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


def get_role(name: str) -> RoleSpec:
    """The graph role ``name`` means (``plugin:name``, or a plain name), with every plugin loaded."""
    catalog()
    return roles.role_spec(name)


roles.set_role_loader(catalog)
