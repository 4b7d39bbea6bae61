"""The plugin contract: the hooks a zoo plugin may implement.

A plugin is a module (or object) exposed through the ``zoo`` entry-point group, e.g. in its
``pyproject.toml``::

    [project.entry-points.zoo]
    my_models = "my_package.zoo_plugin"

and decorates functions with :data:`hookimpl`. Every hook receives a ``register`` callback (or a
click group, for commands); zoo records which plugin registered what, validates it and owns name
clashes. Plugin modules must not import torch at import time: put heavy code behind the lazy
``"module:attr"`` references in the specs. Hooks only ever grow (new optional arguments); an
implementation is passed only the arguments it names, so a plugin written for an older contract
keeps working. A plugin may set ``ZOO_CONTRACT = N`` to state the contract version it was written
for. The authoring guide, with an example per hook, is ``docs/plugins.md``; adding a hook here
needs a section there and a ``test_hook_<name>`` in ``tests/test_hooks.py`` (tests enforce both).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def register_models(register: Callable[[Any], None]) -> None:
    """Call ``register(ModelSpec(...))`` once for each model this plugin provides."""


@hookspec
def register_families(register: Callable[[Any], None]) -> None:
    """Call ``register(FamilySpec(...))`` for each family (a way to train, evaluate and export)."""


@hookspec
def register_datasets(register: Callable[[Any], None]) -> None:
    """Call ``register(DatasetSpec(...))`` for each dataset this plugin can load."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add click commands to ``cli`` (``@cli.command()``); a name zoo already has is refused."""


@hookspec
def register_roles(register: Callable[[Any], None]) -> None:
    """Call ``register(RoleSpec(...))`` for each graph role this plugin defines, with its ``handlers``
    (a ``"module:attr"`` reference to a ``zoo.role_handlers.RoleHandlers`` subclass). Roles are namespaced
    by plugin: yours is ``<plugin>:<role>``, and its plain name works while no other plugin registers it."""
