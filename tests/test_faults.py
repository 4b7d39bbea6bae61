"""The fault campaign: every fault a user can cause ends in one line on stderr, the documented exit code,
no traceback, and every file that existed before is byte-identical afterwards (and nothing new appears).

One workspace per module holds copies of a finished run, an unfinished run, a bundle and broken data;
each case snapshots it (sha256 of every file) before and after the command.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli

# --- the workspace ---------------------------------------------------------------------------------


def _idx(path: Path, code: int, shape: tuple[int, ...], payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes([0, 0, code, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape) + payload)


def _mnist(folder: Path, code: int, shape: tuple[int, ...], payload: bytes, labels: bytes | None = None) -> str:
    _idx(folder / "train-images-idx3-ubyte", code, shape, payload)
    n = shape[0] if shape[0] < 2**20 else 10
    if labels is None:
        _idx(folder / "train-labels-idx1-ubyte", 0x08, (n,), bytes(i % 10 for i in range(n)))
    else:
        _idx(folder / "train-labels-idx1-ubyte", 0x0D, (n,), labels)
    return f"mnist:{folder}"


def _png(path: Path, width: int, height: int) -> None:
    """A PNG header (IHDR) claiming ``width``×``height``, with a tiny IDAT: enough for Pillow to open it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 8))
                     + chunk(b"IEND", b""))


