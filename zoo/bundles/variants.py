"""Smaller and faster graphs made from an exported fp32 graph: offline optimisation, int8 and fp16.

All three use ONNX Runtime's own tooling (``onnxruntime.quantization``, ``onnxruntime.transformers.float16``),
which ships with ONNX Runtime: nothing extra to install.
"""

from __future__ import annotations

import ast
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from zoo.bundles.onnx_graph import quiet_logger
from zoo.errors import ZooError

#: Element tolerance (atol, rtol) of each variant against the fp32 model; the task metric decides besides.
VARIANT_TOLERANCES = {"int8": (0.5, 0.1), "fp16": (1e-2, 1e-2)}
#: fp16's atol is at least this share of the graph's largest fp32 output on the test inputs (about eight
#: float16 roundings of it). Runtimes that compute in float16 (GPUs, onnx's reference evaluator, tract)
#: round every activation, so their error grows with the outputs' scale: a resnet-small with logits up to
#: 16 misses 1e-2 there by 1.5e-2 while staying within 2.7e-3 of each row's largest logit.
FP16_SCALE_SHARE = 4e-3
#: A variant may lose at most this much accuracy (a fraction: 0.01 is one point) on the validation samples.
MAX_ACCURACY_DROP = 0.01
#: Calibration for static int8: at most this many training samples, in batches of this size.
CALIBRATION_SAMPLES = 1024
CALIBRATION_BATCH = 64
QUANTIZABLE_STATIC = {"Conv", "ConvTranspose"}
QUANTIZABLE_DYNAMIC = {"MatMul", "Gemm"}


def optimize(path: Path) -> str:
    """Rewrite ``path`` after ONNX Runtime's offline graph optimisations; returns the level used.

    The *basic* level only (constant folding, redundant nodes, Conv+BN fusion): it uses standard
    ONNX operators, so the graph still runs on every provider and under ``onnx.reference``. The
    extended level would bake in CPU-only ``com.microsoft`` operators.
    """
    import onnx

    from zoo.ort import import_onnxruntime

    ort = import_onnxruntime()
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        optimized = Path(tmp) / path.name
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(optimized)
        ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        model = onnx.load(str(optimized))
    onnx.helper.set_model_props(model, {**props, "optimized": "onnxruntime basic"})
    onnx.save(model, str(path))
    return "onnxruntime-basic"


def op_types(path: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}


