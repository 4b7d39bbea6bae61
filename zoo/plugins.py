"""Finding and loading plugins, one entry point at a time, each failure isolated and recorded.

Environment variables:

- ``ZOO_LOAD_PLUGINS``: comma list of third-party plugin names to load; set but empty = built-ins only.
- ``ZOO_BLOCK_PLUGINS``: comma list of plugin names never to load.
- ``ZOO_STRICT_PLUGINS=1``: any plugin problem is an error instead of a warning.
"""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from zoo import hookspecs
from zoo.errors import PluginError
from zoo.version import CONTRACT_VERSION

#: The distribution that ships the built-in plugins.
BUILTIN_DISTRIBUTION = "plugzoo"


@dataclass
class PluginRecord:
    """What zoo knows about one plugin: where it came from, what it gave, and what went wrong."""

    name: str
    distribution: str = ""
    version: str = ""
    builtin: bool = False
    status: str = "loaded"  # loaded | skipped | blocked | failed
    error: str = ""
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "status": self.status,
            "error": self.error,
            "hooks": list(self.hooks),
            "registered": {kind: list(names) for kind, names in self.registered.items()},
        }


def strict_mode() -> bool:
    return os.environ.get("ZOO_STRICT_PLUGINS", "").strip() not in ("", "0", "false", "no")


def _env_list(var: str) -> list[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return [item.strip() for item in raw.split(",") if item.strip()]


def report_problem(record: PluginRecord, message: str) -> None:
    """Record a plugin problem: a one-line warning, or an error under ZOO_STRICT_PLUGINS=1."""
    record.error = f"{record.error}; {message}" if record.error else message
    line = f"plugin {record.name!r}: {message}"
    if strict_mode():
        raise PluginError(line + " (ZOO_STRICT_PLUGINS=1 makes this an error)")
    print(f"zoo: warning: {line}", file=sys.stderr)


def _entry_points() -> list[metadata.EntryPoint]:
    eps = list(metadata.entry_points(group="zoo"))
    # Built-ins first, then by name: a stable order, so clashes resolve the same way every time.
    return sorted(eps, key=lambda ep: (_dist_name(ep) != BUILTIN_DISTRIBUTION, ep.name))


def _dist_name(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else ""


def _unknown_hooks(plugin: object) -> list[str]:
    known = {name for name in dir(hookspecs) if name.startswith("register_")}
    unknown = []
    for attr in dir(plugin):
        value = getattr(plugin, attr, None)
        if callable(value) and hasattr(value, "zoo_impl") and attr not in known:
            unknown.append(attr)
    return unknown


def load_plugins() -> tuple[pluggy.PluginManager, list[PluginRecord]]:
    """Create the plugin manager and register every allowed entry point, isolating failures."""
    pm = pluggy.PluginManager("zoo")
    pm.add_hookspecs(hookspecs)
    wanted = _env_list("ZOO_LOAD_PLUGINS")
    blocked = set(_env_list("ZOO_BLOCK_PLUGINS") or [])
    records: list[PluginRecord] = []
    for ep in _entry_points():
        dist = getattr(ep, "dist", None)
        record = PluginRecord(
            name=ep.name,
            distribution=_dist_name(ep),
            version=dist.version if dist is not None else "",
            builtin=_dist_name(ep) == BUILTIN_DISTRIBUTION,
        )
        records.append(record)
        if ep.name in blocked:
            record.status = "blocked"
            continue
        if not record.builtin and wanted is not None and ep.name not in wanted:
            record.status = "skipped"
            continue
        if any(r.name == ep.name and r.status == "loaded" for r in records[:-1]):
            record.status = "failed"
            report_problem(record, "another plugin already uses this entry-point name; rename one of them")
            continue
        _register_one(pm, ep, record)
    return pm, records


def _register_one(pm: pluggy.PluginManager, ep: metadata.EntryPoint, record: PluginRecord) -> None:
    try:
        plugin = ep.load()
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        record.status = "failed"
        report_problem(record, f"failed to import ({type(exc).__name__}: {exc})")
        return
    contract = getattr(plugin, "ZOO_CONTRACT", 1)
    if not isinstance(contract, int) or contract > CONTRACT_VERSION:
        record.status = "failed"
        report_problem(
            record,
            f"written for plugin contract {contract!r}, this zoo speaks {CONTRACT_VERSION}; upgrade zoo",
        )
        return
    unknown = _unknown_hooks(plugin)
    if unknown:
        record.status = "failed"
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, [h for h in dir(hookspecs) if h.startswith("register_")])
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        report_problem(record, f"implements unknown hook {', '.join(hints)}; it was not loaded")
        return
    try:
        pm.register(plugin, name=ep.name)
        pm.check_pending()
    except Exception as exc:
        if pm.is_registered(plugin):
            pm.unregister(plugin)
        record.status = "failed"
        report_problem(record, f"invalid hook implementation ({exc})")
        return
    record.hooks = sorted(
        impl_name for impl_name in dir(plugin) if hasattr(getattr(plugin, impl_name, None), "zoo_impl")
    )
