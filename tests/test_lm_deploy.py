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


def _before_the_mask(bundle: Path, folder: Path) -> Path:
    """A copy of ``bundle`` as exported before the attention-mask input: the graph makes its all-ones mask itself
    (batch × cache + new tokens), and neither the manifest nor the role's facts name one."""
    import hashlib

    import onnx
    from onnx import TensorProto, helper

    old = Path(shutil.copytree(bundle, folder))
    manifest = json.loads((old / "manifest.json").read_text())
    entry = manifest["graphs"]["lm"]
    path = old / entry["file"]
    model = onnx.load(str(path))
    model.graph.input.remove(next(i for i in model.graph.input if i.name == "attention_mask"))

    def index(name: str, value: int) -> onnx.NodeProto:
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, TensorProto.INT64, [1], [value]))

    nodes = [index("m_0", 0), index("m_1", 1), index("m_2", 2),
             helper.make_node("Shape", ["input_ids"], ["m_ids"]), helper.make_node("Shape", ["past_key_0"], ["m_past"]),
             helper.make_node("Gather", ["m_ids", "m_0"], ["m_batch"]),
             helper.make_node("Gather", ["m_ids", "m_1"], ["m_seq"]),
             helper.make_node("Gather", ["m_past", "m_2"], ["m_cached"]),
             helper.make_node("Add", ["m_seq", "m_cached"], ["m_total"]),
             helper.make_node("Concat", ["m_batch", "m_total"], ["m_shape"], axis=0),
             helper.make_node("ConstantOfShape", ["m_shape"], ["attention_mask"],
                              value=helper.make_tensor("one", TensorProto.INT64, [1], [1]))]
    for node in reversed(nodes):
        model.graph.node.insert(0, node)
    onnx.save(model, str(path))
    entry["inputs"] = [i for i in entry["inputs"] if i["name"] != "attention_mask"]
    for key in ("zoo_role_info", "zoo_lm"):
        info = json.loads(entry["metadata"][key])
        del info["attention_mask"]
        entry["metadata"][key] = json.dumps(info)
    manifest["files"][entry["file"]] = hashlib.sha256(path.read_bytes()).hexdigest()
    (old / "manifest.json").write_text(json.dumps(manifest))
    return old


def test_a_bundle_exported_before_the_attention_mask_still_generates_and_deploys(lm: Path, greedy: list[int],
                                                                                 tmp_path: Path) -> None:
    """A graph without the mask input: one prompt, or prompts of one length, generate as before; prompts of
    different lengths are one line saying to export again; its deployed program feeds no mask."""
    from .helpers import assert_one_line_error

    old = _before_the_mask(lm, tmp_path / "old")
    runner = CliRunner()
    out = runner.invoke(cli, ["generate", str(old), "--prompt", PROMPT, "--temperature", "0",
                              "--max-new-tokens", str(TOKENS), "--json"])
    assert out.exit_code == 0 and json.loads(out.output)["tokens"] == greedy, out.output
    same = runner.invoke(cli, ["generate", str(old), "--prompt", "ab", "--prompt", "ab", "--max-new-tokens", "3",
                               "--json"])
    assert same.exit_code == 0 and len(json.loads(same.output)) == 2, same.output
    assert_one_line_error(runner.invoke(cli, ["generate", str(old), "--prompt", "a", "--prompt", PROMPT]),
                          "before the attention mask", "export the run again")
    folder = _deploy(old, "python", tmp_path / "py")
    assert json.loads((folder / "deploy.json").read_text())["attention_mask"] is None
    check = subprocess.run([sys.executable, "run.py", "--check"], cwd=folder, capture_output=True, text=True,
                           timeout=300)
    assert check.returncode == 0 and json.loads(check.stdout)["passed"], check.stdout + check.stderr


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
