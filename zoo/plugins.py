"""Finding and loading plugins, one entry point at a time, each failure isolated and recorded.

Environment variables:

- ``ZOO_LOAD_PLUGINS``: comma list of third-party plugins to load; set but empty = built-ins only.
- ``ZOO_BLOCK_PLUGINS``: comma list of plugins never to load.
- ``ZOO_STRICT_PLUGINS=1``: any plugin problem is an error instead of a warning.
- ``ZOO_TRACE_PLUGINS=1``: print every hook call (plugin, arguments, result, time) to stderr.

Plugins are named by their entry-point name; the two lists also accept the distribution's name.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, NamedTuple

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


def hook_names() -> list[str]:
    """Every hook of the plugin contract, sorted."""
    return sorted(name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "zoo_spec"))


def _flag(var: str) -> bool:
    return os.environ.get(var, "").strip().lower() not in ("", "0", "false", "no")


def strict_mode() -> bool:
    return _flag("ZOO_STRICT_PLUGINS")


def _env_list(var: str) -> list[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return [item.strip() for item in raw.split(",") if item.strip()]


def report_problem(record: PluginRecord, message: str) -> None:
    """Record a plugin problem: a one-line warning, or an error under ZOO_STRICT_PLUGINS=1."""
    message = "; ".join(line.strip() for line in message.splitlines() if line.strip())  # one line, always
    record.error = f"{record.error}; {message}" if record.error else message
    line = f"plugin {record.name!r}: {message}"
    if strict_mode():
        raise PluginError(line + " (ZOO_STRICT_PLUGINS=1 makes this an error)")
    print(f"zoo: warning: {line}", file=sys.stderr)


def fail(record: PluginRecord, message: str) -> None:
    """Mark a plugin failed (nothing of it is used) and report why."""
    record.status = "failed"
    record.registered.clear()
    report_problem(record, message)


def trace(message: str) -> None:
    """One ``ZOO_TRACE_PLUGINS=1`` line on stderr (nothing when tracing is off)."""
    if _flag("ZOO_TRACE_PLUGINS"):
        print(f"zoo: trace: {message}", file=sys.stderr)


class _EntryPoint(NamedTuple):
    """A ``zoo`` entry point and its distribution's name and version ("" when it has no distribution)."""

    ep: metadata.EntryPoint
    distribution: str
    version: str


def _entry_points() -> list[_EntryPoint]:
    """Every ``zoo`` entry point, each distribution's metadata parsed once."""
    found = []
    for ep in metadata.entry_points(group="zoo"):
        dist = getattr(ep, "dist", None)
        meta = dist.metadata if dist is not None else None
        found.append(_EntryPoint(ep, meta["Name"] if meta is not None else "",
                                 meta["Version"] if meta is not None else ""))
    # Built-ins first, then by name: a stable order, so clashes resolve the same way every time.
    return sorted(found, key=lambda f: (f.distribution != BUILTIN_DISTRIBUTION, f.ep.name))


def _implemented_hooks(plugin: object) -> list[str]:
    return sorted(attr for attr in dir(plugin) if hasattr(getattr(plugin, attr, None), "zoo_impl"))


def load_plugins() -> tuple[pluggy.PluginManager, list[PluginRecord]]:
    """Create the plugin manager and register every allowed entry point, isolating failures."""
    pm = pluggy.PluginManager("zoo")
    pm.add_hookspecs(hookspecs)
    if _flag("ZOO_TRACE_PLUGINS"):
        _monitor_hook_calls(pm)
    wanted = _env_list("ZOO_LOAD_PLUGINS")
    blocked = set(_env_list("ZOO_BLOCK_PLUGINS") or [])
    records: list[PluginRecord] = []
    for ep, distribution, version in _entry_points():
        record = PluginRecord(name=ep.name, distribution=distribution, version=version,
                              builtin=distribution == BUILTIN_DISTRIBUTION)
        records.append(record)
        if {ep.name, record.distribution} & blocked:
            record.status = "blocked"
        elif not record.builtin and wanted is not None and not {ep.name, record.distribution} & set(wanted):
            record.status = "skipped"
        elif any(r.name == ep.name and r.status == "loaded" for r in records[:-1]):
            fail(record, f"another plugin already uses this entry-point name; rename one of them "
                         f"(distribution {record.distribution!r})")
        else:
            _register_one(pm, ep, record)
        trace(f"{record.name}: {record.status} ({record.distribution} {record.version})")
    _check_named_plugins_exist(records, {"ZOO_LOAD_PLUGINS": wanted or [], "ZOO_BLOCK_PLUGINS": blocked})
    return pm, records