def quantize_int8(src: Path, dst: Path, graph_name: str, input_names: list[str],
                  calibration: tuple[np.ndarray, ...], source: str, float_modules: tuple[str, ...] = (),
                  weight_only: bool = False) -> str:
    """Write an int8 copy of ``src`` to ``dst``; returns how it was quantized.

    Static QDQ (per-channel int8 weights, uint8 activations calibrated on ``calibration``, which came
    from ``source``) for graphs with convolutions; dynamic (int8 weights, activations quantized at run
    time) for graphs whose quantizable work is MatMul/Gemm only. The nodes exported from the sub-modules
    named in ``float_modules`` (``GraphSpec.int8_float_modules``) stay fp32. ``weight_only``
    (``GraphSpec.int8_weight_only``): :func:`quantize_weights_int8` instead.
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_dynamic, quantize_static

    ops = op_types(src)
    if not ops & (QUANTIZABLE_STATIC | QUANTIZABLE_DYNAMIC):
        raise ZooError(f"graph {graph_name!r} has no Conv, MatMul or Gemm for int8 to quantize; "
                       "export it without --quantize")
    if weight_only:
        return quantize_weights_int8(src, dst, graph_name)
    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp, quiet_logger():
        prepared = Path(tmp) / "prepared.onnx"
        try:
            if ops & QUANTIZABLE_STATIC:
                # shape inference and folding first, as ONNX Runtime recommends for static quantization
                quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
                prepared_model = onnx.load(str(prepared))
                floats = module_nodes(prepared_model, float_modules)
                kept = edge_layers(prepared_model) + floats
                quantize_static(str(prepared), str(dst), _Calibration(input_names, calibration),
                                quant_format=QuantFormat.QDQ, per_channel=True, nodes_to_exclude=kept,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
                method = (f"static QDQ, per-channel int8 weights, uint8 activations calibrated on {source}"
                          + (f"; {len(kept)} edge layer(s) kept in fp32 (the input's convolution, the output's "
                             "Gemm/MatMul)" if len(kept) > len(floats) else "")
                          + (f"; {', '.join(float_modules)} kept in fp32 ({len(floats)} nodes)" if floats else ""))
            else:
                # The exporter's intermediate shape annotations trip the dynamic quantizer's own shape
                # inference once it has rewritten Gemm weights; they are re-inferable, so drop them.
                model = onnx.load(str(src))
                del model.graph.value_info[:]
                onnx.save(model, str(prepared))
                quantize_dynamic(str(prepared), str(dst), weight_type=QuantType.QInt8)
                method = "dynamic, int8 weights, activations quantized at run time"
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ZooError(f"graph {graph_name!r} cannot be quantized to int8: {first}; "
                           "export it without --quantize") from None
    return method


#: Weight-only int8: one fp32 scale per this many weights along each column (ONNX Runtime's ``MatMulNBits``).
#: 128 decoded gpt2-small 1.3x as fast as 32 and 1.07x as fast as 256 (MLAS' int8 kernel; same machine, interleaved).
WEIGHT_BLOCK = 128
#: ``MatMulNBits``' accuracy level 4: activations are quantized to int8 block by block inside the kernel, so
#: the CPU's integer dot products do the work (level 1, fp32 arithmetic, decoded gpt2-small 25x slower).
WEIGHT_ACCURACY_LEVEL = 4


def quantize_weights_int8(src: Path, dst: Path, graph_name: str) -> str:
    """Write a copy of ``src`` whose MatMul weights are int8 (symmetric, one scale per ``WEIGHT_BLOCK`` weights),
    run by ONNX Runtime's ``MatMulNBits``; no calibration, no activation statistics.

    What a decoder reads per generated token is its weights: int8 reads a quarter of fp32's bytes. MatMuls whose
    weight is computed in the graph (a transposed tied embedding) are folded into constants first by ONNX Runtime's
    basic optimisations, so they are quantized too."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    from zoo.ort import import_onnxruntime

    ort = import_onnxruntime()
    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp, quiet_logger():
        folded = Path(tmp) / "folded.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", "folded.data")
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        try:
            ort.InferenceSession(str(src), sess_options=options, providers=["CPUExecutionProvider"])
            config = DefaultWeightOnlyQuantConfig(block_size=WEIGHT_BLOCK, is_symmetric=True, bits=8,
                                                  accuracy_level=WEIGHT_ACCURACY_LEVEL,
                                                  op_types_to_quantize=("MatMul",))
            quantizer = MatMulNBitsQuantizer(onnx.load(str(folded)), algo_config=config)
            quantizer.process()
            model = quantizer.model.model
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ZooError(f"graph {graph_name!r} cannot be quantized to int8 weights: {first}; "
                           "export it without --quantize") from None
        count = sum(node.op_type == "MatMulNBits" for node in model.graph.node)
        if not count:
            raise ZooError(f"graph {graph_name!r} has no MatMul with a constant weight for int8 to quantize; "
                           "export it without --quantize")
        onnx.save(model, str(dst))
    return (f"weight-only: {count} MatMul weights in int8 (symmetric, one fp32 scale per {WEIGHT_BLOCK}), "
            f"ONNX Runtime MatMulNBits at accuracy level {WEIGHT_ACCURACY_LEVEL}; activations stay fp32 between "
            "layers; ONNX Runtime basic optimisations applied first")


def module_nodes(model: Any, modules: tuple[str, ...]) -> list[str]:
    """Names of the nodes the dynamo exporter made from the top-level sub-modules ``modules`` (read from each
    node's ``pkg.torch.onnx.name_scopes``; graphs without that metadata give none)."""
    if not modules:
        return []
    names = []
    for node in model.graph.node:
        scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), "")
        try:
            path = ast.literal_eval(scopes) if scopes else []
        except (ValueError, SyntaxError):
            continue
        if node.name and len(path) > 1 and path[1] in modules:
            names.append(node.name)
    return names