def _real_png(path: Path, value: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def ws(train_briefly: Callable[[str], Any], export_briefly: Callable[[str], Any],
       tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("faults")
    run = Path(shutil.copytree(train_briefly("cnn").run_dir, root / "run"))
    bundle = Path(shutil.copytree(export_briefly("cnn").bundle_dir, root / "bundles" / run.name))
    unfinished = zoo.train("cnn", smoke=True, max_steps=1, out=root / "partial", progress=False).run_dir
    data = root / "data"
    f32 = np.full((4, 4, 4), np.nan, dtype=">f4").tobytes()
    sources = {
        "idx_nan": _mnist(data / "nan", 0x0D, (4, 4, 4), f32),
        "idx_overflow": _mnist(data / "overflow", 0x08, (2**32 - 1, 2**32 - 1, 2**32 - 1), b"\0" * 64),
        "idx_int16": _mnist(data / "int16", 0x0B, (4, 4, 4), np.full(64, 1000, dtype=">i2").tobytes()),
        "idx_magic": _mnist(data / "magic", 0x08, (4, 4, 4), b"\0" * 64),
        "idx_float_labels": _mnist(data / "flabels", 0x08, (4, 4, 4), b"\0" * 64, labels=b"\0" * 16),
        "idx_truncated": _mnist(data / "short", 0x08, (4, 4, 4), b"\0" * 10),
    }
    (data / "magic" / "train-images-idx3-ubyte").write_bytes(b"\x01\x02" + b"\0" * 70)
    np.savez(data / "empty.npz", images=np.zeros((10, 0, 0), np.uint8), labels=np.arange(10) % 2)
    np.savez(data / "nan.npz", images=np.full((10, 4, 4), np.nan, np.float32), labels=np.arange(10) % 2)
    for cls, value in (("a", 0), ("b", 255)):
        for i in range(3):
            _real_png(data / "bomb" / cls / f"{i}.png", value)
            _real_png(data / "emptyclass" / "b" / f"{i}.png", value)
            _real_png(data / "ok" / cls / f"{i}.png", value)
    _png(data / "bomb" / "a" / "huge.png", 50_000, 50_000)
    (data / "emptyclass" / "a").mkdir(parents=True)
    nonutf8 = os.fsencode(data / "nonutf8")
    os.makedirs(os.path.join(nonutf8, b"\xff"))
    os.makedirs(os.path.join(nonutf8, b"b"))
    for name in (b"\xff", b"b"):
        for i in range(3):
            _real_png(Path(os.fsdecode(os.path.join(nonutf8, name, f"{i}.png".encode()))), 7)
    configs = root / "configs"
    configs.mkdir()
    (configs / "bad.toml").write_text("epochs = = 3\n")
    (configs / "fast.toml").write_text('[hp]\nmomentum = "fast"\n')
    (configs / "unknown.toml").write_text("epoches = 3\n")
    (configs / "seed.toml").write_text("seed = -3\n")
    (root / "afile").write_text("not a folder\n")
    (root / "folder.png").mkdir()
    return SimpleNamespace(root=root, run=run, bundle=bundle, unfinished=Path(unfinished), data=data,
                           configs=configs, file=root / "afile", **sources)


def snapshot(root: Path) -> dict[str, str]:
    """Every file's sha256 and every folder (an empty run folder left behind counts as a change)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
            for p in sorted(root.rglob("*"))}


def check_fault(ws: SimpleNamespace, args: list[Any], *fragments: str, exit_code: int = 2,
                env: dict[str, str] | None = None) -> str:
    """Run ``zoo ARGS``: exit code, exactly one line on stderr, no traceback, nothing changed or added."""
    before = snapshot(ws.root)
    result = CliRunner().invoke(cli, [str(a) if not isinstance(a, bytes) else os.fsdecode(a) for a in args], env=env)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == exit_code, (result.output, result.exception)
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "internal error" not in lines[0], lines[0]
    assert snapshot(ws.root) == before
    return lines[0]


# --- the cases: (id, args from the workspace, fragments of the one line[, exit code]) -------------------

LONG = "x" * 300
CASES: list[tuple[str, Callable[[SimpleNamespace], list[Any]], tuple[str, ...]]] = [
    # training options
    ("seed-negative", lambda w: ["train", "cnn", "--seed", "-1"], ("--seed", "0 to")),
    ("seed-huge", lambda w: ["train", "cnn", "--seed", str(2**32)], ("--seed",)),
    ("image-size-huge", lambda w: ["train", "cnn", "--image-size", "20000x20000"], ("--image-size", "too large")),
    ("image-size-zero", lambda w: ["train", "cnn", "--image-size", "0x5"], ("--image-size",)),
    ("image-size-text", lambda w: ["train", "cnn", "--image-size", "big"], ("--image-size",)),
    ("num-classes-too-few", lambda w: ["train", "cnn", "--smoke", "--arg", "num_classes=2", "--out", w.root / "n"],
     ("num_classes=2", "10 classes")),
    ("arg-not-a-number", lambda w: ["train", "cnn", "--arg", "num_classes=many", "--out", w.root / "n"],
     ("num_classes",)),
    ("hp-momentum-text", lambda w: ["train", "cnn", "--hp", "momentum=fast", "--out", w.root / "n"], ("momentum",)),
    ("hp-unknown", lambda w: ["train", "cnn", "--hp", "speed=3", "--out", w.root / "n"], ("speed",)),
    ("config-folder", lambda w: ["train", "cnn", "--config", w.configs], ("is a folder",)),
    ("config-missing", lambda w: ["train", "cnn", "--config", w.root / "none.toml"], ("does not exist",)),
    ("config-bad-toml", lambda w: ["train", "cnn", "--config", w.configs / "bad.toml"], ("not valid TOML",)),
    ("config-hp-text", lambda w: ["train", "cnn", "--config", w.configs / "fast.toml", "--out", w.root / "n"],
     ("momentum",)),
    ("config-unknown-key", lambda w: ["train", "cnn", "--config", w.configs / "unknown.toml"], ("epoches",)),
    ("config-seed-negative", lambda w: ["train", "cnn", "--config", w.configs / "seed.toml"], ("seed",)),
    ("epochs-zero", lambda w: ["train", "cnn", "--epochs", "0"], ("--epochs",)),
    ("lr-negative", lambda w: ["train", "cnn", "--lr", "-1"], ("--lr",)),
    ("lr-nan", lambda w: ["train", "cnn", "--lr", "nan"], ("--lr",)),
    ("batch-size-zero", lambda w: ["train", "cnn", "--batch-size", "0"], ("--batch-size",)),
    ("accumulate-zero", lambda w: ["train", "cnn", "--accumulate", "0"], ("--accumulate",)),
    ("channels-two", lambda w: ["train", "cnn", "--channels", "2"], ("--channels",)),
    ("nproc-zero", lambda w: ["train", "cnn", "--nproc", "0"], ("--nproc",)),
    ("unknown-model", lambda w: ["train", "no-such-model"], ("no-such-model",)),
    ("no-model", lambda w: ["train"], ("name a model",)),
    ("unknown-dataset", lambda w: ["train", "cnn", "--data", "nope"], ("nope",)),
    ("out-is-a-file", lambda w: ["train", "cnn", "--smoke", "--out", w.file], ("is a file",)),
    ("out-under-a-file", lambda w: ["train", "cnn", "--smoke", "--out", w.file / "runs"], ("afile",)),
    ("out-too-long", lambda w: ["train", "cnn", "--smoke", "--out", w.root / LONG], ("File name too long",)),
    ("out-not-utf8", lambda w: ["train", "cnn", "--out", os.fsencode(w.root) + b"/r\xff"], ("not valid UTF-8",)),
    ("dataset-not-utf8", lambda w: ["train", "cnn", "--data", b"imagefolder:/tmp/\xff"], ("not valid UTF-8",)),
    # resuming
    ("resume-not-a-run", lambda w: ["train", "--resume", w.data], ("not a zoo run directory",)),
    ("resume-missing", lambda w: ["train", "--resume", w.root / "gone"], ("not a zoo run directory",)),
    ("resume-with-config", lambda w: ["train", "--resume", w.run, "--config", w.configs / "seed.toml"],
     ("do not mix",)),
    ("resume-other-lr", lambda w: ["train", "--resume", w.unfinished, "--lr", "0.5"], ("--lr", "0.02")),
    ("resume-other-seed", lambda w: ["train", "--resume", w.unfinished, "--seed", "5"], ("--seed",)),
    ("resume-other-model", lambda w: ["train", "resnet-small", "--resume", w.unfinished], ("resnet-small",)),
    ("resume-finished-same-lr", lambda w: ["train", "--resume", w.run, "--lr", "0.02"], ("already finished",)),
    ("resume-bad-world-size", lambda w: ["train", "--resume", w.run], ("WORLD_SIZE",), 2, {"WORLD_SIZE": "abc"}),
    ("world-size-zero", lambda w: ["train", "cnn"], ("WORLD_SIZE",), 2, {"WORLD_SIZE": "0", "RANK": "0"}),
    # data readers
    ("idx-nan-pixels", lambda w: ["train", "cnn", "--data", w.idx_nan, "--out", w.root / "n"], ("non-finite",)),
    ("idx-header-overflow", lambda w: ["train", "cnn", "--data", w.idx_overflow, "--out", w.root / "n"],
     ("truncated",)),
    ("idx-int16-range", lambda w: ["train", "cnn", "--data", w.idx_int16, "--out", w.root / "n"], ("0-255",)),
    ("idx-bad-magic", lambda w: ["train", "cnn", "--data", w.idx_magic, "--out", w.root / "n"], ("magic",)),
    ("idx-float-labels", lambda w: ["train", "cnn", "--data", w.idx_float_labels, "--out", w.root / "n"],
     ("labels",)),
    ("idx-truncated", lambda w: ["train", "cnn", "--data", w.idx_truncated, "--out", w.root / "n"],
     ("truncated",)),
    ("npz-empty-images", lambda w: ["train", "cnn", "--data", f"npz:{w.data / 'empty.npz'}", "--out", w.root / "n"],
     ("empty",)),
    ("npz-nan-images", lambda w: ["train", "cnn", "--data", f"npz:{w.data / 'nan.npz'}", "--out", w.root / "n"],
     ("finite",)),
    ("npz-missing", lambda w: ["train", "cnn", "--data", f"npz:{w.data / 'none.npz'}"], ("does not exist",)),
    ("png-bomb", lambda w: ["train", "cnn", "--data", f"imagefolder:{w.data / 'bomb'}", "--out", w.root / "n"],
     ("huge.png",)),
    ("class-folder-empty", lambda w: ["train", "cnn", "--data", f"imagefolder:{w.data / 'emptyclass'}"],
     ("holds no PNG",)),
    ("class-name-not-utf8", lambda w: ["train", "cnn", "--smoke", "--data", f"imagefolder:{w.data / 'nonutf8'}",
                                       "--out", w.root / "n"], ("not valid UTF-8",)),
    ("mnist-folder-missing", lambda w: ["train", "cnn", "--data", f"mnist:{w.root / 'nomnist'}"], ("nomnist",)),
    # export
    ("export-exists", lambda w: ["export", w.run, "--out", w.bundle.parent, "--no-verify"], ("already exists",)),
    ("export-out-file", lambda w: ["export", w.run, "--out", w.file, "--no-verify"], ("is a file",)),
    ("export-out-under-file", lambda w: ["export", w.run, "--out", w.file / "x", "--no-verify"], ("afile",)),
    ("export-out-too-long", lambda w: ["export", w.run, "--out", w.root / LONG, "--no-verify"],
     ("File name too long",)),
    ("export-not-a-run", lambda w: ["export", w.data], ("not a zoo run directory",)),
    ("export-opset", lambda w: ["export", w.run, "--opset", "5"], ("--opset",)),
    ("verify-unknown-provider", lambda w: ["verify", w.bundle, "--providers", "tpu"], ("tpu",)),
    # bundles: sample, predict, verify, bench
    ("sample-seed-negative", lambda w: ["sample", w.bundle, "--seed", "-5"], ("--seed",)),
    ("sample-out-folder", lambda w: ["sample", w.bundle, "--out", w.root / "folder.png"], ("is a folder",)),
    ("sample-n-zero", lambda w: ["sample", w.bundle, "--n", "0"], ("--n",)),
    ("sample-not-a-generator", lambda w: ["sample", w.bundle, "--out", w.root / "s.png"], ()),
    ("predict-missing-image", lambda w: ["predict", w.bundle, w.root / "none.png"], ("none.png",)),
    ("predict-not-a-bundle", lambda w: ["predict", w.run, w.root / "none.png"], ()),
    ("verify-not-a-bundle", lambda w: ["verify", w.run], ("manifest",)),
    ("bench-batch-sizes", lambda w: ["bench", w.bundle, "--batch-sizes", "a,b"], ("--batch-sizes",)),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_fault(ws: SimpleNamespace, case: tuple[Any, ...]) -> None:
    _, make_args, fragments, *rest = case
    exit_code, env = rest if rest else (2, None)
    check_fault(ws, make_args(ws), *fragments, exit_code=exit_code, env=env)


def test_the_campaign_is_large_enough() -> None:
    assert len(CASES) >= 60


# --- faults that need a hand: locks, the disk, plugins, interrupts -----------------------------------


def test_a_running_run_cannot_be_resumed_twice(ws: SimpleNamespace) -> None:
    from zoo.locks import run_lock

    with run_lock(ws.unfinished):  # another process trains it right now
        check_fault(ws, ["train", "--resume", ws.unfinished], "another zoo process")


@pytest.mark.parametrize("code, fragment", [(28, "No space left"), (30, "Read-only"), (13, "Permission denied")])
def test_disk_faults_name_the_file(ws: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, code: int,
                                   fragment: str) -> None:
    import zoo.engine.loop as loop

    target = ws.root / "full" / "run.toml"

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError(code, os.strerror(code), str(target))

    monkeypatch.setattr(loop.Trainer, "start", fail)
    line = check_fault(ws, ["train", "cnn", "--smoke", "--out", ws.root / "full"], fragment, str(target))
    assert "internal error" not in line


def test_out_of_memory_is_a_user_error(ws: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    import zoo.engine.loop as loop

    def fail(*args: Any, **kwargs: Any) -> None:
        raise MemoryError

    monkeypatch.setattr(loop.Trainer, "start", fail)
    check_fault(ws, ["train", "cnn", "--smoke", "--out", ws.root / "n"], "out of memory", "--batch-size")


def test_out_of_memory_in_a_plugins_code_is_not_blamed_on_the_plugin(ws: SimpleNamespace,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A MemoryError while the lm plugin tokenises was "plugin 'lm' failed in its own code (MemoryError: )"."""
    import zoo_lm.tokenizer as tokenizer

    def fail(*args: Any, **kwargs: Any) -> None:
        raise MemoryError

    monkeypatch.setattr(tokenizer, "_batches", fail)  # called from the plugin's encode_array
    line = check_fault(ws, ["train", "gpt-nano", "--smoke", "--hp", "tokenizer=bpe:300", "--out", ws.root / "n"],
                       "out of memory", "less data")
    assert "plugin" not in line


def test_ctrl_c_inside_a_library_is_an_interruption(ws: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    import zoo.bundles.bundle as bundle

    def exporter(*args: Any, **kwargs: Any) -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:  # what torch.onnx does: wraps it in an error of its own
            raise RuntimeError("exporter failed") from exc

    monkeypatch.setattr(bundle, "export_graph", exporter)
    result = CliRunner().invoke(cli, ["export", str(ws.run), "--out", str(ws.root / "ctrlc")])
    assert result.exit_code == 130 and result.stderr.strip() == "zoo: interrupted", result.output
    assert not any((ws.root / "ctrlc").glob("*")) if (ws.root / "ctrlc").exists() else True
    shutil.rmtree(ws.root / "ctrlc", ignore_errors=True)


BUILDER_RAISES = '''
from zoo.hookspecs import hookimpl
from zoo.specs import InputSpec, ModelSpec

def build(**kwargs):
    raise RuntimeError("the builder is broken")

@hookimpl
def register_models(register):
    register(ModelSpec(name="raiser", family="classifier", summary="raises", builder="{module}:build",
                       input=InputSpec(1, 8, 8)))
'''


def test_a_plugin_that_raises_is_named(ws: SimpleNamespace, make_plugin: Callable[..., Path]) -> None:
    make_plugin("raiser", BUILDER_RAISES.replace("{module}", "zoo_test_raiser"))
    check_fault(ws, ["train", "raiser", "--smoke", "--out", ws.root / "n"], "plugin 'raiser'",
                       "the builder is broken")
    assert not (ws.root / "n").exists() or not any((ws.root / "n").iterdir())


NOISY_PLUGIN = '''
import os, sys
sys.stdout.buffer.write(b"\\xff raw bytes\\n")
sys.stdout.buffer.flush()
os.write(1, b"fd one\\n")
print("printed")
'''


def test_a_plugin_writing_to_stdout_at_import_cannot_corrupt_json(make_plugin: Callable[..., Path]) -> None:
    import subprocess
    import sys

    site = make_plugin("noisy", NOISY_PLUGIN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "zoo", "list", "--json"], capture_output=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert isinstance(json.loads(proc.stdout), list)
    assert b"raw bytes" in proc.stderr and b"fd one" in proc.stderr


def test_broken_pipe_is_quiet() -> None:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "zoo", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # type: ignore[union-attr]  # the reader leaves at once: `zoo list | true`
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 141), err
    assert err == b"", err


def test_metrics_are_repaired_on_resume(tmp_path: Path) -> None:
    """A torn last line, a row past the checkpoint and a repeated epoch are all dropped; the CSV follows."""
    from zoo.engine.persistence import repair_metrics

    rows = [{"epoch": 1, "step": 10, "loss": 1.0}, {"epoch": 2, "step": 20, "loss": 0.5}]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    (tmp_path / "metrics.jsonl").write_text(text + json.dumps(rows[1]) + "\n" + json.dumps(
        {"epoch": 3, "step": 30, "loss": 0.1}) + '\n{"epoch": 4, "st')
    repair_metrics(tmp_path, 20)
    assert (tmp_path / "metrics.jsonl").read_text() == text
    assert (tmp_path / "metrics.csv").read_text().splitlines() == ["epoch,step,loss", "1,10,1.0", "2,20,0.5"]


def test_killed_between_weights_and_summary_is_finished_by_resume(ws: SimpleNamespace, tmp_path: Path) -> None:
    """Resume and export agree: without summary.json the run is unfinished; resume finishes it."""
    run = Path(shutil.copytree(ws.run, tmp_path / "run"))
    (run / "summary.json").unlink()
    result = CliRunner().invoke(cli, ["export", str(run), "--out", str(tmp_path / "ex"), "--no-verify"])
    assert result.exit_code == 2 and "zoo train --resume" in result.stderr, result.output
    result = CliRunner().invoke(cli, ["train", "--resume", str(run)])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "summary.json").read_text())["steps"] > 0


