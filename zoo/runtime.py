"""ONNX Runtime: importing it safely and finding out which execution providers really run here."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

#: Distributions that each install the ``onnxruntime`` Python package; two at once break each other.
ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino")

FIX = "pip uninstall -y {names} && pip install onnxruntime-gpu  (or onnxruntime where no GPU build exists)"


def installed_ort_distributions() -> list[str]:
    found = []
    for name in ORT_DISTRIBUTIONS:
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def import_onnxruntime() -> Any:
    """Import ``onnxruntime``, refusing a broken install with a one-line fix."""
    found = installed_ort_distributions()
    if len(found) > 1:
        raise ZooError(
            f"{' and '.join(found)} are installed together, which hides the CUDA provider; fix: "
            + FIX.format(names=" ".join(found))
        )
    try:
        import onnxruntime
    except ImportError as exc:
        raise ZooError(f"ONNX Runtime cannot be imported ({exc}); fix: {FIX.format(names=' '.join(found))}") from None
    onnxruntime.set_default_logger_severity(3)
    return onnxruntime


CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
#: Provider options that make CUDA compute in true fp32, so parity means parity (no TF32).
CUDA_OPTIONS = {"use_tf32": "0"}


def session(path: str, provider: str) -> Any:
    """An inference session on ``provider``; raises ZooError when that provider does not really run.

    ONNX Runtime silently falls back to the CPU when CUDA cannot start, so the provider in use is
    read back from the session.
    """
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    providers: list[Any] = [(CUDA, CUDA_OPTIONS), CPU] if provider == CUDA else [provider]
    try:
        sess = ort.InferenceSession(path, sess_options=options, providers=providers)
    except Exception as exc:
        raise ZooError(f"ONNX Runtime could not load {path} on {provider}: {exc}") from None
    if sess.get_providers()[0] != provider:
        raise ZooError(f"{provider} is listed by ONNX Runtime but could not start here")
    return sess


@cache
def usable_providers() -> tuple[tuple[str, ...], dict[str, str]]:
    """Providers that really run here, and why each other known one does not."""
    ort = import_onnxruntime()
    available = ort.get_available_providers()
    usable, skipped = [CPU], {}
    if CUDA in available:
        reason = _probe_cuda(ort)
        if reason:
            skipped[CUDA] = reason
        else:
            usable.append(CUDA)
    else:
        skipped[CUDA] = "this ONNX Runtime build has no CUDA provider (install onnxruntime-gpu)"
    return tuple(usable), skipped


def _probe_cuda(ort: Any) -> str:
    """Empty string when a tiny graph really runs on CUDA, else the reason it does not."""
    import tempfile

    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph(
        [node], "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.onnx"
        onnx.save(model, path)
        with _captured_stderr(Path(tmp) / "stderr.txt") as captured:
            try:
                session(str(path), CUDA)
            except ZooError as exc:
                reason = str(exc)
            else:
                return ""
        # ONNX Runtime writes the real cause (say, a missing libcublas) to the C-level stderr.
        detail = re.search(r"with error: (.*)", captured.read_text(errors="replace"))
        return f"{reason}: {detail.group(1).strip()}" if detail else reason


@contextlib.contextmanager
def _captured_stderr(path: Path) -> Iterator[Path]:
    """Send file descriptor 2 (where native libraries print) to ``path`` for the duration."""
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("wb") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield path
        finally:
            os.dup2(saved, 2)
            os.close(saved)
