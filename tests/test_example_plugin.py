"""The external example package, installed for real with pip and driven through the `zoo` command.

It is installed into a throw-away folder (``pip install --target``) that only these tests put on the
path, so the other tests keep seeing the built-in plugins alone.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import pip_install_copy

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "zoo-example-plugin"
#: The public contract a plugin may import from zoo.
PUBLIC_MODULES = {"zoo.hookspecs", "zoo.specs", "zoo.family", "zoo.data", "zoo.errors"}
#: Small settings so a model trains one epoch in seconds on two shared CPU cores.
QUICK_TRAIN = {
    "vit-mini": ["--arg", "dim=16", "--arg", "depth=1"],
    "gru": ["--data", "digit-rows", "--arg", "hidden_size=16"],
    "lstm": ["--data", "digit-rows", "--arg", "hidden_size=16"],
}


@pytest.fixture(scope="session")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example installed by pip (built from a copy, so no build files land in the repository)."""
    return pip_install_copy(EXAMPLE, tmp_path_factory.mktemp("example"))


def zoo(site: Path, *args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(site), **env}
    for var in ("ZOO_LOAD_PLUGINS", "ZOO_BLOCK_PLUGINS", "ZOO_STRICT_PLUGINS", "ZOO_TRACE_PLUGINS"):
        if var not in env:
            environment.pop(var, None)
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env=environment,
                          cwd=cwd)


def test_example_imports_only_the_public_zoo_api() -> None:
    files = sorted((EXAMPLE / "src").rglob("*.py"))
    assert files
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                modules = [(alias.name, []) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [(node.module, [alias.name for alias in node.names])]
            else:
                continue
            for module, names in modules:
                top = module.split(".")[0]
                assert not top.startswith("zoo_") or top == "zoo_example_plugin", f"{path.name} imports {module}"
                if top != "zoo":
                    continue
                assert module in PUBLIC_MODULES, f"{path.name} imports {module}, which is not the public API"
                private = [n for n in names if n.startswith("_")]
                assert not private, f"{path.name} imports private {private} from {module}"


def test_example_is_listed_without_importing_torch(example_site: Path) -> None:
    listed = json.loads(zoo(example_site, "list", "--json").stdout)
    example = {row["name"]: row for row in listed if row["plugin"] == "example"}
    assert set(example) == set(QUICK_TRAIN), "every model the example registers has quick settings here"
    assert example["vit-mini"]["family"] == "classifier" and example["gru"]["family"] == "sequence-classifier"
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "zoo", "list"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(example_site)}, check=True)
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    # importlib.import_module (how entry points load) escapes -X importtime; the hook's own import shows.
    assert "zoo_example_plugin.commands" in imported and "torch" not in imported


def test_example_reports_itself_and_its_command(example_site: Path) -> None:
    record = next(p for p in json.loads(zoo(example_site, "plugins", "--json").stdout) if p["name"] == "example")
    assert record["status"] == "loaded" and record["distribution"] == "zoo-example-plugin"
    assert record["hooks"] == ["register_commands", "register_datasets", "register_families", "register_models"]
    assert record["registered"] == {"families": ["sequence-classifier"], "models": ["vit-mini", "gru", "lstm"],
                                    "datasets": ["digit-rows"], "commands": ["digit-rows"]}
    requirements = zoo(example_site, "plugins", "--requirements").stdout.splitlines()
    assert requirements == ["plugzoo==0.1.0", "zoo-example-plugin==0.1.0"]
    drawn = zoo(example_site, "digit-rows", "3")
    assert drawn.returncode == 0 and drawn.stdout.count("step ") == 8 and "label: " in drawn.stdout
    info = json.loads(zoo(example_site, "info", "gru", "--json").stdout)
    assert info["plugin"] == "example" and info["model_args"]["cell"] == "gru"


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(QUICK_TRAIN))
def test_example_model_trains_exports_and_verifies_through_the_cli(example_site: Path, model: str,
                                                                   tmp_path: Path) -> None:
    trained = zoo(example_site, "train", model, "--epochs", "1", "--batch-size", "128", "--json",
                  *QUICK_TRAIN[model], cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    run_dir = tmp_path / json.loads(trained.stdout)["run_dir"]
    exported = zoo(example_site, "export", str(run_dir), "--json", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    bundle = tmp_path / json.loads(exported.stdout)["bundle_dir"]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["plugin"] == "example" and manifest["graphs"]["model"]["zoo_role"] == "classifier"
    assert all(g["inputs"][0]["shape"][0] == "batch" for g in manifest["graphs"].values()), "dynamic batch axis"
    verified = zoo(example_site, "verify", str(bundle), "--providers", "cpu", "--json", cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    cpu = json.loads(verified.stdout)["graphs"]["model"]["CPUExecutionProvider"]
    assert cpu["passed"] and cpu["atol"] == 1e-5 and cpu["top1_agreement"] == 1.0
    if model != "vit-mini":  # a classifier of sequences: `zoo predict` (image files) refuses it in one line
        refused = zoo(example_site, "predict", str(bundle), str(bundle / "card.md"), cwd=tmp_path)
        assert refused.returncode == 2 and "holds no graph `zoo predict` can use" in refused.stderr, refused.stderr
    if model == "gru":  # the example's own family adds a section of its own to `zoo report`
        reported = zoo(example_site, "report", str(run_dir), "--out", "gru.html", cwd=tmp_path)
        assert reported.returncode == 0, reported.stderr
        page = (tmp_path / "gru.html").read_text()
        assert "<h2>Accuracy per class (sequence classifier)</h2>" in page and "the hardest class is" in page
        assert f"<h2>Parity: {bundle.name}</h2>" in page and "report_sections failed" not in page


@pytest.mark.slow
def test_blocked_and_skipped_plugins_are_named_when_their_run_is_exported(example_site: Path,
                                                                         tmp_path: Path) -> None:
    trained = zoo(example_site, "train", "example:gru", "--epochs", "1", "--batch-size", "256", "--json",
                  *QUICK_TRAIN["gru"], cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    run_dir = str(tmp_path / json.loads(trained.stdout)["run_dir"])
    blocked = zoo(example_site, "export", run_dir, cwd=tmp_path, ZOO_BLOCK_PLUGINS="example")
    assert blocked.returncode == 2
    assert blocked.stderr.strip() == ("Error: model 'example:gru' needs plugin 'example', which is blocked: "
                                      "remove it from ZOO_BLOCK_PLUGINS")
    skipped = zoo(example_site, "--no-plugins", "export", run_dir, cwd=tmp_path)
    assert skipped.returncode == 2 and "needs plugin 'example', which is skipped" in skipped.stderr
    assert "Traceback" not in blocked.stderr + skipped.stderr
    assert not (tmp_path / "exports").exists(), "a refused export writes nothing"
    untrained = zoo(example_site, "train", "gru", cwd=tmp_path, ZOO_BLOCK_PLUGINS="zoo-example-plugin")
    assert untrained.returncode == 2 and "unknown model 'gru'" in untrained.stderr

