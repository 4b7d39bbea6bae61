"""Graph rewrites that cost nothing and let other runtimes load a bundle's graphs unchanged.

- **No stale shape annotations**: the exporter stores intermediate shapes (``value_info``) that name the
  batch symbol; a runtime that fixes the batch (tract's ``set_input_fact``) then cannot unify them.
  They are re-inferable, so they go.
- **int8 at opset 19 or later**: ``DequantizeLinear`` at opset 18 is not implemented by onnx's reference
  evaluator; opset 19 only widened the types of the operators it changed, so raising the import is safe.
- **fp16 ``Gemm`` with a bias as ``MatMul`` + ``Add``**: tract does not load a biased fp16 ``Gemm`` (its
  rewiring expects an f32 bias). Weights are not touched: a transposed ``B`` gets a ``Transpose`` node.

Each rewrite keeps external weights where they are (the graph is loaded without them).
"""

from __future__ import annotations

from pathlib import Path

#: The lowest opset at which onnx's reference evaluator runs ``DequantizeLinear``.
INT8_MIN_OPSET = 19


def make_portable(path: Path, variant: str) -> list[str]:
    """Apply the rewrites that fit ``variant`` (fp32, int8, fp16) to the graph file in place; what was done."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    done = []
    if model.graph.value_info:
        del model.graph.value_info[:]
        done.append("intermediate shape annotations removed")
    if variant == "int8" and raise_opset(model, INT8_MIN_OPSET):
        done.append(f"opset raised to {INT8_MIN_OPSET}")
    if variant == "fp16":
        count = split_biased_gemm(model)
        if count:
            done.append(f"{count} biased Gemm as MatMul + Add")
    if done:
        onnx.save(model, str(path))
    return done


def raise_opset(model: object, minimum: int) -> bool:
    """Raise the default-domain opset import to ``minimum``; True when it was lower."""
    for entry in model.opset_import:  # type: ignore[attr-defined]
        if entry.domain in ("", "ai.onnx") and entry.version < minimum:
            entry.version = minimum
            return True
    return False


def split_biased_gemm(model: object) -> int:
    """Replace each ``Gemm(A, B, C)`` with alpha = beta = 1 and no ``transA`` by ``MatMul`` + ``Add``."""
    from onnx import helper

    graph = model.graph  # type: ignore[attr-defined]
    nodes = []
    count = 0
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        plain = (node.op_type == "Gemm" and node.domain in ("", "ai.onnx") and len(node.input) == 3 and node.input[2]
                 and attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0 and not attrs.get("transA", 0))
        if not plain:
            nodes.append(node)
            continue
        a, b, c = node.input
        base = node.name or node.output[0]
        if attrs.get("transB", 0):
            nodes.append(helper.make_node("Transpose", [b], [f"{base}/B_t"], name=f"{base}/transpose", perm=[1, 0]))
            b = f"{base}/B_t"
        nodes.append(helper.make_node("MatMul", [a, b], [f"{base}/matmul"], name=f"{base}/matmul"))
        nodes.append(helper.make_node("Add", [f"{base}/matmul", c], list(node.output), name=f"{base}/bias"))
        count += 1
    if count:
        del graph.node[:]
        graph.node.extend(nodes)
    return count
