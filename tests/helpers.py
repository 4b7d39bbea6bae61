"""Assertions shared by the test modules."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any


def assert_one_line_error(result: Any, *fragments: str, exit_code: int = 2) -> None:
    """A CLI result that failed with exactly one ``Error: ...`` line containing every fragment."""
    assert result.exit_code == exit_code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], result.output


#: Language-model presets too large to train and export in a test (tests/test_lm.py covers the family with
#: gpt-nano; benchmarks/lm_large_export.py exports gpt2-small and checks its greedy tokens).
LARGE_LM_PRESETS = ("gpt-micro", "gpt-mini", "gpt2-small")


def briefly_trained_models() -> list[str]:
    """Every registered model that tests train and export: all but the large language-model presets and the
    real-size vision models (covered at small sizes by tests/test_vision.py)."""
    from zoo.registry import build_catalog

    return sorted(name for name, spec in build_catalog().models.items()
                  if name not in LARGE_LM_PRESETS and spec.plugin != "vision")


def pip_install_copy(package: Path, work: Path) -> Path:
    """Install the plugin package at ``package`` with pip into ``work/site`` (built from a copy under ``work``,
    offline, so no build files land in the repository); the folder to put on ``PYTHONPATH``."""
    source = work / "src"
    shutil.copytree(package, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(source)], check=True, capture_output=True, text=True)
    return site
