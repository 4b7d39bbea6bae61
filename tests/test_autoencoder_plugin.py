"""The guide's worked example, a new two-graph family (``examples/zoo-autoencoder-plugin``), installed by pip
and driven through the real ``zoo`` command: train, export, verify, ``zoo sample`` from its decoder, and
``zoo predict`` refused in one line. The guide's code blocks are the package's files, word for word."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import pip_install_copy

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "zoo-autoencoder-plugin"
GUIDE = ROOT / "docs" / "plugins.md"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pip_install_copy(EXAMPLE, tmp_path_factory.mktemp("autoencoder"))


def zoo(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_") or k == "ZOO_CACHE_DIR"}
    env.update(PYTHONPATH=str(site), ZOO_STRICT_PLUGINS="1")
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env=env, cwd=cwd)


def test_it_imports_only_the_public_contract() -> None:
    public = {"zoo.hookspecs", "zoo.specs", "zoo.family", "zoo.data", "zoo.errors"}
    for path in sorted(EXAMPLE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "zoo":
                assert node.module in public, f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "zoo" and a.name not in public for a in node.names)


def test_the_guide_shows_the_package_files_word_for_word() -> None:
    guide = GUIDE.read_text()
    blocks = dict(re.findall(r"```(?:python|toml)\n# (examples/zoo-autoencoder-plugin/\S+)\n(.*?)```", guide, re.S))
    files = {f"examples/zoo-autoencoder-plugin/{p.relative_to(EXAMPLE).as_posix()}"
             for p in EXAMPLE.rglob("*") if p.suffix in (".py", ".toml")}
    assert set(blocks) == files, "every file of the example is in the guide"
    for name, text in blocks.items():
        assert (ROOT / name).read_text() == text, f"{name} differs from the guide"


@pytest.mark.slow
def test_autoencoder_trains_exports_verifies_samples_and_is_refused_by_predict(site: Path, tmp_path: Path) -> None:
    trained = zoo(site, "train", "dae", "--smoke", "--json", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    run_dir = tmp_path / json.loads(trained.stdout)["run_dir"]
    exported = zoo(site, "export", str(run_dir), "--json", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    bundle = tmp_path / json.loads(exported.stdout)["bundle_dir"]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert {name: g["zoo_role"] for name, g in manifest["graphs"].items()} == {"encoder": "encoder",
                                                                               "decoder": "decoder"}
    verified = zoo(site, "verify", str(bundle), "--providers", "cpu", "--json", cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["passed"] and json.loads(verified.stdout)["pytorch_skipped"] is None
    sampled = zoo(site, "sample", str(bundle), "--n", "16", "--out", str(tmp_path / "grid.png"), cwd=tmp_path)
    assert sampled.returncode == 0, sampled.stderr
    assert (tmp_path / "grid.png").read_bytes().startswith(b"\x89PNG")
    image = tmp_path / "x.png"
    shutil.copy(tmp_path / "grid.png", image)
    refused = zoo(site, "predict", str(bundle), str(image), cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert ("holds no graph `zoo predict` can use (family 'autoencoder'; graph roles: decoder, encoder)"
            in refused.stderr)
    assert "Traceback" not in refused.stderr
