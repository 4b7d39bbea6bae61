"""ONNX Runtime: importing it safely and finding out which execution providers really run here."""

from __future__ import annotations

import contextlib
import ctypes
import glob
import io
import json
import os
import re
import subprocess
import sys
import tempfile
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
        raise ZooError(f"ONNX Runtime cannot be imported ({exc}); fix: {FIX.format(names=' '.join(found))}") from exc
    onnxruntime.set_default_logger_severity(3)
    return onnxruntime


CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
#: Provider options that make each GPU provider compute in true fp32, so parity means parity (no TF32, no fp16).
GPU_OPTIONS = {CUDA: {"use_tf32": "0"}, TENSORRT: {"trt_fp16_enable": "False", "trt_int8_enable": "False"}}
#: Providers that run in a child process (one per check): a GPU library that crashes or hangs takes only
#: the child down, and every check starts from a fresh CUDA context.
ISOLATED = (CUDA, TENSORRT)


def provider_chain(provider: str) -> list[Any]:
    """What to pass ONNX Runtime for ``provider``: the provider with its options, then its fallbacks."""
    if provider == TENSORRT:
        return [(TENSORRT, GPU_OPTIONS[TENSORRT]), (CUDA, GPU_OPTIONS[CUDA]), CPU]
    if provider == CUDA:
        return [(CUDA, GPU_OPTIONS[CUDA]), CPU]
    return [provider]


def session(path: str, provider: str, *, threads: int = 0, spinning: bool = True) -> Any:
    """An inference session on ``provider``; raises ZooError when that provider does not really run.

    ``spinning=False`` lets the thread pool sleep between runs instead of spinning (a server shares its cores
    with its event loop).

    ONNX Runtime silently falls back to the CPU when CUDA cannot start, so the provider in use is
    read back from the session.
    """
    ort = import_onnxruntime()
    if provider != CPU:
        _preload_gpu_libraries()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        sess = ort.InferenceSession(path, sess_options=options, providers=provider_chain(provider))
    except Exception as exc:
        message = str(exc)
        if "ValidateOpsetForDomain" in message or "opset" in message.lower():
            raise ZooError(f"ONNX Runtime {ort.__version__} cannot run {path}: its opset is newer than this ONNX "
                           "Runtime supports; upgrade onnxruntime or export with a lower --opset") from exc
        raise ZooError(f"ONNX Runtime could not load {path} on {provider}: {_first_line(exc)}") from exc
    if sess.get_providers()[0] != provider:
        raise ZooError(f"{provider} is listed by ONNX Runtime but could not start here")
    return sess


@cache
def _preload_gpu_libraries() -> None:
    """Load CUDA and cuDNN from the nvidia pip packages (or torch's) so the GPU providers find them.

    Best effort: where nothing is found, the provider's own error says what is missing.
    """
    preload = getattr(import_onnxruntime(), "preload_dlls", None)
    if preload is None:
        return
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(Exception):
        preload()


def session_facts(sess: Any, provider: str) -> dict[str, Any]:
    """What the session reports about itself: providers in use and the options they really got."""
    options = sess.get_provider_options().get(provider, {})
    facts: dict[str, Any] = {"providers_in_use": list(sess.get_providers())}
    if provider == CUDA:
        facts["cuda_use_tf32"] = options.get("use_tf32")
        facts["device_id"] = options.get("device_id")
    if provider == TENSORRT:
        facts["trt_fp16_enable"] = options.get("trt_fp16_enable")
    return facts


def run_graph(path: str | Path, provider: str, feeds: list[dict[str, Any]], *,
              output_names: list[str] | None = None) -> tuple[list[list[Any]], dict[str, Any]]:
    """Run a graph on each feed dict; the outputs per feed and the session's facts.

    CPU runs here; CUDA and TensorRT run in a child process of their own (see :data:`ISOLATED`).
    """
    if provider in ISOLATED:
        return _run_in_child(Path(path), provider, feeds, output_names)
    sess = session(str(path), provider)
    return [sess.run(output_names, feed) for feed in feeds], session_facts(sess, provider)


def time_graph(path: str | Path, provider: str, feed: dict[str, Any], *, warmup: int, runs: int,
               threads: int) -> tuple[list[float], dict[str, Any]]:
    """Seconds per call of ``runs`` timed calls after ``warmup`` untimed ones, and the session's facts.

    CUDA and TensorRT are timed in a child process of their own, like every other GPU check.
    """
    if provider in ISOLATED:
        result = _child(Path(path), provider, [feed], None, {"warmup": warmup, "runs": runs, "threads": threads})
        return result["timings"], result["facts"]
    sess = session(str(path), provider, threads=threads)
    return _timed(sess, feed, warmup, runs), session_facts(sess, provider)


def _timed(sess: Any, feed: dict[str, Any], warmup: int, runs: int) -> list[float]:
    import time

    for _ in range(warmup):
        sess.run(None, feed)
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, feed)
        timings.append(time.perf_counter() - start)
    return timings