def test_publish_never_replaces_a_bundle_that_appeared_meanwhile(tmp_path: Path) -> None:
    from zoo.bundles.publish import publish
    from zoo.errors import ZooError

    final, staging = tmp_path / "b", tmp_path / ".b.staging-1"
    for folder, text in ((final, "theirs"), (staging, "ours")):
        folder.mkdir()
        (folder / "manifest.json").write_text(text)
    with pytest.raises(ZooError, match="appeared while"):
        publish(staging, final, force=False)
    assert (final / "manifest.json").read_text() == "theirs"
    publish(staging, final, force=True)
    assert (final / "manifest.json").read_text() == "ours"


def test_a_killed_force_replace_is_restored(tmp_path: Path) -> None:
    """Killed between moving the old bundle aside and renaming the new one: the next export puts it back."""
    from zoo.bundles.publish import recover

    old = tmp_path / ".b.old-99999"
    old.mkdir()
    (old / "manifest.json").write_text("old")
    recover(tmp_path / "b")
    assert (tmp_path / "b" / "manifest.json").read_text() == "old" and not old.exists()
    old.mkdir()
    recover(tmp_path / "b")  # a bundle is in place: the leftover is only removed
    assert not old.exists() and (tmp_path / "b" / "manifest.json").read_text() == "old"


