"""A ``zoo/`` folder in the current directory (beside a checkout, say) must not shadow the installed zoo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def shadowed(tmp_path: Path) -> Path:
    """A working folder holding an empty ``zoo/`` package folder (with the sub-folders a checkout has)."""
    for sub in ("plugins", "engine", "bundles"):
        (tmp_path / "zoo" / sub).mkdir(parents=True)
    return tmp_path


def _zoo(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "zoo", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_python_m_zoo_ignores_a_zoo_folder_in_the_working_directory(shadowed: Path) -> None:
    result = _zoo(["list", "--json"], shadowed)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)


def test_nproc_children_ignore_a_zoo_folder_in_the_working_directory(shadowed: Path) -> None:
    result = _zoo(["train", "cnn", "--smoke", "--epochs", "1", "--max-steps", "1", "--nproc", "2", "--device", "cpu",
                   "--out", "runs", "--json"], shadowed)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (shadowed / "runs").is_dir()
