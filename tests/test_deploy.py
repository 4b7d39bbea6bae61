"""Graphs with preprocessing inside, and `zoo deploy` folders run for real: Python, node, headless Chromium."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from zoo.cli import cli

from .helpers import assert_one_line_error

#: Image sizes the deployed classifier is fed (the model takes 8×8): same, up- and downscales, odd shapes.
SIZES = [(8, 8), (5, 6), (20, 13), (32, 32), (100, 77)]
NPM_PACKAGES = ["onnxruntime-node", "onnxruntime-web", "pngjs"]


def _manifest(bundle: Path) -> Any:
    from zoo.bundles.manifest import Bundle

    return Bundle.open(bundle).manifest


@pytest.fixture(scope="module")
def cnn(export_briefly: Any) -> Path:
    return export_briefly("cnn").bundle_dir


@pytest.fixture(scope="module")
def images(cnn: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Real validation digits as ordinary 8-bit PNGs, at several sizes (Pillow's bicubic for the resizing)."""
    from PIL import Image

    from zoo.bundles.vectors import read_test_set

    norm = _manifest(cnn).graphs["model"].meta("normalization")
    (x,), _ = read_test_set(cnn / "model" / "test_data_set_2")
    raw = x[:6, 0] * norm["std"][0] + norm["mean"][0]  # in [0, 1]
    folder = tmp_path_factory.mktemp("digits-png")
    files = []
    for i, plane in enumerate(raw):
        digit = Image.fromarray(np.clip(np.round(plane * 255), 0, 255).astype(np.uint8), "L")
        for height, width in SIZES:
            path = folder / f"digit{i}_{height}x{width}.png"
            digit.resize((width, height), Image.BICUBIC).save(path)
            files.append(str(path))
    return files


def _zoo_predict(bundle: Path, files: list[str]) -> list[dict[str, Any]]:
    from zoo.predict import predict_images

    return predict_images(bundle, files)


def _agree(got: list[dict[str, Any]], want: list[dict[str, Any]], atol: float) -> None:
    assert [r["index"] for r in got] == [r["index"] for r in want]
    for g, w in zip(got, want, strict=True):
        assert max(abs(g["probabilities"][c] - w["probabilities"][c]) for c in w["probabilities"]) <= atol


def test_preprocessing_in_the_graph_matches_zoo_preprocessing_on_real_images(cnn: Path, images: list[str]) -> None:
    from zoo.bundles.pregraph import RESIZE_TOLERANCE_8BIT, preprocessing_graph
    from zoo.data.readers import load_image
    from zoo.ort import import_onnxruntime
    from zoo.predict import preprocess

    entry = _manifest(cnn).graphs["model"]
    norm = entry.meta("normalization")
    step = norm["from_8bit"] * norm["scale"] / min(norm["std"])  # one grey level in model-input units
    sess = import_onnxruntime().InferenceSession(preprocessing_graph(entry).SerializeToString(),
                                                 providers=["CPUExecutionProvider"])
    worst_same_size = worst = 0.0
    for file in images:
        got = sess.run(None, {"image": load_image(Path(file), mode="L")[None]})[0]
        diff = float(np.abs(got - preprocess(Path(file), entry.metadata)).max())
        worst = max(worst, diff)
        if file.endswith("_8x8.png"):
            worst_same_size = max(worst_same_size, diff)
    assert worst_same_size < 1e-5  # no resize: the same arithmetic
    assert worst <= RESIZE_TOLERANCE_8BIT * step + 1e-5  # antialiased Resize vs Pillow: at most one grey level


def test_the_deployed_classifier_agrees_with_zoo_predict(cnn: Path, images: list[str], tmp_path: Path) -> None:
    from zoo.bundles.pregraph import build_pregraph, deploy_graph
    from zoo.data.readers import load_image
    from zoo.ort import CPU, session

    graph = deploy_graph(_manifest(cnn))
    assert graph.kind == "classifier"
    description = build_pregraph(cnn, graph, tmp_path / "pre.onnx")
    sess = session(str(tmp_path / "pre.onnx"), CPU)
    assert [i.name for i in sess.get_inputs()] == ["image"]
    want = _zoo_predict(cnn, images)
    for file, expected in zip(images, want, strict=True):
        probabilities, top_p, top_i = sess.run(None, {"image": load_image(Path(file), mode="L")[None]})
        assert top_i[0, 0] == expected["index"]
        assert np.all(np.diff(top_p[0]) <= 0) and top_i.shape[1] == description["top_k"]
        assert np.abs(probabilities[0] - list(expected["probabilities"].values())).max() < 0.05


