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