#: int8 keeps the first and last layers in fp32 only in graphs with at least this many quantizable layers.
EDGE_LAYERS_FROM = 10


def edge_layers(model: Any) -> list[str]:
    """Names of the nodes int8 leaves in fp32 in a deep graph (``EDGE_LAYERS_FROM`` quantizable layers or
    more): convolutions that read a graph input and Gemm/MatMul nodes that write a graph output.

    In a deep network the first and last layers are a small share of the work and the most sensitive (a
    trained resnet50 lost 1.7 points of accuracy on the digits with them in int8, none without;
    benchmarks/results/vision_int8_digits.txt). In a small one they are most of the work: the 2-convolution
    cnn ran at 0.4× fp32 with them kept, so there every layer is quantized."""
    inputs = {i.name for i in model.graph.input}
    outputs = {o.name for o in model.graph.output}
    quantizable = [n for n in model.graph.node if n.op_type in QUANTIZABLE_STATIC | QUANTIZABLE_DYNAMIC]
    edges = [n.name for n in quantizable if n.name and (
             (n.op_type == "Conv" and n.input[0] in inputs)
             or (n.op_type in ("Gemm", "MatMul") and set(n.output) & outputs))]
    return edges if len(quantizable) >= EDGE_LAYERS_FROM else []


class _Calibration:
    """Feeds training samples to the int8 calibrator, one batch at a time."""

    def __init__(self, input_names: list[str], arrays: tuple[np.ndarray, ...]) -> None:
        count = min(len(arrays[0]), CALIBRATION_SAMPLES)
        self._batches: Iterator[dict[str, np.ndarray]] = (
            {name: np.ascontiguousarray(a[start:start + CALIBRATION_BATCH]) for name, a in zip(input_names, arrays,
                                                                                                strict=True)}
            for start in range(0, count, CALIBRATION_BATCH)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def rewind(self) -> None:  # the calibrator does not rewind for MinMax; present for the protocol
        pass


def variant_tolerance(variant: str, expected: list[np.ndarray]) -> tuple[float, float]:
    """(atol, rtol) for ``variant`` given the fp32 graph's outputs on the test inputs (``expected``)."""
    atol, rtol = VARIANT_TOLERANCES[variant]
    if variant == "fp16":
        scale = max((float(np.abs(out).max()) for out in expected if out.size), default=0.0)
        atol = max(atol, float(f"{FP16_SCALE_SHARE * scale:.2g}"))
    return atol, rtol


def to_fp16(src: Path, dst: Path, graph_name: str) -> str:
    """Write an fp16 copy of ``src`` to ``dst`` (inputs and outputs stay fp32, so callers need not change)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    try:
        model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
        wrapped = OnnxModel(model)
        wrapped.topological_sort()  # the converter appends its input casts after the nodes that use them
        onnx.save(wrapped.model, str(dst))
    except Exception as exc:
        raise ZooError(f"graph {graph_name!r} cannot be converted to fp16: {type(exc).__name__}: {exc}") from None
    return "fp16 weights and activations, fp32 inputs and outputs (onnxruntime.transformers.float16)"


def speed_ratio(fp32: Path, variant: Path, feeds: dict[str, Any], *, threads: int = 2, rounds: int = 50) -> dict:
    """Median ONNX Runtime CPU latency of both graphs, measured side by side; ratio > 1 means the variant is faster."""
    from zoo.ort import CPU, session

    sessions = [session(str(fp32), CPU, threads=threads), session(str(variant), CPU, threads=threads)]
    times: list[list[float]] = [[], []]
    for _ in range(5):
        for sess in sessions:
            sess.run(None, feeds)
    for _ in range(rounds):
        for sess, bucket in zip(sessions, times, strict=True):
            start = time.perf_counter()
            sess.run(None, feeds)
            bucket.append(time.perf_counter() - start)
    fp32_ms, variant_ms = (1e3 * float(np.median(t)) for t in times)
    batch = len(next(iter(feeds.values())))
    return {"batch": batch, "threads": threads, "fp32_ms": fp32_ms, "variant_ms": variant_ms,
            "speedup": fp32_ms / variant_ms}
