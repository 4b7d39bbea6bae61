"""The package's shape: no import runs upward, the engine stays a handful of modules, run-folder names live once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "zoo"


def zoo_imports(path: Path) -> set[str]:
    """Every ``zoo...`` module a file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "zoo":
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "zoo")
    return found


def imports_any(path: Path, prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in zoo_imports(path) if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("lower, upper", [
    ("reports", ("zoo.engine", "zoo.api", "zoo.cli")),  # reports read files; they never reach into training
    ("api.py", ("zoo.family", "zoo.family_v1", "zoo.engine")),  # the API gathers; building.py loads families
    ("run_layout.py", ("zoo",)),  # names only: everyone imports it, it imports nobody
    ("runs.py", ("zoo.engine", "zoo.api")),
    ("bundles", ("zoo.engine", "zoo.api")),
])
def test_no_import_runs_upward(lower: str, upper: tuple[str, ...]) -> None:
    target = CORE / lower
    files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
    assert files
    offending = {str(f.relative_to(CORE)): hits for f in files if (hits := imports_any(f, upper))}
    assert offending == {}


def test_the_engine_is_a_handful_of_modules() -> None:
    modules = sorted(p.stem for p in (CORE / "engine").glob("*.py") if p.stem != "__init__")
    assert len(modules) <= 12, modules


def test_run_folder_names_are_spelled_once() -> None:
    """A run folder's file names are constants of ``zoo.run_layout`` only; elsewhere they are imported."""
    from zoo import run_layout

    names = {v for k, v in vars(run_layout).items() if k.isupper() and isinstance(v, str) and "." in v}
    assert {"config.json", "summary.json", "model.safetensors", "last.safetensors"} <= names
    spelled: dict[str, list[str]] = {}
    for path in CORE.rglob("*.py"):
        if path.name == "run_layout.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Constant) \
                    and node.value.value in names:
                spelled.setdefault(str(path.relative_to(CORE)), []).append(node.value.value)
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) \
                    and isinstance(node.right, ast.Constant) and node.right.value in names:
                spelled.setdefault(str(path.relative_to(CORE)), []).append(node.right.value)
    assert spelled == {}