def _zoo(args: list[str], cwd: Path, kill_after: float | None = None) -> tuple[int, str]:
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "zoo", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def test_kill_9_leaves_every_artefact_usable(ws: SimpleNamespace, tmp_path: Path) -> None:
    """A few kills of the campaign in benchmarks/kill_campaign.py: train, then export --force."""
    import random

    from zoo.bundles import verify_bundle
    from zoo.bundles.publish import recover
    from zoo.engine.persistence import prepare_resume
    from zoo.errors import ZooError
    from zoo.runs import load_run

    rng = random.Random(10)
    for i in range(2):
        out = tmp_path / f"train{i}"
        _zoo(["train", "cnn", "--smoke", "--out", str(out)], tmp_path, kill_after=rng.uniform(3, 12))
        for run_dir in out.iterdir() if out.exists() else []:
            try:  # resume and export must agree: exactly one of them accepts the run (or neither, if not started)
                prepare_resume(run_dir, None, {}, 1)
                resumable = True
            except ZooError as exc:
                resumable = False
                assert "already finished" in str(exc) or "first checkpoint" in str(exc) or "not a zoo run" in str(exc)
            try:
                load_run(run_dir)
                exportable = True
            except ZooError:
                exportable = False
            assert not (resumable and exportable)
    bundles = Path(shutil.copytree(ws.bundle.parent, tmp_path / "bundles"))
    final = bundles / ws.run.name
    for _ in range(2):
        _zoo(["export", str(ws.run), "--out", str(bundles), "--no-verify", "--force"], tmp_path,
             kill_after=rng.uniform(4, 20))
        recover(final)
        assert verify_bundle(final, providers=["cpu"], bundle_only=True)["passed"]