def test_a_sampler_graph_returns_uint8_pixels_and_states_its_noise(export_briefly: Any, tmp_path: Path) -> None:
    from zoo.bundles.pregraph import build_pregraph, deploy_graph
    from zoo.ort import CPU, session
    from zoo.toolkit.images import to_pixels

    bundle = export_briefly("gan").bundle_dir
    graph = deploy_graph(_manifest(bundle))
    assert graph.kind == "sampler"
    description = build_pregraph(bundle, graph, tmp_path / "pre.onnx")
    assert description["noise"]["distribution"].startswith("standard normal")
    assert description["noise"]["distribution_id"] == graph.entry.role_info["distribution"] == "standard_normal"
    noise = np.random.default_rng(1).standard_normal((4, description["noise"]["shape"][1])).astype(np.float32)
    pixels = session(str(tmp_path / "pre.onnx"), CPU).run(None, {description["noise"]["input"]: noise})[0]
    raw = session(str(bundle / graph.entry.file), CPU).run(None, {description["noise"]["input"]: noise})[0]
    norm = graph.entry.meta("normalization")
    expected = np.round(to_pixels(raw, norm["mean"], norm["std"]) * 255).transpose(0, 2, 3, 1)
    assert pixels.dtype == np.uint8 and np.abs(pixels.astype(int) - expected).max() <= 1


def test_deploy_picks_graphs_by_role_and_refuses_a_bundle_without_one(cnn: Path) -> None:
    import copy

    from zoo.bundles.manifest import parse_manifest
    from zoo.bundles.pregraph import deploy_graph, noise_of
    from zoo.errors import ZooError
    from zoo.roles import sampler_info

    data = copy.deepcopy(_manifest(cnn).to_dict())
    meta = data["graphs"]["model"]["metadata"]
    assert deploy_graph(parse_manifest(data)).kind == "classifier"
    meta["zoo_role"] = "encoder"  # an encoder alone: nothing a deployer can feed images to or draw from
    with pytest.raises(ZooError, match=r"no image classifier, sampler or decoder.*encoder"):
        deploy_graph(parse_manifest(data))
    latent = data["graphs"]["model"]["inputs"][0]["name"]
    meta.update(zoo_role="decoder", zoo_role_info=json.dumps(sampler_info(
        latent_input=latent, latent_dim=64, output="logits", distribution="uniform")))
    graph = deploy_graph(parse_manifest(data))
    noise = noise_of(graph.entry)
    assert graph.kind == "sampler" and noise["distribution_id"] == "uniform"
    assert noise["distribution"].startswith("uniform") and noise["shape"] == ["batch", 64]