def _run_in_child(path: Path, provider: str, feeds: list[dict[str, Any]],
                  output_names: list[str] | None) -> tuple[list[list[Any]], dict[str, Any]]:
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="zoo-ort-") as tmp:
        result = _child(path, provider, feeds, output_names, {}, Path(tmp))
        outputs = []
        for index in range(len(feeds)):
            with np.load(Path(tmp) / f"outputs_{index}.npz", allow_pickle=False) as stored:
                outputs.append([stored[f"o{k}"] for k in range(len(stored.files))])
        return outputs, result["facts"]


def _child(path: Path, provider: str, feeds: list[dict[str, Any]], output_names: list[str] | None,
           extra: dict[str, Any], work: Path | None = None) -> dict[str, Any]:
    """Run :func:`_child_main` in a fresh Python process; its result (ZooError if it failed or died)."""
    if work is None:
        with tempfile.TemporaryDirectory(prefix="zoo-ort-") as tmp:
            return _child(path, provider, feeds, output_names, extra, Path(tmp))
    import numpy as np

    # Arrays travel as .npz without pickle, keyed by position (an input may be called anything).
    for index, feed in enumerate(feeds):
        np.savez(work / f"inputs_{index}.npz", **{f"i{k}": array for k, array in enumerate(feed.values())})
    (work / "request.json").write_text(json.dumps(
        {"model": str(path.resolve()), "provider": provider, "sets": len(feeds), "outputs": output_names,
         "inputs": [list(feed) for feed in feeds], **extra}))
    paths = [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    done = subprocess.run([sys.executable, "-m", "zoo.ort", str(work)], env=env, capture_output=True,
                          text=True, timeout=600)
    result_path = work / "result.json"
    if not result_path.exists():
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ZooError(f"the {provider} check process died (exit {done.returncode}): {tail}")
    result = json.loads(result_path.read_text())
    if result.get("error"):
        raise ZooError(result["error"])
    return result


def _child_main(work: Path) -> None:
    """The child side of :func:`run_graph`: load the session, run every input set, write the outputs."""
    import numpy as np

    request = json.loads((work / "request.json").read_text())
    provider = request["provider"]
    result: dict[str, Any] = {"error": None, "facts": {}}
    try:
        with _captured_stderr(work / "stderr.txt") as captured:
            try:
                sess = session(request["model"], provider, threads=request.get("threads", 0))
            except ZooError as exc:
                # ONNX Runtime writes the real cause (say, a missing libcublas) to the C-level stderr.
                detail = re.search(r"with error: (.*)", captured.read_text(errors="replace"))
                raise ZooError(f"{exc}: {detail.group(1).strip()}" if detail else str(exc)) from exc
        result["facts"] = session_facts(sess, provider)
        if request.get("runs"):
            result["timings"] = _timed(sess, _load_feed(work, request, 0), request["warmup"], request["runs"])
            request["sets"] = 0
        for index in range(request["sets"]):
            outputs = sess.run(request["outputs"], _load_feed(work, request, index))
            np.savez(work / f"outputs_{index}.npz", **{f"o{k}": out for k, out in enumerate(outputs)})
    except ZooError as exc:
        result["error"] = str(exc)
    except Exception as exc:
        result["error"] = f"{provider} failed: {type(exc).__name__}: {_first_line(exc)}"
    (work / "result.json").write_text(json.dumps(result, default=str))


def _load_feed(work: Path, request: dict[str, Any], index: int) -> dict[str, Any]:
    import numpy as np

    with np.load(work / f"inputs_{index}.npz", allow_pickle=False) as stored:
        return {name: stored[f"i{k}"] for k, name in enumerate(request["inputs"][index])}


@cache
def usable_providers() -> tuple[tuple[str, ...], dict[str, str]]:
    """Providers that really run here, and why each other known one does not (each probed in a child, once a
    process; not probed at all where :func:`no_gpu_reason` finds no driver)."""
    ort = import_onnxruntime()
    available = ort.get_available_providers()
    usable, skipped = [CPU], {}
    no_gpu = no_gpu_reason()
    for provider in ISOLATED:
        if provider not in available:
            skipped[provider] = f"this ONNX Runtime build has no {provider} (install onnxruntime-gpu)"
            continue
        reason = f"not probed: {no_gpu}" if no_gpu else _probe(provider)
        if reason:
            skipped[provider] = reason
        else:
            usable.append(provider)
    return tuple(usable), skipped


def no_gpu_reason() -> str:
    """Why no NVIDIA GPU can run here (so probing one would be wasted), or an empty string.

    Only Linux is judged: no NVIDIA device nodes (``/dev/nvidia*``, WSL's ``/dev/dxg``) and no
    loadable driver library (``libcuda.so.1``) means no driver. Elsewhere the probe decides.
    """
    if not sys.platform.startswith("linux") or glob.glob("/dev/nvidia*") or os.path.exists("/dev/dxg"):
        return ""
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no NVIDIA driver here (no /dev/nvidia* device nodes, no libcuda.so.1)"
    return ""


def _probe(provider: str) -> str:
    """Empty string when a tiny graph really runs on ``provider`` (in a child process), else why not."""
    import numpy as np
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
        try:
            _run_in_child(path, provider, [{"x": np.zeros(1, np.float32)}], None)
        except ZooError as exc:
            return str(exc)
    return ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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


if __name__ == "__main__":
    _child_main(Path(sys.argv[1]))
