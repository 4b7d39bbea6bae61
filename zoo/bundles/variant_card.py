"""The model card's section on int8/fp16 variants: accuracy lost, speed (if measured), and what each is for.

Speed against fp32 is measured only with ``zoo export --measure-variants`` (ONNX Runtime on this
CPU, side by side); the card says so either way, and says plainly when a variant ran slower than
fp32 on the machine that measured it.
"""

from __future__ import annotations

from typing import Any

from zoo.bundles import variants
from zoo.bundles.manifest import GraphEntry, ParityReport

PURPOSE = {
    "fp16": "fp16 is meant for GPUs (CUDA, TensorRT), where half precision has its own fast units; on a CPU, "
            "ONNX Runtime computes most of it by casting back to fp32, so it is rarely faster there.",
    "int8": "int8 pays off at large batches on real-size models, on CPUs with int8 instructions (VNNI/AMX): on "
            "small graphs the quantize/dequantize steps and per-call overhead weigh as much as the int8 "
            "arithmetic saves.",
    # a graph that declares GraphSpec.int8_weight_only: MatMul weights in int8, activations in fp32
    "int8-weights": "int8 weights are for decoding one token at a time, whose speed is the bytes of weights read: "
                    "they read about a quarter of fp32's. They run under ONNX Runtime (MatMulNBits); other runtimes "
                    "may not have the operator.",
}
GATE = ("A variant passes its gate when, on the real validation samples (on its random inputs where the graph has "
        "none), its outputs meet its tolerance against the fp32 PyTorch outputs and it loses at most "
        f"{100 * variants.MAX_ACCURACY_DROP:g} point of accuracy, a larger drop counting only when the samples it "
        "newly gets wrong outnumber those it newly gets right by more than twice the square root of both "
        "(McNemar's test, about 95 %: one flip in 8 samples is noise). A variant that fails is left out of the "
        "bundle; the fp32 graphs are published.")
NOT_MEASURED = ("speed against fp32 not measured at export (export with --measure-variants, or time the bundle "
                "with `zoo bench`)")


def variant_text(graphs: dict[str, GraphEntry], parity: ParityReport | None,
                 speed: dict[str, dict[str, Any] | None]) -> str:
    """The card's "Variants" section from the typed graph entries (empty when the bundle has none)."""
    lines = []
    for name, entry in graphs.items():
        if entry.variant == "fp32":
            continue
        lines.append(f"- `{name}`: {_accuracy(name, parity)}; {_timing(speed.get(name))}.")
        s = speed.get(name)
        if s and s["speedup"] < 1.0:
            lines.append(f"  Slower than fp32 on the machine that measured it ({s['speedup']:.2f}× the fp32 speed).")
        weights_only = entry.variant == "int8" and (entry.method or "").startswith("weight-only")
        lines.append(f"  What it is for: {PURPOSE['int8-weights' if weights_only else entry.variant]}")
        if entry.variant == "fp16":
            lines.append(f"  Tolerance: atol {entry.atol:g} (at least {variants.VARIANT_TOLERANCES['fp16'][0]:g}, or "
                         f"{variants.FP16_SCALE_SHARE:g} × the largest fp32 output on the test inputs: runtimes that "
                         f"compute in float16 round every activation), rtol {entry.rtol:g}.")
    dropped = (parity.data.get("dropped_variants") if parity else None) or {}
    for name, info in dropped.items():
        lines.append(f"- `{name}` failed its gate and is not in this bundle: {info.get('reason', 'failed')}.")
    if not lines:
        return ""
    return "## Variants\n" + GATE + "\n\n" + "\n".join(lines) + "\n"


def _accuracy(name: str, parity: ParityReport | None) -> str:
    cpu = parity.result(name, "CPUExecutionProvider") if parity else {}
    if "accuracy" not in cpu:
        return "accuracy not measured (no labelled samples or not verified)"
    counts = (f", {cpu['accuracy_lost']} lost and {cpu['accuracy_gained']} gained of {cpu['accuracy_samples']} "
              "samples" if "accuracy_samples" in cpu else "")
    return (f"validation accuracy {100 * cpu['accuracy']:.2f}% against fp32 {100 * cpu['reference_accuracy']:.2f}%"
            f" (drop {100 * cpu['accuracy_drop']:.2f} points{counts}, allowed {100 * variants.MAX_ACCURACY_DROP:g})")


def _timing(s: dict[str, Any] | None) -> str:
    if not s:
        return NOT_MEASURED
    return (f"ONNX Runtime CPU at batch {s['batch']}, {s['threads']} threads: {s['variant_ms']:.3f} ms against "
            f"fp32 {s['fp32_ms']:.3f} ms, {s['speedup']:.2f}× the fp32 speed")
