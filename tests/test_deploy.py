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

from .helpers import assert_one_line_error, npm_install

#: Image sizes the deployed classifier is fed (the model takes 8×8): same, up- and downscales, odd shapes.
SIZES = [(8, 8), (5, 6), (20, 13), (32, 32), (100, 77)]
NPM_PACKAGES = ["onnxruntime-node", "onnxruntime-web", "pngjs", "@cwasm/jpeg-turbo"]


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
    done = CliRunner().invoke(cli, ["deploy", str(cnn), "--target", "web", "--out", str(tmp_path / "taken")])
    assert done.exit_code == 0, done.output
    out = CliRunner().invoke(cli, ["deploy", str(cnn), "--target", "web", "--out", str(tmp_path / "taken")])
    assert_one_line_error(out, "already exists", "--force")
    out = CliRunner().invoke(cli, ["deploy", str(cnn), "--target", "android"])
    assert out.exit_code == 2 and "android" in out.output


# --- deploy folders are published like bundles, and never touch their input ------------------------------------


def _snapshot(root: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("where", ["bundle", "inside", "parent", "cwd", "cwd-parent", "home", "other", "file"])
def test_deploy_never_deletes_or_changes_its_input(cnn: Path, tmp_path: Path, where: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`--out B --force` deleted the bundle B it was asked to read; `--out .` removed the current folder."""
    root = tmp_path / "root"
    bundle = Path(shutil.copytree(cnn, root / "exports" / "b"))
    (root / "work" / "mine").mkdir(parents=True)
    (root / "work" / "mine" / "notes.txt").write_text("mine")
    (root / "work" / "a-file").write_text("mine")
    monkeypatch.chdir(root / "work" / "mine")
    monkeypatch.setenv("HOME", str(root / "work"))
    out = {"bundle": bundle, "inside": bundle / "model", "parent": root / "exports", "cwd": Path("."),
           "cwd-parent": Path(".."), "home": root / "work", "other": root / "work" / "mine",
           "file": root / "work" / "a-file"}[where]
    before = _snapshot(root)
    result = CliRunner().invoke(cli, ["deploy", str(bundle), "--target", "python", "--out", str(out), "--force"])
    assert_one_line_error(result, str(out))
    assert _snapshot(root) == before


def test_force_replaces_a_deploy_folder_and_nothing_else(cnn: Path, tmp_path: Path) -> None:
    folder = tmp_path / "py"
    args = ["deploy", str(cnn), "--target", "python", "--out", str(folder)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    (folder / "deploy.json").write_text(json.dumps({**json.loads((folder / "deploy.json").read_text()), "old": 1}))
    assert_one_line_error(CliRunner().invoke(cli, args), "already exists", "--force")
    assert CliRunner().invoke(cli, [*args, "--force"]).exit_code == 0
    assert "old" not in json.loads((folder / "deploy.json").read_text())  # replaced, by a complete folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["py"]  # no staging or old folder left
    (folder / "deploy.json").write_text("{not json")  # no longer recognisable as zoo's: left alone
    assert_one_line_error(CliRunner().invoke(cli, [*args, "--force"]), "did not make")
    assert (folder / "deploy.json").read_text() == "{not json"


def test_what_a_killed_deploy_left_is_cleaned_up_by_the_next(cnn: Path, tmp_path: Path) -> None:
    """A killed deploy left a half-written folder that later deploys called "already exists"."""
    folder = tmp_path / "py"
    staging = tmp_path / ".py.staging-999999999"  # no such process: abandoned
    staging.mkdir()
    (staging / "model.onnx").write_bytes(b"trunc")
    args = ["deploy", str(cnn), "--target", "python", "--out", str(folder)]
    assert CliRunner().invoke(cli, args).exit_code == 0, "a staging folder must not block a deploy"
    assert not staging.exists()
    old = tmp_path / ".py.old-999999999"  # killed between the two renames of --force (systems without renameat2)
    folder.rename(old)
    result = CliRunner().invoke(cli, args)
    assert_one_line_error(result, "already exists")  # the old folder was put back first
    assert (folder / "deploy.json").is_file() and not old.exists()


def _complete(folder: Path) -> bool:
    """A deploy folder with every file, whose test vectors pass with its own program."""
    names = {"README.md", "deploy.json", "model.onnx", "run.py", "decoding.py", "requirements.txt", "vectors"}
    if not names <= {p.name for p in folder.iterdir()}:
        return False
    check = subprocess.run([sys.executable, "run.py", "--check"], cwd=folder, capture_output=True, text=True,
                           timeout=120)
    return check.returncode == 0 and json.loads(check.stdout)["passed"]


def test_kill_9_of_deploy_leaves_the_old_folder_or_a_complete_new_one(cnn: Path, tmp_path: Path) -> None:
    """A few kills of the campaign in benchmarks/kill_campaign.py (20 there)."""
    import random
    import signal
    import time

    def deploy(out: Path, *extra: str, kill_after: float | None = None) -> float:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "zoo", "deploy", str(cnn), "--target", "python", "--out",
                                 str(out), *extra], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=300)
        return time.perf_counter() - started

    whole = deploy(tmp_path / "first")
    assert _complete(tmp_path / "first")
    rng = random.Random(25)
    for i in range(2):
        out = tmp_path / f"new{i}"
        deploy(out, kill_after=rng.uniform(0.5, 1.05) * whole)
        assert not out.exists() or _complete(out)
        deploy(out)  # and a later deploy works: no stale "already exists", no half-written folder
        assert _complete(out)
        deploy(tmp_path / "first", "--force", kill_after=rng.uniform(0.5, 1.05) * whole)
        deploy(tmp_path / "other")  # another folder's deploy beside it is not disturbed by the leftovers
        assert _complete(tmp_path / "first") and _complete(tmp_path / "other")
        shutil.rmtree(tmp_path / "other")
    deploy(tmp_path / "first", "--force")  # the next deploy of that folder removes what the killed one left
    assert _complete(tmp_path / "first")
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_full_disk_names_the_file_and_leaves_nothing(cnn: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import zoo.deploy as deploy

    def full(folder: Path, *args: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / "vectors" / "input_image.bin"))

    monkeypatch.setattr(deploy, "_write_vectors", full)
    out = tmp_path / "py"
    result = CliRunner().invoke(cli, ["deploy", str(cnn), "--target", "python", "--out", str(out)])
    assert_one_line_error(result, "No space left", str(out / "vectors" / "input_image.bin"))
    assert list(tmp_path.iterdir()) == []


def test_a_file_size_limit_is_one_line_naming_the_folder(cnn: Path, tmp_path: Path) -> None:
    """`ulimit -f` gave `internal error` and a truncated graph."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))  # model.onnx is larger

    out = tmp_path / "py"
    done = subprocess.run([sys.executable, "-m", "zoo", "deploy", str(cnn), "--target", "python", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, preexec_fn=limit, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "file too large" in lines[0].lower() and str(out) in lines[0] and "ulimit" in lines[0], \
        lines
    assert list(tmp_path.iterdir()) == []


# --- the generated programs: one-line errors ------------------------------------------------------------------


def test_run_py_help_and_bad_input_are_one_line(cnn: Path, tmp_path: Path) -> None:
    """`run.py --help` and a missing image printed a traceback."""
    folder = tmp_path / "py"
    assert CliRunner().invoke(cli, ["deploy", str(cnn), "--target", "python", "--out", str(folder)]).exit_code == 0
    shown = subprocess.run([sys.executable, "run.py", "--help"], cwd=folder, capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0 and "--samples" in shown.stdout and not shown.stderr
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    for args, fragment in ((["missing.png"], "missing.png does not exist"), (["broken.png"], "not a readable"),
                           (["--samples", "2"], "classifier"), (["--bogus"], "--bogus"), ([], "give image files"),
                           ([str(tmp_path)], "is a folder")):
        done = subprocess.run([sys.executable, "run.py", *args], cwd=folder, capture_output=True, text=True,
                              timeout=60)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and fragment in lines[0], (args, done.stderr)


# --- real node and real headless Chromium -------------------------------------------------------------------


@pytest.fixture(scope="session")
def node_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """onnxruntime-node, onnxruntime-web and the image decoders from npm, installed once per test session."""
    return npm_install(tmp_path_factory, "zoo-test", NPM_PACKAGES)


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


# --- one image, one decoding: training, zoo predict, python, node and Chromium give the graph the same uint8 ------


def _with_channels(folder: Path, channels: int, copy: Path) -> Path:
    """A copy of a deploy folder that decodes to ``channels`` (only deploy.json changes; --pixels runs no graph)."""
    shutil.copytree(folder, copy, symlinks=True)
    info = json.loads((copy / "deploy.json").read_text())
    (copy / "deploy.json").write_text(json.dumps({**info, "channels": channels}))
    return copy


def _by_image(results: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    return {Path(r["image"]).name: np.asarray(r["data"], np.uint8).reshape(r["shape"]) for r in results}


def test_one_image_one_decoding_in_training_predict_python_node_and_chromium(
        cnn: Path, tmp_path: Path, node_modules: Path, chromium: str, serve: Any) -> None:
    """16-bit grey was clipped to white in python (node read it right); alpha was dropped in python and node and
    premultiplied in the browser; run.js could not read JPEG. Now every shared image gives identical pixels."""
    from zoo.data.lazy import LazyImages
    from zoo.data.readers import load_image

    from .decoding_images import write_images

    files = write_images(tmp_path / "images")
    names = [f.name for f in files]
    python = tmp_path / "python1"
    assert CliRunner().invoke(cli, ["deploy", str(cnn), "--target", "python", "--out", str(python)]).exit_code == 0
    node = _deploy(cnn, "node", tmp_path / "node1", node_modules)
    web = _deploy(cnn, "web", tmp_path / "web1", node_modules)
    for channels in (1, 3):
        mode = "L" if channels == 1 else "RGB"
        want = {f.name: load_image(f, mode=mode) for f in files}  # the reader of training and of `zoo predict`
        lazy = LazyImages(files, mode=mode, size=(13, 7), scale=1.0, mean=[0.0] * channels, std=[1.0] * channels)
        for i, name in enumerate(names):  # training's imagefolder reader, before its resize (here: none)
            assert np.array_equal(lazy.pixels(i), want[name].transpose(2, 0, 1)), name
        got = {}
        folders = {target: folder if channels == 1 else _with_channels(folder, 3, tmp_path / f"{target}3")
                   for target, folder in (("python", python), ("node", node), ("web", web))}
        done = subprocess.run([sys.executable, "run.py", "--pixels", *map(str, files)], cwd=folders["python"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        got["python"] = _by_image(json.loads(done.stdout))
        done = subprocess.run(["node", "run.js", "--pixels", *map(str, files)], cwd=folders["node"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        got["node"] = _by_image(json.loads(done.stdout))
        for file in files:
            shutil.copy(file, folders["web"] / file.name)
        got["chromium"] = _by_image(_page_result(chromium, f"{serve(folders['web'])}?pixels={','.join(names)}"))
        for target, pixels in got.items():
            for name in names:
                assert pixels[name].shape == want[name].shape, (target, name, channels)
                differ = int((pixels[name] != want[name]).sum())
                assert differ == 0, f"{target}: {name} ({channels} channels) differs in {differ} values"


def test_deploy_node_reads_jpeg_and_its_errors_are_one_line(cnn: Path, images: list[str], tmp_path: Path,
                                                            node_modules: Path) -> None:
    """run.js failed on any JPEG (`unrecognised content at end of stream`) and printed stack traces."""
    from PIL import Image

    folder = _deploy(cnn, "node", tmp_path / "node", node_modules)
    jpegs = []
    for file in images[:10]:
        jpeg = tmp_path / (Path(file).stem + ".jpg")
        Image.open(file).save(jpeg, quality=90)
        jpegs.append(str(jpeg))
    run = subprocess.run(["node", "run.js", *jpegs], cwd=folder, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    _agree(json.loads(run.stdout), _zoo_predict(cnn, jpegs), atol=0.05)
    shown = subprocess.run(["node", "run.js", "--help"], cwd=folder, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "--samples" in shown.stdout and not shown.stderr
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0broken")
    for args, fragment in ((["missing.png"], "missing.png does not exist"), (["broken.jpg"], "not a readable"),
                           (["--samples", "2"], "classifier"), (["--seed", "-1"], "--seed"), ([], "give image files"),
                           (["--bogus"], "--bogus")):
        done = subprocess.run(["node", "run.js", *args], cwd=folder, capture_output=True, text=True, timeout=60)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and fragment in lines[0], (args, done.stderr)


def test_the_node_sampler_noise_is_a_seeded_32_bit_generator(export_briefly: Any, tmp_path: Path,
                                                             node_modules: Path) -> None:
    """The noise was a float64 LCG past 2^53 that cycled after ~16k draws, with a fixed seed."""
    gan = _deploy(export_briefly("gan").bundle_dir, "node", tmp_path / "gan", node_modules)
    script = """const { mulberry32, noise } = require("./noise.js");
    const u = mulberry32(7), draws = new Set();
    for (let i = 0; i < 200000; i++) draws.add(u());
    const z = noise(20000, "standard_normal", 1), mean = z.reduce((a, b) => a + b) / z.length;
    const sd = Math.sqrt(z.reduce((a, b) => a + (b - mean) ** 2, 0) / z.length);
    const v = noise(20000, "uniform", 1);
    const seeded = (s) => noise(64, "x", s).join();
    console.log(JSON.stringify({ distinct: draws.size, mean, sd, low: Math.min(...v), high: Math.max(...v),
      same: seeded(5) === seeded(5), other: seeded(5) !== seeded(6) }));"""
    done = subprocess.run(["node", "-e", script], cwd=gan, capture_output=True, text=True, timeout=60)
    stats = json.loads(done.stdout)
    assert stats["distinct"] > 199_900  # no cycle (a 16k cycle gives 16k); 32-bit values: a few birthday repeats
    assert abs(stats["mean"]) < 0.05 and abs(stats["sd"] - 1) < 0.05
    assert -1 < stats["low"] < -0.99 and 0.99 < stats["high"] < 1
    assert stats["same"] and stats["other"]

    def draw(seed: int, where: str) -> list[bytes]:
        out = tmp_path / where
        out.mkdir()
        done = subprocess.run(["node", str(gan / "run.js"), "--samples", "3", "--seed", str(seed)], cwd=out,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and json.loads(done.stdout)["seed"] == seed, done.stderr
        return [(out / f"sample_{k}.png").read_bytes() for k in range(3)]

    assert draw(1, "a") == draw(1, "b") != draw(2, "c")


def test_the_web_pages_show_tables_grids_and_only_the_controls_the_model_can_use(
        cnn: Path, images: list[str], export_briefly: Any, tmp_path: Path, node_modules: Path, chromium: str,
        serve: Any) -> None:
    """Results were one line of JSON (92,519 px wide for 36 images), samples a 128×8 strip, a classifier page had a
    sampler button that threw and a sampler page a file picker that could not work."""
    web = _deploy(cnn, "web", tmp_path / "web", node_modules)
    chosen = [f for f in images if f.endswith("_8x8.png")][:4]
    for file in chosen:
        shutil.copy(file, web / Path(file).name)
    url = f"{serve(web)}?image={','.join(Path(f).name for f in chosen)}"
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=120000",
                          "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert '<table id="results">' in dom and dom.count('class="input"') == 4
    assert 'id="file"' in dom and 'id="draw"' not in dom
    assert '<pre id="result" hidden="">RESULT' in dom  # the JSON is for scripts, not shown
    gan = _deploy(export_briefly("gan").bundle_dir, "web", tmp_path / "gan", node_modules)
    url = f"{serve(gan)}?samples=16&seed=3"
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=120000",
                          "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert 'id="draw"' in dom and 'id="file"' not in dom
    result = _page_result(chromium, url)
    assert result["grid"] == [4, 4] and result["seed"] == 3
    _, h, w, _ = result["shape"]
    assert f'<canvas id="samples" width="{4 * (w + 1) - 1}" height="{4 * (h + 1) - 1}"' in dom
