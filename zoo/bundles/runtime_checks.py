"""Independent runtimes checking a bundle: each graph against its stored test vectors, as a deployer runs it.

``onnxruntime`` (the CPU provider), ``reference`` (onnx's own reference evaluator, always installed),
``openvino`` (``pip install plugzoo[openvino]``; f32 inference pinned, its CPU default is bf16 where the CPU
has it), ``openvino-default`` (OpenVINO at that default: shown, never deciding the verdict) and ``tract``
(``pip install plugzoo[tract]``; the symbolic batch bound to each case's batch, fp16 computed in f32 as ONNX
Runtime and OpenVINO do on a CPU).
Each graph ends as ``passed``, ``failed`` (it ran but missed the tolerance) or ``unsupported`` (the runtime
refused the graph: its reason is kept). Asking for a runtime that is not installed is a user error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.bundles.graph_checks import GraphCheck, judge
from zoo.errors import ZooError

RUNTIMES = ("onnxruntime", "reference", "openvino", "openvino-default", "tract")
#: Rows shown for information, never deciding the verdict: OpenVINO at its own default precision (bf16 on CPUs
#: that have it) is what a user who does not pin f32 gets, and it is expected to miss fp32 tolerances.
INFORMATIVE = ("openvino-default",)
#: What each runtime needs to reproduce the bundle (also printed in the card and the README).
REQUIREMENTS = {
    "onnxruntime": "nothing special (CPU provider)",
    "reference": "nothing (zoo writes int8 graphs at opset 19: DequantizeLinear at 18 is not implemented there); "
                 "it computes fp16 graphs in float16 arithmetic, as fp16 hardware would: can miss the fp16 tolerance",
    "openvino": "config {'INFERENCE_PRECISION_HINT': 'f32'}: its CPU default (bf16 on CPUs with AMX/AVX512-BF16) "
                "misses fp32 tolerances",
    "openvino-default": "nothing: OpenVINO's own default precision (bf16 on CPUs with AMX/AVX512-BF16, else f32), "
                        "shown for information, not judged against the verdict",
    "tract": "bind the batch symbol (transform SetSymbols({'batch': N})) and, for fp16 graphs on CPUs without "
             "fp16 arithmetic, FloatPrecision(F16, F32): its fp16 arithmetic misses the fp16 tolerance and is slow",
}
#: Runner: the inputs of one case (by graph input name) → outputs in graph output order.
Runner = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


class Unsupported(Exception):
    """The runtime cannot load or run this graph (an operator, a type, a shape it does not handle)."""


@dataclass(frozen=True)
class RuntimeCheck:
    """One graph on one runtime."""

    runtime: str
    graph: str
    status: str  # passed | failed | unsupported
    max_abs_diff: float | None = None
    reason: str = ""
    seconds: float = 0.0


def runtime_names(value: list[str] | None) -> list[str]:
    """Validated runtime names (default: all)."""
    names = value or list(RUNTIMES)
    unknown = [n for n in names if n not in RUNTIMES]
    if unknown:
        raise ZooError(f"unknown runtime {unknown[0]!r}; choose from {', '.join(RUNTIMES)}")
    return names


def availability(name: str) -> str | None:
    """Why a runtime cannot be used here (None when it can)."""
    module, extra = {"onnxruntime": ("onnxruntime", ""), "reference": ("onnx.reference", ""),
                     "openvino": ("openvino", "openvino"), "openvino-default": ("openvino", "openvino"),
                     "tract": ("tract", "tract")}[name]
    try:
        __import__(module)
    except ImportError as exc:
        how = f"pip install 'plugzoo[{extra}]'" if extra else "reinstall zoo"
        return f"{name} is not installed ({exc}); {how}"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def load_runner(name: str, path: Path, input_names: list[str]) -> Runner:
    """A runner for one graph file on one runtime; raises :class:`Unsupported` with the runtime's reason."""
    loader = {"onnxruntime": _onnxruntime, "reference": _reference, "openvino": _openvino,
              "openvino-default": _openvino_default, "tract": _tract}[name]
    try:
        return loader(path, input_names)
    except Unsupported:
        raise
    except Exception as exc:  # each runtime raises its own error types
        raise Unsupported(_first_line(exc)) from exc


def _onnxruntime(path: Path, input_names: list[str]) -> Runner:
    from zoo.ort import CPU, session

    sess = session(str(path), CPU, threads=1)
    return lambda feed: sess.run(None, feed)


def _reference(path: Path, input_names: list[str]) -> Runner:
    import onnx
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(onnx.load(str(path)))
    return lambda feed: list(evaluator.run(None, feed))


