"""The core names no family: no module under ``zoo/`` refers, in its code, to a built-in plugin (its package),
a family, model or graph role a built-in plugin registers, or the metadata keys its graphs carry. What is
family-specific lives in the plugin and reaches the tools through documented extension points (roles and their
handlers, commands, the toolkit). Comments and docstrings may cite measurements made with a model; identifiers and
the strings the code uses may not name one."""

from __future__ import annotations

import ast
import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from zoo import registry
from zoo.roles import CORE, known_roles

CORE_DIR = Path(__file__).resolve().parents[1] / "zoo"


def builtin_names() -> tuple[set[str], set[str]]:
    """(packages of the built-in plugins, names they register: families, models, graph roles, metadata keys)."""
    packages = {ep.value.split(":")[0].split(".")[0] for ep in entry_points(group="zoo")
                if ep.dist is not None and ep.dist.name == "plugzoo"}
    cat = registry.catalog()
    builtin = {r.name for r in cat.plugins if r.builtin}
    core_roles = {name for name in known_roles() if registry.get_role(name).plugin == CORE}
    words = {spec.name for key, spec in cat.qualified.items()
             if key.split("/")[0] in ("models", "families") and spec.plugin in builtin}
    words |= {spec.name for spec in cat.roles.values() if spec.plugin in builtin}
    from zoo.data.kinds import SampleKind

    # "classifier" is zoo's own role as well as a family name, "audio" zoo's own data kind as well as a family's
    return packages, (words | packages) - core_roles - set(SampleKind.BUILT_IN)


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def names_in(source: str, packages: set[str], words: set[str]) -> list[str]:
    """Where ``source`` names a package (identifier or import) or a word (in a string the code uses)."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    pattern = re.compile(r"(?<![\w-])(" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
                         + r")(?![\w-])")
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            found += [f"line {node.lineno}: {m.group(1)!r} in a string" for m in pattern.finditer(node.value)]
        elif isinstance(node, ast.Name) and node.id in packages:
            found.append(f"line {node.lineno}: {node.id}")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"line {node.lineno}: imports {m}" for m in modules if m.split(".")[0] in packages]
    return found


def test_the_built_in_plugins_register_what_the_check_looks_for() -> None:
    packages, words = builtin_names()
    assert {"zoo_lm", "zoo_gan", "zoo_vae", "zoo_cnn"} <= packages
    assert {"gpt-nano", "cgan", "lm", "gan", "vae", "resnet18"} <= words and "classifier" not in words


@pytest.mark.parametrize("source", [
    'import zoo_lm\n',
    'from zoo_gan.models import Generator\n',
    'KEY = "zoo_lm"\n',
    'def f():\n    """Docstrings may say gpt-nano."""\n    return f"use {x} like cgan"\n',
    'ROLE = "lm"\n',
])
def test_the_check_finds_a_core_module_that_names_a_plugin(source: str) -> None:
    assert names_in(source, *builtin_names()), source


def test_comments_and_docstrings_may_cite_a_model() -> None:
    source = '"""Measured on gpt-nano and cgan."""\n# resnet50 at 224x224\nx = "film, organ, language model"\n'
    assert names_in(source, *builtin_names()) == []


def test_no_core_module_names_a_built_in_plugin() -> None:
    packages, words = builtin_names()
    found = {str(path.relative_to(CORE_DIR.parent)): hits for path in sorted(CORE_DIR.rglob("*.py"))
             if (hits := names_in(path.read_text(encoding="utf-8"), packages, words))}
    assert not found, f"core modules that name a built-in plugin's package, family, model or role: {found}"
