"""`zoo deploy` of a language-model bundle (the lm role's deploy handler): the key/value-cache loop with its
``tokenizer.json`` outside zoo, under plain Python, real node and headless Chromium, greedy tokens identical to
``zoo generate --temperature 0`` on a multi-line prompt (tokenised line by line, as training did)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from zoo.cli import cli

from .helpers import npm_install
from .test_deploy import _page_result, chromium, serve  # noqa: F401 - the image deploy tests' fixtures, shared

PROMPT = "def add(a, b):\n    return a + b\n\n  x = 1\n"
TOKENS = 20
NPM_PACKAGES = ["onnxruntime-node@^1.20.0", "onnxruntime-web@^1.20.0", "@huggingface/tokenizers@^0.2.0"]


@pytest.fixture(scope="module")
def lm(export_briefly: Any) -> Path:
    """The session's gpt-nano bundle (smoke mode, BPE of 400 ids)."""
    return export_briefly("gpt-nano").bundle_dir


@pytest.fixture(scope="module")
def greedy(lm: Path) -> list[int]:
    """What `zoo generate` gives for the prompt at temperature 0."""
    out = CliRunner().invoke(cli, ["generate", str(lm), "--prompt", PROMPT, "--temperature", "0",
                                   "--max-new-tokens", str(TOKENS), "--json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.output)["tokens"]


def _deploy(bundle: Path, target: str, folder: Path) -> Path:
    out = CliRunner().invoke(cli, ["deploy", str(bundle), "--target", target, "--out", str(folder)])
    assert out.exit_code == 0, out.output
    return folder


def test_deploy_python_runs_the_cache_loop_without_zoo(lm: Path, greedy: list[int], tmp_path: Path) -> None:
    folder = _deploy(lm, "python", tmp_path / "py")
    assert {p.name for p in folder.iterdir()} >= {"model.onnx", "tokenizer.json", "deploy.json", "run.py",
                                                 "requirements.txt", "README.md", "vectors"}
    info = json.loads((folder / "deploy.json").read_text())
    assert info["kind"] == "lm" and info["role"] == "lm:lm" and "\n" in info["check"]["prompt"]
    assert "tokenizers" in (folder / "requirements.txt").read_text()
    env = {**os.environ, "PYTHONPATH": ""}
    check = subprocess.run([sys.executable, "-X", "importtime", "run.py", "--check"], cwd=folder, env=env,
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0 and json.loads(check.stdout)["passed"], check.stdout + check.stderr
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in check.stderr.splitlines() if "|" in line}
    assert not imported & {"zoo", "zoo_lm", "torch"}, "the deployed program runs without zoo and torch"
    run = subprocess.run([sys.executable, "run.py", "--prompt", PROMPT, "--max-new-tokens", str(TOKENS)],
                         cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["tokens"] == greedy
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "zoo", "deploy", str(lm), "--target", "web",
                           "--out", str(tmp_path / "web")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "torch" not in {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}


def test_the_deployed_check_fails_when_the_prompt_ids_differ(lm: Path, tmp_path: Path) -> None:
    """--check can fail: a prompt that is not the one the vectors were made from gives other ids."""
    folder = _deploy(lm, "python", tmp_path / "py")
    info = json.loads((folder / "deploy.json").read_text())
    info["check"]["prompt"] += "extra words"
    (folder / "deploy.json").write_text(json.dumps(info))
    check = subprocess.run([sys.executable, "run.py", "--check"], cwd=folder, capture_output=True, text=True,
                           timeout=300)
    assert check.returncode == 1 and json.loads(check.stdout)["prompt_ids_equal"] is False


def test_a_bundle_stamped_before_roles_were_namespaced_still_generates_and_deploys(lm: Path, greedy: list[int],
                                                                                   tmp_path: Path) -> None:
    """Bundles exported before namespacing say ``zoo_role = "lm"``: the plain name resolves to the lm plugin's."""
    old = Path(shutil.copytree(lm, tmp_path / "old"))
    manifest = json.loads((old / "manifest.json").read_text())
    for graph in manifest["graphs"].values():
        graph["metadata"]["zoo_role"], graph["zoo_role"] = "lm", "lm"
    (old / "manifest.json").write_text(json.dumps(manifest))
    out = CliRunner().invoke(cli, ["generate", str(old), "--prompt", PROMPT, "--temperature", "0",
                                   "--max-new-tokens", str(TOKENS), "--json"])
    assert out.exit_code == 0 and json.loads(out.output)["tokens"] == greedy, out.output
    folder = _deploy(old, "python", tmp_path / "py")
    assert json.loads((folder / "deploy.json").read_text())["role"] == "lm"


@pytest.fixture(scope="session")
def lm_node_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """onnxruntime-node, onnxruntime-web and tokenizers.js from npm, installed once per test session."""
    return npm_install(tmp_path_factory, "zoo-lm-test", NPM_PACKAGES)


def test_deploy_node_gives_the_tokens_of_zoo_generate(lm: Path, greedy: list[int], tmp_path: Path,
                                                      lm_node_modules: Path) -> None:
    folder = _deploy(lm, "node", tmp_path / "node")
    assert "@huggingface/tokenizers" in json.loads((folder / "package.json").read_text())["dependencies"]
    (folder / "node_modules").symlink_to(lm_node_modules, target_is_directory=True)
    check = subprocess.run(["node", "run.js", "--check"], cwd=folder, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0 and json.loads(check.stdout)["passed"], check.stdout + check.stderr
    run = subprocess.run(["node", "run.js", "--prompt", PROMPT, "--max-new-tokens", str(TOKENS)], cwd=folder,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["tokens"] == greedy


def test_deploy_web_gives_the_tokens_of_zoo_generate_in_headless_chromium(
        lm: Path, greedy: list[int], tmp_path: Path, lm_node_modules: Path, request: pytest.FixtureRequest) -> None:
    browser = request.getfixturevalue("chromium")  # the image deploy tests' fixtures
    folder = _deploy(lm, "web", tmp_path / "web")
    (folder / "node_modules").symlink_to(lm_node_modules, target_is_directory=True)
    url = request.getfixturevalue("serve")(folder)
    assert _page_result(browser, url + "?check=1") == {"passed": True, "prompt_ids_equal": True,
                                                        "tokens_equal": True}
    got = _page_result(browser, f"{url}?prompt={quote(PROMPT)}&max_new_tokens={TOKENS}")
    assert got["tokens"] == greedy and got["prompt"] == PROMPT