def _openvino(path: Path, input_names: list[str], config: dict[str, str] | None = None) -> Runner:
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32"} if config is None else config
    compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    request = compiled.create_infer_request()

    def run(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        result = request.infer(feed)
        return [np.asarray(result[output]) for output in compiled.outputs]

    return run


def _openvino_default(path: Path, input_names: list[str]) -> Runner:
    """OpenVINO with its own default inference precision (no hint), as a user's first try gets it."""
    return _openvino(path, input_names, {})


def _tract(path: Path, input_names: list[str]) -> Runner:
    import tract
    from tract.tensor import DatumType
    from tract.transform import FloatPrecision, SetSymbols

    symbols = batch_symbols(path)
    plans: dict[int, Any] = {}

    def plan(batch: int) -> Any:
        model = tract.onnx().load(str(path)).into_model()
        model.transform(FloatPrecision(DatumType.F16, DatumType.F32))  # f32 arithmetic, as ORT and OpenVINO here
        if symbols:
            model.transform(SetSymbols(dict.fromkeys(symbols, batch)))
        return model.into_runnable()

    plans[1] = plan(1)  # a graph tract cannot load fails here, as "unsupported"

    def run(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        batch = int(next(iter(feed.values())).shape[0])
        if batch not in plans:
            plans[batch] = plan(batch)
        return [np.asarray(o.to_numpy()) for o in plans[batch].run([feed[name] for name in input_names])]

    return run


def batch_symbols(path: Path) -> list[str]:
    """The symbolic names of the graph inputs' first (batch) dimensions."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    names = {i.type.tensor_type.shape.dim[0].dim_param for i in model.graph.input
             if i.type.tensor_type.shape.dim and i.type.tensor_type.shape.dim[0].dim_param}
    return sorted(names)


def check_graph_on(name: str, check: GraphCheck) -> RuntimeCheck:
    """Run one graph's stored cases on one runtime and judge them as ``zoo verify`` does."""
    start = time.perf_counter()
    try:
        runner = load_runner(name, check.path, check.input_names)
        outputs = []
        for case in check.cases:
            feed = dict(zip(check.input_names, case.inputs, strict=True))
            try:
                outputs.append([np.asarray(o) for o in runner(feed)])
            except Exception as exc:
                raise Unsupported(_first_line(exc)) from exc
    except Unsupported as exc:
        return RuntimeCheck(name, check.name, "unsupported", reason=str(exc),
                            seconds=time.perf_counter() - start)
    result = judge(check, outputs, atol=check.atol, rtol=check.rtol)
    return RuntimeCheck(name, check.name, "passed" if result["passed"] else "failed", result["max_abs_diff"],
                        seconds=time.perf_counter() - start)


def check_runtimes(checks: list[GraphCheck], runtimes: list[str]) -> list[RuntimeCheck]:
    """Every graph on every named runtime (all of them must be installed)."""
    names = runtime_names(runtimes)
    for name in names:
        missing = availability(name)
        if missing:
            raise ZooError(missing)
    return [check_graph_on(name, check) for name in names for check in checks]


def judged_nothing(rows: list[RuntimeCheck]) -> list[str]:
    """Runtimes that could run none of the graphs (every row ``unsupported``): they judged nothing."""
    names = dict.fromkeys(r.runtime for r in rows)
    return [n for n in names if all(r.status == "unsupported" for r in rows if r.runtime == n)]


def runtimes_passed(rows: list[RuntimeCheck], explicit: list[str] | None = None) -> bool:
    """True when no graph failed and no runtime the user named (``explicit``) judged nothing.

    ``unsupported`` is the runtime's named limitation, not a failure, for the runtimes ``all`` brings in; a
    runtime asked for by name must run at least one graph, or the answer is no.
    """
    named_but_not_run = set(judged_nothing(rows)) & set(explicit or []) - set(INFORMATIVE)
    return all(r.status != "failed" for r in rows if r.runtime not in INFORMATIVE) and not named_but_not_run


def runtime_summary(rows: list[RuntimeCheck]) -> list[str]:
    """One line per runtime: passed on how many graphs, failed, or not run (unsupported)."""
    lines = []
    for name in dict.fromkeys(r.runtime for r in rows):
        mine = [r for r in rows if r.runtime == name]
        ran = [r for r in mine if r.status != "unsupported"]
        failed = [r for r in ran if r.status == "failed"]
        if name in INFORMATIVE:
            lines.append(f"{name}: for information only ({len(ran) - len(failed)} of {len(mine)} graphs within "
                         "tolerance; not part of the verdict)")
        elif not ran:
            lines.append(f"{name}: not run: unsupported (it could load none of the {len(mine)} graphs)")
        elif failed:
            lines.append(f"{name}: FAILED on {len(failed)} of {len(mine)} graphs")
        else:
            rest = f"; not run on {len(mine) - len(ran)} (unsupported)" if len(ran) < len(mine) else ""
            lines.append(f"{name}: passed on {len(ran)} of {len(mine)} graphs{rest}")
    return lines


def format_runtimes(rows: list[RuntimeCheck], explicit: list[str] | None = None) -> str:
    """The runtime checks as a table, with the runtime's reason under each unsupported graph, then one line per
    runtime and the verdict (a runtime that ran no graph never reads as passed)."""
    lines = ["runtime      graph                          result                 max abs", "-" * 76]
    for r in rows:
        diff = "" if r.max_abs_diff is None else f"{r.max_abs_diff:.1e}"
        status = "not run: unsupported" if r.status == "unsupported" else r.status
        lines.append(f"{r.runtime:<12} {r.graph:<30} {status:<22} {diff}")
        if r.reason:
            lines.append(f"{'':<12} ↳ {r.reason}")
    lines.extend(runtime_summary(rows))
    lines.append("runtimes: " + ("PASSED" if runtimes_passed(rows, explicit) else "FAILED")
                 + " (only where a runtime ran; a runtime named in --runtimes that runs no graph fails)")
    return "\n".join(lines)
