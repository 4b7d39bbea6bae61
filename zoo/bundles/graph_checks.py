"""Verification: does each graph of a bundle compute what it should, on every provider that runs here?

What "should" means comes in two kinds of :class:`Case`: the bundle's stored test vectors (needs
only ONNX Runtime, onnx and numpy) and fresh PyTorch outputs from the run (needs torch and the run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.bundles.parity import compare, top1_agreement
from zoo.errors import ZooError
from zoo.ort import CPU, CUDA, ISOLATED, TENSORRT, run_graph, usable_providers

#: Random-input batch sizes checked for every graph: 1 and a larger one (the batch axis is dynamic).
BATCH_SIZES = (1, 16)
#: At most this many real samples are pushed through each graph.
MAX_REAL_SAMPLES = 1024
#: GPU kernels sum in other orders than the CPU ones; fp32 on a GPU (TF32 off) is held to this floor.
GPU_MIN_TOLERANCE = 1e-4
PROVIDER_ALIASES = {"cpu": CPU, "cuda": CUDA, "tensorrt": TENSORRT, "trt": TENSORRT}
#: How the PyTorch reference is computed, recorded in every report (TF32 is off on both sides).
TORCH_REFERENCE = {"device": "cpu", "dtype": "float32", "tf32": False}


@dataclass
class Case:
    """One input set and the outputs the graph should give for it."""

    name: str
    inputs: list[np.ndarray]
    expected: list[np.ndarray]
    labels: np.ndarray | None = None  # true classes of real samples, when known
    #: False: shown in the report but not judged (a variant against fp32 on inputs outside its calibration).
    judged: bool = True
    #: What ``expected`` holds: the fp32 model's outputs, or (a variant's stored vectors) the graph's own.
    reference: str = "fp32"

    @property
    def real(self) -> bool:
        """Real validation samples (not random inputs)."""
        return "real" in self.name


FP32_REFERENCE, OWN_REFERENCE = "fp32", "own"


def against_fp32(cases: list[Case]) -> list[Case]:
    """Mark which fp32-output cases judge a variant (int8, fp16): the real samples, where the graph has them;
    otherwise (a generator, calibrated on its own random inputs) the random inputs, which are then its
    distribution. A variant is thus never judged on nothing. Returns the cases (marked in place)."""
    has_real = any(case.real for case in cases)
    for case in cases:
        case.judged = case.real or not has_real
    return cases


@dataclass
class GraphCheck:
    """One graph file to check, how strictly, and against what."""

    name: str
    path: Path
    input_names: list[str]
    output_names: list[str]
    atol: float
    rtol: float
    class_output: str | None = None
    #: Bundles from before role gates: a variant's accuracy could drop at most this much (a fraction).
    max_accuracy_drop: float | None = None
    cases: list[Case] = field(default_factory=list)
    #: ``fp32``, or the variant (``int8``, ``fp16``) its role's gate judges (:meth:`RoleHandlers.gate`).
    variant: str = "fp32"
    role: str | None = None
    role_info: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def gated(self) -> bool:
        """Whether this is a variant, judged on the task by its role's gate (not element by element alone)."""
        return self.variant != "fp32" or self.max_accuracy_drop is not None


def provider_name(name: str) -> str:
    provider = PROVIDER_ALIASES.get(name.lower(), name)
    if provider not in (CPU, CUDA, TENSORRT):
        raise ZooError(f"unknown provider {name!r}; use cpu, cuda or tensorrt")
    return provider


def resolve_providers(requested: list[str] | None, required: list[str] | None = None) -> tuple[list[str], dict]:
    """Providers to check: those asked for (each must really run), or every one that runs here.

    ``required`` providers must run here; otherwise a ZooError gives the reason.
    """
    usable, skipped = usable_providers()
    for name in required or []:
        provider = provider_name(name)
        if provider not in usable:
            raise ZooError(f"{name} is required but cannot run here: {skipped.get(provider, 'not available')}")
    if not requested:
        return list(usable), dict(skipped)
    chosen = []
    for name in requested:
        provider = provider_name(name)
        if provider not in usable:
            raise ZooError(f"provider {name} cannot run here: {skipped.get(provider, 'not available')}")
        chosen.append(provider)
    return chosen, {}


def input_sets(graph: Any, data: Any) -> list[tuple[str, tuple[np.ndarray, ...], np.ndarray | None]]:
    """Named input sets for one graph spec: random at each batch size, then real samples (with labels)."""
    rng = np.random.default_rng(1234)
    sets: list[tuple[str, tuple[np.ndarray, ...], np.ndarray | None]] = [
        (f"random-batch{b}", graph.random_inputs(b, rng), None) for b in BATCH_SIZES
    ]
    real = graph.real_inputs(data) if data is not None else None
    if real is not None:
        labels = graph.real_labels(data) if graph.real_labels is not None else None
        count = min(len(real[0]), MAX_REAL_SAMPLES)
        sets.append((f"real-batch{count}", tuple(np.ascontiguousarray(a[:count]) for a in real),
                     None if labels is None else np.asarray(labels[:count])))
    return sets