def test_deploy_python_runs_without_zoo_and_agrees_with_zoo_predict(cnn: Path, images: list[str],
                                                                    tmp_path: Path) -> None:
    folder = tmp_path / "py"
    out = CliRunner().invoke(cli, ["deploy", str(cnn), "--target", "python", "--out", str(folder)])
    assert out.exit_code == 0, out.output
    assert "import zoo" not in (folder / "run.py").read_text() and "from zoo" not in (folder / "run.py").read_text()
    env = {**os.environ, "PYTHONPATH": ""}
    check = subprocess.run([sys.executable, "-X", "importtime", "run.py", "--check"], cwd=folder, env=env,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and json.loads(check.stdout)["passed"], check.stdout + check.stderr
    assert not any(line.rsplit("|", 1)[-1].strip().startswith("zoo") for line in check.stderr.splitlines())
    run = subprocess.run([sys.executable, "run.py", *images], cwd=folder, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    _agree(json.loads(run.stdout), _zoo_predict(cnn, images), atol=0.05)


def test_deploy_refuses_what_it_cannot_do(cnn: Path, tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["deploy", str(tmp_path), "--target", "node"])
    assert_one_line_error(out, "not a zoo bundle")
    (tmp_path / "taken").mkdir()
    out = CliRunner().invoke(cli, ["deploy", str(cnn), "--target", "web", "--out", str(tmp_path / "taken")])
    assert_one_line_error(out, "already exists", "--force")
    out = CliRunner().invoke(cli, ["deploy", str(cnn), "--target", "android"])
    assert out.exit_code == 2 and "android" in out.output


# --- real node and real headless Chromium -------------------------------------------------------------------


@pytest.fixture(scope="session")
def node_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """onnxruntime-node, onnxruntime-web and pngjs from npm, installed once per test session."""
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are not installed here")
    folder = tmp_path_factory.mktemp("npm")
    (folder / "package.json").write_text('{"name": "zoo-test", "version": "1.0.0", "private": true}')
    env = {**os.environ, "ONNXRUNTIME_NODE_INSTALL": "skip"}  # the CPU build is in the package; no CUDA download
    try:
        done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", *NPM_PACKAGES], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip("npm install timed out (offline?)")
    if done.returncode != 0:
        pytest.skip(f"npm install failed (offline?): {done.stderr.strip().splitlines()[-1:]}")
    return folder / "node_modules"


def _deploy(bundle: Path, target: str, folder: Path, node_modules: Path) -> Path:
    out = CliRunner().invoke(cli, ["deploy", str(bundle), "--target", target, "--out", str(folder)])
    assert out.exit_code == 0, out.output
    (folder / "node_modules").symlink_to(node_modules, target_is_directory=True)
    return folder


def test_deploy_node_runs_under_real_node_and_agrees_with_zoo_predict(cnn: Path, images: list[str], tmp_path: Path,
                                                                      node_modules: Path,
                                                                      export_briefly: Any) -> None:
    folder = _deploy(cnn, "node", tmp_path / "node", node_modules)
    check = subprocess.run(["node", "run.js", "--check"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and json.loads(check.stdout)["passed"], check.stdout + check.stderr
    run = subprocess.run(["node", "run.js", *images], cwd=folder, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    _agree(json.loads(run.stdout), _zoo_predict(cnn, images), atol=0.05)
    gan = _deploy(export_briefly("gan").bundle_dir, "node", tmp_path / "gan", node_modules)
    for args in (["--check"], ["--samples", "3"]):
        done = subprocess.run(["node", "run.js", *args], cwd=gan, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in gan.glob("sample_*.png")) == ["sample_0.png", "sample_1.png", "sample_2.png"]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's headless Chromium, installed when missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, timeout=600)
        found = shutil.which("chromium")
    if not found:
        pytest.skip("chromium is not installed and `apt-get install -y chromium` did not install it")
    return found


@pytest.fixture
def serve() -> Iterator[Any]:
    """Serve a folder on 127.0.0.1 (onnxruntime-web needs fetch and wasm, so http, not file://)."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _page_result(chromium: str, url: str, attempts: int = 3) -> Any:
    """The page's RESULT line. Headless Chromium sometimes dumps the DOM before onnxruntime-web's WebAssembly has
    finished loading (virtual time runs out while the wasm compiles on another thread): the page still says
    "loading" then, and a fresh load is tried, up to ``attempts`` times."""
    for _ in range(attempts):
        dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                              "--virtual-time-budget=120000", "--dump-dom", url],
                             capture_output=True, text=True, timeout=120).stdout
        start = dom.find("RESULT ")
        if start >= 0:
            return json.loads(dom[start + len("RESULT "):dom.index("</pre>", start)])
        assert ">loading<" in dom, dom[-2000:]  # anything but "still loading" is a real failure
    raise AssertionError(f"the page never finished loading in {attempts} attempts: {dom[-2000:]}")


def test_deploy_web_runs_in_headless_chromium_and_agrees_with_zoo_predict(cnn: Path, images: list[str],
                                                                          tmp_path: Path, node_modules: Path,
                                                                          chromium: str, serve: Any) -> None:
    folder = _deploy(cnn, "web", tmp_path / "web", node_modules)
    chosen = [f for f in images if f.endswith(("_8x8.png", "_32x32.png"))][:3]
    for file in chosen:
        shutil.copy(file, folder / Path(file).name)
    url = serve(folder)
    assert _page_result(chromium, url + "?check=1")["passed"]
    got = _page_result(chromium, f"{url}?image={','.join(Path(f).name for f in chosen)}")
    _agree(got, _zoo_predict(cnn, chosen), atol=0.05)
