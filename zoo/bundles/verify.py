"""Verification: does each exported graph compute what the PyTorch model computes, per provider?"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from zoo.bundles.parity import compare, top1_agreement
from zoo.errors import ZooError
from zoo.runtime import CPU, CUDA, session, usable_providers

#: Random-input batch sizes checked for every graph: 1 and a larger one (the batch axis is dynamic).
BATCH_SIZES = (1, 16)
#: At most this many real samples are pushed through each graph.
MAX_REAL_SAMPLES = 1024
#: CUDA kernels sum in other orders than the CPU ones; fp32 on CUDA (TF32 off) is held to this floor.
CUDA_MIN_TOLERANCE = 1e-4
PROVIDER_ALIASES = {"cpu": CPU, "cuda": CUDA}


def resolve_providers(requested: list[str] | None) -> tuple[list[str], dict[str, str]]:
    """Providers to check: those asked for (each must really run), or every one that runs here."""
    usable, skipped = usable_providers()
    if not requested:
        return list(usable), dict(skipped)
    chosen = []
    for name in requested:
        provider = PROVIDER_ALIASES.get(name.lower(), name)
        if provider not in (CPU, CUDA):
            raise ZooError(f"unknown provider {name!r}; use cpu or cuda")
        if provider not in usable:
            raise ZooError(f"provider {name} cannot run here: {skipped.get(provider, 'not available')}")
        chosen.append(provider)
    return chosen, {}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def input_sets(graph: Any, data: Any) -> list[tuple[str, tuple[np.ndarray, ...]]]:
    """Named input sets for one graph: random at each batch size, then real samples if it has any."""
    rng = np.random.default_rng(1234)
    sets = [(f"random-batch{b}", graph.random_inputs(b, rng)) for b in BATCH_SIZES]
    real = graph.real_inputs(data) if data is not None else None
    if real is not None:
        sets.append((f"real-batch{min(len(real[0]), MAX_REAL_SAMPLES)}",
                     tuple(np.ascontiguousarray(a[:MAX_REAL_SAMPLES]) for a in real)))
    return sets


def torch_outputs(module: Any, inputs: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        out = module.eval().cpu()(*(torch.from_numpy(a) for a in inputs))
    out = out if isinstance(out, (tuple, list)) else (out,)
    return [t.detach().cpu().numpy() for t in out]


def check_graphs(bundle_dir: Path, graphs: list[Any], data: Any, providers: list[str] | None = None) -> dict[str, Any]:
    """Compare every graph of a bundle with its PyTorch module on every provider; the parity report."""
    chosen, skipped = resolve_providers(providers)
    report: dict[str, Any] = {"passed": True, "bundle": str(bundle_dir), "graphs": {}, "skipped_providers": skipped}
    for graph in graphs:
        path = bundle_dir / f"{graph.name}.onnx"
        cases = [(name, inputs, torch_outputs(graph.module, inputs)) for name, inputs in input_sets(graph, data)]
        per_provider: dict[str, Any] = {}
        for provider in chosen:
            floor = CUDA_MIN_TOLERANCE if provider == CUDA else 0.0
            atol, rtol = max(graph.atol, floor), max(graph.rtol, floor)
            sess = session(str(path), provider)
            result = _check_one(sess, graph, cases, atol, rtol)
            per_provider[provider] = result
            report["passed"] = report["passed"] and result["passed"]
        report["graphs"][graph.name] = per_provider
    return report


def _check_one(sess: Any, graph: Any, cases: list[Any], atol: float, rtol: float) -> dict[str, Any]:
    checks = []
    agreement = None
    for case_name, inputs, expected in cases:
        feeds = dict(zip(graph.input_names, inputs, strict=True))
        actual = sess.run(list(graph.output_names), feeds)
        for output_name, ref, got in zip(graph.output_names, expected, actual, strict=True):
            checks.append({"inputs": case_name, "output": output_name, **compare(ref, got, atol=atol, rtol=rtol)})
            if graph.class_output == output_name and case_name.startswith("real"):
                agreement = top1_agreement(ref, got)
    result: dict[str, Any] = {
        "passed": all(c["passed"] for c in checks) and (agreement is None or agreement == 1.0),
        "atol": atol,
        "rtol": rtol,
        "max_abs_diff": max((c.get("max_abs_diff", float("inf")) for c in checks), default=0.0),
        "max_rel_diff": max((c.get("max_rel_diff", float("inf")) for c in checks), default=0.0),
        "checks": checks,
    }
    if agreement is not None:
        result["top1_agreement"] = agreement
    return result


def format_table(report: dict[str, Any]) -> str:
    """The parity report as a readable table, one row per graph, provider, input set and output."""
    header = ("graph", "provider", "inputs", "output", "max abs", "max rel", "atol/rtol", "result")
    rows = [header]
    for graph, providers in report["graphs"].items():
        for provider, result in providers.items():
            for check in result["checks"]:
                rows.append((
                    graph, provider.replace("ExecutionProvider", ""), check["inputs"], check["output"],
                    f"{check.get('max_abs_diff', float('nan')):.2e}", f"{check.get('max_rel_diff', float('nan')):.2e}",
                    f"{result['atol']:.0e}/{result['rtol']:.0e}", "ok" if check["passed"] else "FAIL",
                ))
            if "top1_agreement" in result:
                rows.append((graph, provider.replace("ExecutionProvider", ""), "real samples", "top-1 agreement",
                             f"{100 * result['top1_agreement']:.2f}%", "", "100%",
                             "ok" if result["top1_agreement"] == 1.0 else "FAIL"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for provider, reason in report.get("skipped_providers", {}).items():
        lines.append(f"skipped {provider}: {reason}")
    lines.append("parity: " + ("PASSED" if report["passed"] else "FAILED"))
    return "\n".join(lines)