def torch_outputs(module: Any, inputs: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    """The module's outputs on the CPU in true fp32 (TF32 off), as numpy arrays.

    The caller's module goes back to its device and train/eval mode afterwards, and the process's TF32
    flags to what they were: computing a reference must not change the state of whoever asked for it."""
    import torch

    tensors = [*module.parameters(), *module.buffers()]
    device = tensors[0].device if tensors else torch.device("cpu")
    training = module.training
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            out = module.eval().cpu()(*(torch.from_numpy(np.ascontiguousarray(a)) for a in inputs))
        out = out if isinstance(out, (tuple, list)) else (out,)
        return [t.detach().cpu().numpy() for t in out]
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
        module.to(device).train(training)


def torch_cases(graph: Any, data: Any) -> list[Case]:
    """Fresh PyTorch outputs for a graph spec on random inputs at each batch size and on real samples."""
    return [Case(name, list(inputs), torch_outputs(graph.module, inputs), labels)
            for name, inputs, labels in input_sets(graph, data)]


def check_graphs(checks: list[GraphCheck], providers: list[str] | None = None,
                 required: list[str] | None = None) -> dict[str, Any]:
    """Run every graph on every provider and compare with its cases; the parity report."""
    chosen, skipped = resolve_providers(providers, required)
    report: dict[str, Any] = {"passed": True, "graphs": {}, "skipped_providers": skipped,
                              "torch_reference": TORCH_REFERENCE}
    for check in checks:
        per_provider: dict[str, Any] = {}
        for provider in chosen:
            result = check_on(check, provider)
            per_provider[provider] = result
            report["passed"] = report["passed"] and result["passed"]
        report["graphs"][check.name] = per_provider
    return report


def check_on(check: GraphCheck, provider: str) -> dict[str, Any]:
    """One graph on one provider against all its cases."""
    floor = GPU_MIN_TOLERANCE if provider in ISOLATED else 0.0
    atol, rtol = max(check.atol, floor), max(check.rtol, floor)
    feeds = [dict(zip(check.input_names, case.inputs, strict=True)) for case in check.cases]
    outputs, facts = run_graph(check.path, provider, feeds, output_names=list(check.output_names))
    return judge(check, outputs, atol=atol, rtol=rtol, facts=facts)


def judge(check: GraphCheck, outputs: list[list[np.ndarray]], *, atol: float, rtol: float,
          facts: dict[str, Any] | None = None) -> dict[str, Any]:
    """Outputs of one graph (one list per case, from any runtime) judged against the check's cases.

    A check passes only when it judged something: a graph whose every case is "not judged" fails, saying so.
    """
    rows: list[dict[str, Any]] = []
    agreement: float | None = None
    for case, actual in zip(check.cases, outputs, strict=True):
        for name, ref, got in zip(check.output_names, case.expected, actual, strict=True):
            rows.append({"inputs": case.name, "output": name, **compare(ref, got, atol=atol, rtol=rtol),
                         "judged": case.judged})
            if name == check.class_output and case.real and not check.gated and "error" not in rows[-1]:
                agreement = top1_agreement(ref, got)
    judged = [r for r in rows if r["judged"]]
    passed = bool(judged) and all(r["passed"] for r in judged)
    gate = _gate(check, outputs) if check.gated else None
    # fp32: every real sample gets the same class; a variant (int8, fp16) may change a few outputs, but not
    # fail its role's quality rule
    fair = (agreement is None or agreement == 1.0) if gate is None else gate.passed
    passed = passed and fair
    result: dict[str, Any] = {
        "passed": passed,
        "atol": atol,
        "rtol": rtol,
        "max_abs_diff": max((r.get("max_abs_diff", float("inf")) for r in judged), default=0.0),
        "max_rel_diff": max((r.get("max_rel_diff", float("inf")) for r in judged), default=0.0),
        "session": facts or {},
        "checks": rows,
    }
    if not judged:
        result["not_judged"] = "no input set was judged (every set is outside this graph's judged inputs)"
    if agreement is not None:
        result["top1_agreement"] = agreement
    if gate is not None:
        result.update(gate.metrics)
        result["gate"] = {"role": check.role, "rule": gate.rule, "passed": gate.passed, "metrics": dict(gate.metrics)}
    return result


def _gate(check: GraphCheck, outputs: list[list[np.ndarray]]) -> Any:
    """The variant judged by its role's gate (:meth:`zoo.role_handlers.RoleHandlers.gate`)."""
    from zoo.role_handlers import GateCase, GateEvidence, handlers_for
    from zoo.roles import GraphRole

    role, info = check.role, dict(check.role_info)
    if role is None and check.class_output is not None:  # a bundle from before roles: judged as a classifier
        role, info = GraphRole.CLASSIFIER, {"output": check.class_output}
    cases = tuple(  # the gate compares with fp32: a variant's own stored outputs are no evidence for it
        GateCase(case.name, dict(zip(check.input_names, case.inputs, strict=True)),
                 dict(zip(check.output_names, case.expected, strict=True)),
                 dict(zip(check.output_names, actual, strict=True)), case.labels)
        for case, actual in zip(check.cases, outputs, strict=True) if case.reference == FP32_REFERENCE)
    evidence = GateEvidence(check.name, check.variant, info, dict(check.metadata), cases)
    return handlers_for(role).gate(evidence)


#: The accuracy gate's noise allowance: a drop beyond ``max_accuracy_drop`` fails only when the net number of
#: samples lost exceeds this many standard deviations of the flips (McNemar's test, about 95 % one-sided at 2).
FLIP_SIGMAS = 2.0


def accuracy_gate(reference: np.ndarray, actual: np.ndarray, labels: np.ndarray,
                  max_drop: float | None) -> dict[str, Any]:
    """Accuracy of ``actual`` against ``reference`` on labelled samples, and whether the drop is allowed.

    A drop counts only when it is both larger than ``max_drop`` and larger than chance explains: the samples the
    variant gets newly wrong (``lost``) minus those it gets newly right (``gained``) must exceed ``FLIP_SIGMAS``
    × √(lost + gained). On 8 samples one flip (12.5 points) is noise; on 1,000 samples 20 net flips are not.
    """
    ref_right = reference.argmax(axis=1) == labels
    got_right = actual.argmax(axis=1) == labels
    lost, gained = int((ref_right & ~got_right).sum()), int((~ref_right & got_right).sum())
    drop = float(ref_right.mean() - got_right.mean()) if len(labels) else 0.0
    beyond_noise = lost - gained > FLIP_SIGMAS * float(np.sqrt(lost + gained))
    return {"reference_accuracy": float(ref_right.mean()) if len(labels) else 0.0,
            "accuracy": float(got_right.mean()) if len(labels) else 0.0, "accuracy_drop": drop,
            "accuracy_samples": len(labels), "accuracy_lost": lost, "accuracy_gained": gained,
            "accuracy_passed": max_drop is None or drop <= max_drop or not beyond_noise}


def format_table(report: dict[str, Any]) -> str:
    """The parity report as a readable table, one row per graph, provider, input set and output."""
    header = ("graph", "provider", "inputs", "output", "max abs", "mean abs", "p99 abs", "max rel", "p99 rel",
              "min atol", "atol/rtol", "result")
    rows = [header]
    for graph, providers in report["graphs"].items():
        for provider, result in providers.items():
            short = provider.replace("ExecutionProvider", "")
            for check in result["checks"]:
                if "error" in check:
                    rows.append((graph, short, check["inputs"], check["output"], check["error"], "", "", "", "", "",
                                 "", "FAIL"))
                    continue
                rows.append((
                    graph, short, check["inputs"], check["output"],
                    *(f"{check[k]:.1e}" for k in ("max_abs_diff", "mean_abs_diff", "p99_abs_diff", "max_rel_diff",
                                                   "p99_rel_diff", "min_passing_atol")),
                    f"{result['atol']:.0e}/{result['rtol']:.0e}",
                    "ok" if check["passed"] else "FAIL" if check.get("judged", True) else "(not judged)",
                ))
            if "not_judged" in result:
                rows.append((graph, short, "(all)", "", result["not_judged"], "", "", "", "", "", "", "FAIL"))
            if "top1_agreement" in result:
                rows.append((graph, short, "real samples", "top-1 agreement", f"{100 * result['top1_agreement']:.2f}%",
                             "", "", "", "", "", "", ""))
            if "accuracy" in result:
                limit = result.get("max_accuracy_drop")
                rows.append((graph, short, "real samples", "accuracy",
                             f"{100 * result['accuracy']:.2f}%", f"ref {100 * result['reference_accuracy']:.2f}%",
                             "", "", "", "", "" if limit is None else f"drop ≤{100 * limit:g}pt",
                             "" if limit is None else "ok" if result.get("accuracy_passed", True) else "FAIL"))
            if "gate" in result and "accuracy" not in result:
                shown = ", ".join(f"{k} {v:.4g}" for k, v in result["gate"].get("metrics", {}).items())
                rows.append((graph, short, "gate", result["gate"]["rule"], shown, "", "", "", "", "", "",
                             "ok" if result["gate"]["passed"] else "FAIL"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for graph, providers in report["graphs"].items():
        for provider, result in providers.items():
            if provider != CPU and result.get("session"):
                facts = ", ".join(f"{k}={v}" for k, v in result["session"].items())
                lines.append(f"{graph} on {provider}: {facts}")
    for name, dropped in (report.get("dropped_variants") or {}).items():
        lines.append(f"dropped {name} (failed its gate, not in the bundle): {dropped['reason']}")
    for provider, reason in report.get("skipped_providers", {}).items():
        lines.append(f"skipped {provider}: {reason}")
    if report.get("pytorch_skipped"):
        lines.append(f"not compared with PyTorch: {report['pytorch_skipped']}")
    lines.append("parity: " + ("PASSED" if report["passed"] else "FAILED"))
    return "\n".join(lines)