def _check_named_plugins_exist(records: list[PluginRecord], lists: dict[str, Any]) -> None:
    """A misspelt name in ZOO_BLOCK_PLUGINS would leave the plugin loaded: say so."""
    known = {r.name for r in records} | {r.distribution for r in records}
    for var, names in lists.items():
        for name in sorted(set(names) - known):
            line = (f"{var} names {name!r}, which is not an installed plugin "
                    f"(installed: {', '.join(r.name for r in records)})")
            if strict_mode():
                raise PluginError(line + " (ZOO_STRICT_PLUGINS=1 makes this an error)")
            print(f"zoo: warning: {line}", file=sys.stderr)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send what is written to stdout meanwhile to stderr: ``print``, ``sys.stdout.buffer`` and descriptor 1."""
    real = sys.__stdout__
    saved = None
    try:
        if real is not None:
            real.flush()
            saved = os.dup(1)
            os.dup2(2, 1)
    except (OSError, ValueError):
        saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if saved is not None:
            with contextlib.suppress(OSError, ValueError):
                real.flush()  # type: ignore[union-attr]
            os.dup2(saved, 1)
            os.close(saved)


def _register_one(pm: pluggy.PluginManager, ep: metadata.EntryPoint, record: PluginRecord) -> None:
    had_torch, started = "torch" in sys.modules, time.perf_counter()
    try:
        with _stdout_to_stderr():  # stdout is for zoo's output (--json)
            plugin = ep.load()
    except BaseException as exc:  # SystemExit too: a plugin must not end zoo
        if isinstance(exc, KeyboardInterrupt):
            raise
        fail(record, f"failed to import ({type(exc).__name__}: {exc})")
        return
    if not had_torch and "torch" in sys.modules:
        print(f"zoo: warning: plugin {record.name!r}: loading it imported torch ({time.perf_counter() - started:.1f} s "
              "on every zoo command, `zoo list` too); import torch inside functions and refer to builders and "
              "families as 'module:attr'", file=sys.stderr)
    problem = _contract_problem(plugin, record)
    if problem:
        fail(record, problem)
        return
    unmarked = _unmarked_hooks(plugin)
    if unmarked:
        one = len(unmarked) == 1
        report_problem(record, f"{', '.join(unmarked)} " + ("looks like a hook but lacks @hookimpl, so zoo never "
                       "calls it" if one else "look like hooks but lack @hookimpl, so zoo never calls them")
                       + "; decorate with zoo.hookspecs.hookimpl")
    try:
        pm.register(plugin, name=ep.name)
        pm.check_pending()
    except Exception as exc:
        if pm.is_registered(plugin):
            pm.unregister(plugin)
        fail(record, f"invalid hook implementation ({exc}); it was not loaded")
        return
    record.hooks = _implemented_hooks(plugin)


def _unmarked_hooks(plugin: object) -> list[str]:
    """Functions named like a hook of the contract but not marked with ``@hookimpl``."""
    return [name for name in hook_names()
            if callable(getattr(plugin, name, None)) and not hasattr(getattr(plugin, name), "zoo_impl")]


def _contract_problem(plugin: object, record: PluginRecord) -> str:
    """Why this plugin cannot be loaded under our contract, or '' if it can."""
    contract = getattr(plugin, "ZOO_CONTRACT", 1)
    if isinstance(contract, bool) or not isinstance(contract, int) or contract < 1:
        return f"ZOO_CONTRACT = {contract!r} is not a contract version (a whole number, at least 1); it was not loaded"
    if contract > CONTRACT_VERSION:
        return (f"{record.distribution or record.name} {record.version} is written for plugin contract {contract}, "
                f"this zoo ({BUILTIN_DISTRIBUTION}) speaks contract {CONTRACT_VERSION}; upgrade {BUILTIN_DISTRIBUTION} "
                "or install an older version of the plugin; it was not loaded")
    known = hook_names()
    unknown = [name for name in _implemented_hooks(plugin) if name not in known]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        return f"implements unknown hook {', '.join(hints)}; it was not loaded"
    return ""


def call_hook(pm: pluggy.PluginManager, plugin_name: str, hook_name: str, **kwargs: Any) -> Any:
    """Call one plugin's implementation of a hook, through pluggy, and return its result.

    Going through pluggy (not calling the function directly) means each implementation gets only
    the arguments it asks for, so hooks can grow new arguments, and hook-call monitoring sees it.
    Exceptions propagate: the caller attributes them to the plugin.
    """
    others = [plugin for name, plugin in pm.list_name_plugin() if name != plugin_name]
    with contextlib.redirect_stdout(sys.stderr):  # what a plugin prints must not corrupt `--json` output
        return pm.subset_hook_caller(hook_name, remove_plugins=others)(**kwargs)


def _monitor_hook_calls(pm: pluggy.PluginManager) -> None:
    """ZOO_TRACE_PLUGINS=1: a line before and after every hook call, naming the plugin."""
    started: list[float] = []

    def before(hook_name: str, impls: list[Any], kwargs: dict[str, Any]) -> None:
        started.append(time.perf_counter())
        for impl in impls:
            trace(f"{impl.plugin_name}.{hook_name}({', '.join(impl.argnames)})")

    def after(outcome: Any, hook_name: str, impls: list[Any], kwargs: dict[str, Any]) -> None:
        ms = (time.perf_counter() - started.pop()) * 1000
        who = ", ".join(impl.plugin_name for impl in impls)
        if outcome.exception is not None:
            result = f"raised {type(outcome.exception).__name__}: {outcome.exception}"
        else:
            result = f"-> {outcome.get_result()!r}"
        trace(f"{who}.{hook_name} {result} ({ms:.1f} ms)")

    pm.add_hookcall_monitoring(before, after)