def _damaged_checkpoint(ws: SimpleNamespace, root: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of the unfinished run whose last checkpoint went through ``change`` (on its tensors)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    run = Path(shutil.copytree(ws.unfinished, root / "run"))
    last = run / "checkpoints" / "last.safetensors"
    with safe_open(str(last), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a dict
    change(tensors)
    last.unlink()  # a hard link to the step file: write a file of its own
    save_file(tensors, str(last), metadata=metadata)
    return run


def test_checkpoint_without_rng_states(ws: SimpleNamespace, tmp_path: Path) -> None:
    def drop_rng(tensors: dict[str, Any]) -> None:
        for key in [k for k in tensors if k.startswith("rng/")]:
            del tensors[key]

    run = _damaged_checkpoint(ws, tmp_path, drop_rng)
    check_fault(SimpleNamespace(root=tmp_path), ["train", "--resume", run], "RNG states", "last.safetensors")


def test_checkpoint_optimizer_tensor_of_the_wrong_shape(ws: SimpleNamespace, tmp_path: Path) -> None:
    import torch

    def reshape(tensors: dict[str, Any]) -> None:
        key = next(k for k in tensors if k.startswith("optim/") and tensors[k].ndim > 1)
        tensors[key] = torch.zeros(3, 3)

    run = _damaged_checkpoint(ws, tmp_path, reshape)
    check_fault(SimpleNamespace(root=tmp_path), ["train", "--resume", run], "optimizer", "(3, 3)")


def test_an_image_lost_mid_run_is_one_line() -> None:
    """DataLoader re-raises a worker's error with the worker's traceback in the message: one line again."""
    from zoo.data.readers import DataError
    from zoo.data.torch_data import worker_errors_as_one_line

    def loader() -> Any:
        yield 1
        raise DataError("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
                        "last):\n  File \"x.py\", line 1\nzoo.data.readers.DataError: /data/a/1.png does not exist")

    items = worker_errors_as_one_line(loader())
    assert next(items) == 1
    with pytest.raises(DataError) as caught:
        next(items)
    assert str(caught.value) == "/data/a/1.png does not exist"


def test_nproc_errors_are_one_line_once(tmp_path: Path) -> None:
    code, err = _zoo(["train", "cnn", "--nproc", "2", "--smoke", "--arg", "num_classes=2", "--out", str(tmp_path)],
                     tmp_path)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --arg num_classes=2"), err
    assert not any(tmp_path.iterdir())


def test_torchrun_output_filter_keeps_the_workers_lines() -> None:
    import io

    from zoo.engine.distributed import StderrFilter

    sink = io.BytesIO()
    stream = StderrFilter(sink)
    for chunk in (b"W1128 23:45:01.000 123 torch/distributed/run.py:1] \n*****\n", b"epoch 1/2 loss=1\n",
                  b"zoo: interrupted by SIGTERM at step 6\n", b"E1128 23:45:09 1 api.py:1] failed\n",
                  b"Traceback (most recent call last):\n  File \"run.py\"\nChildFailedError: boom\n",
                  b"Error: one line\n"):
        stream.feed(chunk)
    stream.close()
    stream.release()  # the launcher's call once torchrun ended without a worker killed by a signal
    assert sink.getvalue() == b"epoch 1/2 loss=1\nzoo: interrupted by SIGTERM at step 6\nError: one line\n"


# --- hardening 3: report, runs, verify on forged bundles, --init, generate, resource limits ------------------


def _resign(bundle: Path) -> None:
    """Recompute the manifest's hashes after a change, as a buggy or malicious exporter would."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"] = {p.relative_to(bundle).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                         for p in sorted(bundle.rglob("*")) if p.is_file() and p.name != "manifest.json"}
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_report_out_an_existing_folder_names_it(ws: SimpleNamespace) -> None:
    line = check_fault(ws, ["report", ws.run, "--out", ws.root / "folder.png"], "folder.png", "Is a directory")
    assert "/." not in line and ".tmp" not in line  # never the hidden temporary file


def test_a_path_too_long_in_a_built_in_plugin_is_the_users(ws: SimpleNamespace) -> None:
    line = check_fault(ws, ["train", "cnn", "--data", f"imagefolder:{ws.root / LONG}"], "File name too long")
    assert "plugin" not in line


def test_one_forged_summary_does_not_hide_the_other_runs(ws: SimpleNamespace, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    good = Path(shutil.copytree(ws.run, root / "good"))
    forged = Path(shutil.copytree(ws.run, root / "forged"))
    summary = json.loads((forged / "summary.json").read_text())
    (forged / "summary.json").write_text(json.dumps({**summary, "seconds": "soon", "epochs": "many"}))
    result = CliRunner().invoke(cli, ["runs", "--root", str(root), "--exports", str(tmp_path / "none")])
    assert result.exit_code == 0, result.output
    assert good.name in result.output and forged.name in result.output
    result = CliRunner().invoke(cli, ["runs", "--root", str(root), "--json"])
    assert {r["run"]: r["seconds"] for r in json.loads(result.stdout)}["forged"] is None


def test_a_training_run_shows_as_running(ws: SimpleNamespace, tmp_path: Path) -> None:
    from zoo.locks import run_lock

    root = tmp_path / "runs"
    run = Path(shutil.copytree(ws.unfinished, root / "live"))
    for name in ("summary.json", "model.safetensors"):  # mid-training: a checkpoint, no final files yet
        (run / name).unlink()
    with run_lock(run):  # another process trains it right now
        result = CliRunner().invoke(cli, ["runs", "--root", str(root), "--json"])
        assert json.loads(result.stdout)[0]["status"] == "running", result.output
    result = CliRunner().invoke(cli, ["runs", "--root", str(root), "--json"])
    assert json.loads(result.stdout)[0]["status"] == "stopped"


def test_compare_shows_the_epochs_a_smoke_run_trained(ws: SimpleNamespace, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["runs", "--compare", str(ws.unfinished), str(ws.run), "--json", "--plot",
                                      str(tmp_path / "compare.png")])
    options = {o["name"]: o["values"] for o in json.loads(result.stdout)["options"]}
    assert options["hyperparameters.epochs"][0] == 2  # --smoke, not the model's default


def _vector(array: np.ndarray) -> bytes:
    from onnx import numpy_helper

    return numpy_helper.from_array(array, name="x").SerializeToString()


FORGERIES: list[tuple[str, str, Callable[[np.ndarray], bytes], str]] = [
    ("input-rank", "input_0.pb", lambda x: _vector(np.zeros((3, 5), np.float32)), "input_0.pb"),
    ("input-dtype", "input_0.pb", lambda x: _vector(x.astype(np.int64)), "int64"),
    ("output-shape", "output_0.pb", lambda x: _vector(np.zeros((3,), np.float32)), "output_0.pb"),
    ("extra-output", "output_1.pb", lambda x: _vector(np.zeros((3,), np.float32)), "holds 2 tensor(s)"),
    ("graph-garbage", "../model.onnx", lambda x: b"\x08\x07garbage", "not a readable ONNX graph"),
]


@pytest.mark.parametrize("case", FORGERIES, ids=[c[0] for c in FORGERIES])
def test_verify_bundle_only_on_a_forged_bundle_is_one_line(ws: SimpleNamespace, tmp_path: Path,
                                                           case: tuple[Any, ...]) -> None:
    """A forged test vector or graph with its manifest hash updated: one line, not an internal error."""
    from onnx import numpy_helper

    _, name, forge, fragment = case
    bundle = Path(shutil.copytree(ws.bundle, tmp_path / "b"))
    folder = bundle / "model" / "test_data_set_2"
    x = numpy_helper.to_array(__import__("onnx").load_tensor(str(folder / "input_0.pb")))
    (folder / name).write_bytes(forge(x))
    _resign(bundle)
    check_fault(SimpleNamespace(root=tmp_path), ["verify", bundle, "--bundle-only"], fragment)


def test_verify_on_a_graph_with_other_inputs_is_one_line(ws: SimpleNamespace, tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    bundle = Path(shutil.copytree(ws.bundle, tmp_path / "b"))
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 1, 8, 8]) for n in ("y", "z")]
    graph = helper.make_graph([helper.make_node("Relu", ["y"], ["z"])], "g", io[:1], io[1:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(bundle / "model" / "model.onnx"))
    _resign(bundle)
    check_fault(SimpleNamespace(root=tmp_path), ["verify", bundle, "--bundle-only"], "the manifest declares")


# --- --init input ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def init_files(ws: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Weights files for --init, kept outside the workspace (a FIFO cannot be hashed by a snapshot)."""
    import torch
    from safetensors.torch import load_file, save_file

    root = tmp_path_factory.mktemp("init")
    state = load_file(str(ws.run / "model.safetensors"))
    save_file({k: (v * 100).to(torch.int32) if v.is_floating_point() else v for k, v in state.items()},
              str(root / "int32.safetensors"))
    nan = dict(state)
    first = next(k for k, v in state.items() if v.is_floating_point())
    nan[first] = torch.full_like(state[first], float("nan"))
    save_file(nan, str(root / "nan.safetensors"))
    os.mkfifo(root / "fifo.safetensors")
    (root / "folder.safetensors").mkdir()
    (root / "zero.safetensors").symlink_to("/dev/zero")
    return SimpleNamespace(root=root, first=first)


INIT_CASES = [
    ("int32", "int32.safetensors", ("int32", "not cast")),
    ("nan", "nan.safetensors", ("NaN",)),
    ("fifo", "fifo.safetensors", ("FIFO",)),
    ("folder", "folder.safetensors", ("is a folder",)),
    ("symlink-dev-zero", "zero.safetensors", ("character device", "/dev/zero")),
]


@pytest.mark.parametrize("case", INIT_CASES, ids=[c[0] for c in INIT_CASES])
def test_init_input_is_refused_in_one_line(ws: SimpleNamespace, init_files: SimpleNamespace,
                                           case: tuple[Any, ...]) -> None:
    _, name, fragments = case
    line = check_fault(ws, ["train", "cnn", "--smoke", "--init", init_files.root / name, "--out", ws.root / "n"],
                       name, *fragments)
    if name == "nan.safetensors":
        assert init_files.first in line  # the tensor is named
    assert not (ws.root / "n").exists() or not any((ws.root / "n").iterdir())


def _zoo_limited(args: list[str], cwd: Path, file_size: int) -> tuple[int, str]:
    """``zoo ARGS`` under ``ulimit -f`` (bytes): files past that size cannot be written."""
    import resource
    import subprocess
    import sys

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))

    proc = subprocess.run([sys.executable, "-m", "zoo", *args], cwd=cwd, capture_output=True, text=True,
                          preexec_fn=limit, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return proc.returncode, proc.stderr


@pytest.mark.parametrize("command", ["train", "export"])
def test_a_file_size_limit_names_the_file(ws: SimpleNamespace, tmp_path: Path, command: str) -> None:
    """`ulimit -f` during train or export: "file too large: PATH", exit 2, and nothing half-written left."""
    out = tmp_path / "out"
    args = ["train", "cnn", "--smoke"] if command == "train" else ["export", str(ws.run), "--no-verify"]
    code, err = _zoo_limited([*args, "--out", str(out)], tmp_path, 50_000)
    lines = err.strip().splitlines()
    assert code == 2 and lines[-1].startswith("Error: file too large: "), err
    assert str(out) in lines[-1] and ".staging" not in lines[-1] and "Traceback" not in err, err
    assert not out.exists() or not any(out.iterdir())


def _address_space_after_imports() -> int:
    """Bytes of address space a fresh process holds once torch, tokenizers and zoo's CLI are imported."""
    import subprocess
    import sys

    probe = ("import os, torch, tokenizers, zoo.cli, zoo_lm.family; "
             "print(int(open('/proc/self/statm').read().split()[0]) * os.sysconf('SC_PAGE_SIZE'))")
    return int(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_a_50_mb_single_line_under_a_memory_limit_is_one_line(tmp_path: Path) -> None:
    """A 50 MB text on one line, a BPE tokenizer, and an address-space limit (`ulimit -v`) 300 MB above what the
    imports take: the tokenizers library (Rust) aborted the process with a backtrace (exit 134) when an allocation
    failed; now the run stops in one line, exit 2, before the library is handed what the limit cannot hold."""
    import resource
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    words = np.array(["the", "model", "trains", "on", "one", "very", "long", "line", "of", "text", "42", "def"])
    text = tmp_path / "line.txt"
    with text.open("w") as handle:
        while handle.tell() < 50_000_000:
            handle.write(" ".join(rng.choice(words, 200_000)) + " ")
    assert text.read_bytes().count(b"\n") == 0
    limit = _address_space_after_imports() + (300 << 20)

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    proc = subprocess.run([sys.executable, "-m", "zoo", "train", "gpt-nano", "--data", f"text:{text}", "--hp",
                           "tokenizer=bpe:512", "--smoke", "--device", "cpu", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, preexec_fn=limited, timeout=400,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("Error: out of memory"), proc.stderr[-2000:]
    assert "backtrace" not in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# --- zoo generate (the checks live in the LM session and sampling options, which travel with the command) ------


@pytest.fixture(scope="module")
def lm_bundle(export_briefly: Callable[[str], Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(export_briefly("gpt-nano").bundle_dir)


def _lm_copy(lm_bundle: Path, root: Path, change: Callable[[Path], None] | None = None) -> Path:
    bundle = Path(shutil.copytree(lm_bundle, root / "lm"))
    if change is not None:
        change(bundle)
        _resign(bundle)
    return bundle


def _tokenizer(bundle: Path) -> Path:
    return next(bundle.rglob("tokenizer.json"))


GENERATE_CASES: list[tuple[str, Callable[[Path], None] | None, list[str], tuple[str, ...]]] = [
    ("forged-tokenizer", lambda b: _tokenizer(b).write_text('{"version": "1.0", "model": 3}'), ["--prompt", "def"],
     ("tokenizer.json", "cannot be read")),
    ("missing-tokenizer", lambda b: _tokenizer(b).unlink(), ["--prompt", "def"], ("tokenizer.json", "missing")),
    ("prompt-not-utf8", None, ["--prompt", os.fsdecode(b"def \xff")], ("--prompt", "UTF-8")),
    ("seed-negative", None, ["--prompt", "def", "--seed", "-1"], ("--seed",)),
]


@pytest.mark.parametrize("case", GENERATE_CASES, ids=[c[0] for c in GENERATE_CASES])
def test_generate_faults_are_one_line(lm_bundle: Path, tmp_path: Path, case: tuple[Any, ...]) -> None:
    _, change, args, fragments = case
    bundle = _lm_copy(lm_bundle, tmp_path, change)
    check_fault(SimpleNamespace(root=tmp_path), ["generate", bundle, *args, "--max-new-tokens", "2"], *fragments)


BRANCHY_PLUGIN = '''
from zoo.hookspecs import hookimpl
from zoo.specs import InputSpec, ModelSpec


def build(in_channels=1, num_classes=10, image_size=(8, 8)):
    import torch

    class Branchy(torch.nn.Module):
        """Takes one branch or the other on the value of its hidden activations."""

        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(in_channels * image_size[0] * image_size[1], num_classes)

        def forward(self, x):
            h = self.fc(x.flatten(1))
            if h.sum() > 0:
                return h * 2
            return h - 10

    return Branchy()


@hookimpl
def register_models(register):
    register(ModelSpec(name="branchy", family="classifier", summary="branches on a value",
                       builder="zoo_test_branchy:build", input=InputSpec(1, 8, 8)))
'''


def test_data_dependent_control_flow_is_refused_in_one_line(make_plugin: Callable[..., Path], tmp_path: Path) -> None:
    """The torchscript tracer keeps one branch of `if h.sum() > 0` (the graph was wrong by up to 10 on the other);
    the dynamo exporter refuses it, in one line now (it printed 107) with the cause."""
    make_plugin("branchy", BRANCHY_PLUGIN)
    run = zoo.train("branchy", smoke=True, out=tmp_path / "runs", progress=False).run_dir
    (tmp_path / "ex").mkdir()
    for exporter, fragment in (("torchscript", "branches on a tensor's value"), ("dynamo", "dynamo exporter")):
        line = check_fault(SimpleNamespace(root=tmp_path), ["export", run, "--exporter", exporter, "--out",
                                                            tmp_path / "ex"], fragment)
        assert len(line) < 600, line


def test_a_worker_killed_without_a_word_gets_one_line() -> None:
    """kill -9 of one FSDP/DDP worker: torchrun's report is dropped, and the launcher says who died and how."""
    import io

    from zoo.engine.distributed import StderrFilter

    sink = io.BytesIO()
    stream = StderrFilter(sink)
    stream.feed(b"epoch 1/2 loss=1\nTraceback (most recent call last):\n  File \"run.py\"\n"
                b"torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n"
                b"============================================================\nzoo FAILED\n"
                b"Failures:\n[1]:\n  rank      : 0 (local_rank: 0)\n  exitcode  : -15 (pid: 4241)  (SIGTERM)\n"
                b"Root Cause (first observed failure):\n[0]:\n  time      : 2026-12-06_09:00:00\n"
                b"  host      : box\n  rank      : 1 (local_rank: 1)\n  exitcode  : -9 (pid: 4242)\n"
                b"  error_file: <N/A>\n  traceback : Signal 9 (SIGKILL) received by PID 4242\n")
    stream.close()
    assert sink.getvalue() == b"epoch 1/2 loss=1\n" and not stream.worker_spoke
    line = stream.failure_line()
    assert "training process 1 was killed by SIGKILL" in line and "--resume" in line and "\n" not in line
    assert stream.exit_code() == 128 + 9  # not the process torchrun stopped itself (listed first)
    spoken = StderrFilter(io.BytesIO())
    spoken.feed(b"Error: --arg num_classes=2 is too few\n")
    assert spoken.worker_spoke and not spoken.killed()  # the worker said why: nothing is added
    assert spoken.sink.getvalue() == b""  # held until torchrun ends...
    spoken.release()
    assert spoken.sink.getvalue() == b"Error: --arg num_classes=2 is too few\n"  # ...then shown


MANIFEST_FORGERIES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("atol-text", lambda g: g.update(atol="tight"), "malformed"),
    ("atol-nan", lambda g: g.update(atol=float("nan")), "not a finite number"),
    ("drop-text", lambda g: g.update(max_accuracy_drop="one point"), "malformed"),
    ("opset-text", lambda g: g.update(opset="eighteen"), "opset must be a int"),
    ("role-info-not-json", lambda g: g["metadata"].update(zoo_role_info="{not json"), "not valid JSON"),
]


@pytest.mark.parametrize("case", MANIFEST_FORGERIES, ids=[c[0] for c in MANIFEST_FORGERIES])
def test_a_forged_manifest_is_one_line(ws: SimpleNamespace, tmp_path: Path, case: tuple[Any, ...]) -> None:
    """The manifest reader's json.loads and float() were unguarded (a NaN atol would even pass every element)."""
    _, forge, fragment = case
    bundle = Path(shutil.copytree(ws.bundle, tmp_path / "b"))
    manifest = json.loads((bundle / "manifest.json").read_text())
    forge(manifest["graphs"]["model"])
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    for command in (["verify", bundle, "--bundle-only"], ["predict", bundle, tmp_path / "none.png"]):
        check_fault(SimpleNamespace(root=tmp_path), command, fragment)
