"""Assertions shared by the test modules."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
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
    """Every registered model that tests train and export: all but the large language-model presets, the
    real-size vision models (covered at small sizes by tests/test_vision.py) and the audio models (their data
    set is synthesised; tests/test_audio.py trains and exports them on a small one)."""
    from zoo.registry import build_catalog

    return sorted(name for name, spec in build_catalog().models.items()
                  if name not in LARGE_LM_PRESETS and spec.plugin not in ("vision", "audio"))


def pip_install_copy(package: Path, work: Path) -> Path:
    """Install the plugin package at ``package`` with pip into ``work/site`` (built from a copy under ``work``,
    offline, so no build files land in the repository); the folder to put on ``PYTHONPATH``."""
    source = work / "src"
    shutil.copytree(package, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(source)], check=True, capture_output=True, text=True)
    return site


def outside_harness(bundle: Path) -> list[str]:
    """What a harness of the ONNX-model-zoo layout does, without zoo: plain ONNX Runtime over every
    ``test_data_set_*`` of every graph folder the manifest lists, each output held to the manifest's declared
    tolerance (numpy's rule, |got - expected| <= atol + rtol * |expected|). Returns the failures."""
    import json

    import numpy as np
    import onnx
    import onnxruntime
    from onnx import numpy_helper

    def tensors(folder: Path, kind: str) -> list[np.ndarray]:
        found = sorted(folder.glob(f"{kind}_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
        return [numpy_helper.to_array(onnx.load_tensor(str(p))) for p in found]

    failures = []
    graphs = json.loads((bundle / "manifest.json").read_text())["graphs"]
    for name, entry in graphs.items():
        path = bundle / entry["file"]
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        inputs = [i.name for i in session.get_inputs()]
        folders = sorted(path.parent.glob("test_data_set_*"))
        assert folders, f"{name} has no test sets"
        for folder in folders:
            got = session.run(None, dict(zip(inputs, tensors(folder, "input"), strict=True)))
            for index, (out, want) in enumerate(zip(got, tensors(folder, "output"), strict=True)):
                miss = np.abs(out.astype(np.float64) - want) - (entry["atol"] + entry["rtol"] * np.abs(want))
                if out.shape != want.shape or miss.max(initial=0) > 0:
                    failures.append(f"{name}/{folder.name}/output_{index}: off by up to "
                                    f"{float(np.abs(out - want).max()):.3g} (atol {entry['atol']})")
    return failures


def write_wav(path: Path, samples: Any, rate: int, fmt: str = "int16") -> Path:
    """``samples`` (float in [-1, 1], N or N×channels) as a WAV file of ``fmt``: int16, int32, uint8, float32."""
    import numpy as np
    from scipy.io import wavfile

    x = np.asarray(samples, dtype=np.float64)
    data = {"int16": lambda: np.round(x * 32767).astype(np.int16),
            "int32": lambda: np.round(x * 2147483647).astype(np.int32),
            "uint8": lambda: np.round(x * 127 + 128).astype(np.uint8),
            "float32": lambda: x.astype(np.float32)}[fmt]()
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, rate, data)
    return path


#: (rate, format, channels) of the clips ``make_wav_folder`` writes, in turn: every decoding path is used.
WAV_VARIANTS = ((16000, "int16", 1), (44100, "int16", 2), (8000, "float32", 1), (22050, "int32", 1),
                (11025, "uint8", 2))


def make_wav_folder(root: Path, classes: tuple[str, ...] = ("no", "yes"), speakers: int = 6, takes: int = 2) -> Path:
    """A small folder in the Speech Commands layout (``root/<word>/<speaker>_nohash_<n>.wav`` and a
    ``_background_noise_`` folder): each class a tone of its own pitch, at a random place, over noise, in the
    rates and formats of :data:`WAV_VARIANTS`."""
    import numpy as np

    rng = np.random.default_rng(0)
    count = 0
    for label, word in enumerate(classes):
        for speaker in range(speakers):
            for take in range(takes):
                rate, fmt, channels = WAV_VARIANTS[count % len(WAV_VARIANTS)]
                count += 1
                t = np.arange(int(rate * rng.uniform(0.7, 1.2))) / rate
                tone = 0.5 * np.sin(2 * np.pi * (300 + 700 * label) * (1 + 0.05 * speaker) * t)
                tone *= (t > 0.2) & (t < 0.6)
                clip = tone + rng.normal(0, 0.01, len(t))
                if channels == 2:
                    clip = np.stack([clip, clip * 0.5], axis=1)
                write_wav(root / word / f"spk{speaker:02d}_nohash_{take}.wav", np.clip(clip, -1, 1), rate, fmt)
    write_wav(root / "_background_noise_" / "white.wav", rng.normal(0, 0.1, 16000).clip(-1, 1), 16000)
    return root


def npm_install(tmp_path_factory: Any, name: str, packages: Sequence[str]) -> Path:
    """``packages`` from npm into a fresh folder once (the CPU build of onnxruntime-node: no CUDA download); its
    ``node_modules``. Skips the calling test where node or npm is missing or the registry does not answer."""
    import os

    import pytest

    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are not installed here")
    folder = tmp_path_factory.mktemp(name)
    (folder / "package.json").write_text(f'{{"name": "{name}", "version": "1.0.0", "private": true}}')
    env = {**os.environ, "ONNXRUNTIME_NODE_INSTALL": "skip"}
    try:
        done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", *packages], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip("npm install timed out (offline?)")
    if done.returncode != 0:
        pytest.skip(f"npm install failed (offline?): {done.stderr.strip().splitlines()[-1:]}")
    return folder / "node_modules"
