"""Graphs with the preprocessing and postprocessing inside, so a deployer writes none.

- **Classifier**: input ``image``, uint8 N×H×W×C of any height and width (C = the model's channels) →
  ``Resize`` (linear, ``antialias=1``, ``exclude_outside=1``, half-pixel centres: Pillow's ``BILINEAR``,
  which zoo trains with; without ``exclude_outside`` borders differ by up to 8 grey levels) →
  rounded to whole 8-bit values as zoo's own resize does → × (8-bit → raw unit) × scale → (x − mean) / std →
  the model → ``probabilities`` (softmax), ``top_probabilities`` and ``top_indices`` (top-k, int64).
- **Generator / decoder** (a graph carrying ``zoo_sampler`` metadata): the same inputs (noise, label) →
  the model → ``pixels``, uint8 N×H×W×C. The noise distribution is stated in the metadata
  (``zoo_noise``): standard normal, shape [batch, latent_dim].

Built from a bundle's fp32 graph with onnx alone (no torch); the graph's own metadata is kept and
``zoo_pregraph`` describes the inputs and outputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError

#: How many classes the top-k outputs name (fewer when the model has fewer classes).
TOP_K = 5
#: ONNX Runtime's antialiased Resize against Pillow's BILINEAR on 8-bit images, after rounding to 8-bit:
#: at most one grey level apart (rounding ties; mostly identical), measured on down- and upscales of digits.
RESIZE_TOLERANCE_8BIT = 1.0
SAMPLER_KEY = "zoo_sampler"


@dataclass(frozen=True)
class DeployGraph:
    """A bundle graph chosen for deployment: its manifest entry, and what kind it is."""

    name: str
    entry: dict[str, Any]
    kind: str  # "classifier" | "sampler"


def deploy_graph(manifest: dict[str, Any]) -> DeployGraph:
    """The graph to deploy: the fp32 classifier, else the fp32 sampler (generator / decoder).

    The one place that decides from the manifest what a graph is for (``class_output`` and the
    ``zoo_sampler`` metadata); point it at graph roles once bundles record them.
    """
    fp32 = {n: e for n, e in manifest.get("graphs", {}).items() if e.get("variant", "fp32") == "fp32"}
    for name, entry in fp32.items():
        if entry.get("class_output") and len(entry.get("inputs", [])) == 1 and "normalization" in entry["metadata"]:
            return DeployGraph(name, entry, "classifier")
    for name, entry in fp32.items():
        if SAMPLER_KEY in entry.get("metadata", {}):
            return DeployGraph(name, entry, "sampler")
    raise ZooError(f"the bundle holds no classifier or sampler graph to deploy (graphs: {', '.join(fp32)})")


def build_pregraph(bundle: Path, graph: DeployGraph, out: Path, *, top_k: int = TOP_K) -> dict[str, Any]:
    """Write the graph with pre- and postprocessing inside to ``out``; its ``zoo_pregraph`` description."""
    import onnx
    from onnx import compose

    model = onnx.load(str(bundle / graph.entry["file"]))
    meta = graph.entry["metadata"]
    norm = json.loads(meta["normalization"])
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 18:
        raise ZooError(f"graph {graph.name!r} is at opset {opset}; an antialiased Resize needs 18: export with "
                       "--opset 18 or later")
    if graph.kind == "classifier":
        pre, post, description = _classifier_parts(graph.entry, norm, opset, top_k)
        pre.ir_version = post.ir_version = model.ir_version
        merged = compose.merge_models(pre, model, io_map=[("normalized", graph.entry["inputs"][0]["name"])],
                                      prefix1="zoo_pre/")
        merged = compose.merge_models(merged, post, io_map=[(graph.entry["class_output"], "logits")],
                                      prefix2="zoo_post/")
    else:
        post, description = _sampler_parts(graph.entry, norm, opset)
        post.ir_version = model.ir_version
        merged = compose.merge_models(model, post, io_map=[(graph.entry["outputs"][0]["name"], "model_output")],
                                      prefix2="zoo_post/")
        description["noise"] = _noise(meta)
    for value in [*merged.graph.input, *merged.graph.output]:
        if value.name.startswith(("zoo_pre/", "zoo_post/")):
            _rename(merged.graph, value.name, value.name.split("/", 1)[1])
    props = {**meta, "zoo_pregraph": json.dumps(description)}
    if graph.kind == "sampler":
        props["zoo_noise"] = json.dumps(description["noise"])
    onnx.helper.set_model_props(merged, props)
    onnx.checker.check_model(merged, full_check=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(merged, str(out))
    return description


def _rename(graph: Any, old: str, new: str) -> None:
    """Rename one tensor everywhere in a graph (the merge prefixed the names a deployer uses)."""
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for value in [*graph.input, *graph.output]:
        if value.name == old:
            value.name = new


def _noise(meta: dict[str, Any]) -> dict[str, Any]:
    sampler = json.loads(meta[SAMPLER_KEY])
    return {"input": sampler["noise_input"], "distribution": "standard normal N(0, 1), float32",
            "shape": ["batch", int(sampler["latent_dim"])], "label_input": sampler.get("label_input"),
            "num_classes": sampler.get("num_classes")}


def _classifier_parts(entry: dict[str, Any], norm: dict[str, Any], opset: int, top_k: int) -> tuple[Any, Any, dict]:
    from onnx import TensorProto, helper, numpy_helper

    from zoo.data.units import from_8bit_factor

    _, channels, height, width = entry["inputs"][0]["shape"]
    factor = np.float32(from_8bit_factor(norm) * norm["scale"])
    mean = np.asarray(norm["mean"], np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(norm["std"], np.float32).reshape(1, -1, 1, 1)
    consts = [numpy_helper.from_array(a, n) for a, n in (
        (np.array([height, width], np.int64), "size_hw"), (np.array([0, 1], np.int64), "batch_channels_at"),
        (np.array([0.0], np.float32), "zero"), (np.array([255.0], np.float32), "white"),
        (np.array([factor], np.float32), "factor"), (mean, "mean"), (std, "std"))]
    nodes = [
        helper.make_node("Cast", ["image"], ["image_f"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["image_f"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Shape", ["nchw"], ["shape"]),
        helper.make_node("Gather", ["shape", "batch_channels_at"], ["nc"]),
        helper.make_node("Concat", ["nc", "size_hw"], ["sizes"], axis=0),
        # Pillow's BILINEAR: a triangle filter stretched when downscaling, taps outside the image left out
        helper.make_node("Resize", ["nchw", "", "", "sizes"], ["resized"], mode="linear", antialias=1,
                         exclude_outside=1, coordinate_transformation_mode="half_pixel"),
        helper.make_node("Round", ["resized"], ["rounded"]),
        helper.make_node("Clip", ["rounded", "zero", "white"], ["pixels"]),
        helper.make_node("Mul", ["pixels", "factor"], ["scaled"]),
        helper.make_node("Sub", ["scaled", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["normalized"]),
    ]
    pre = helper.make_model(helper.make_graph(
        nodes, "zoo_preprocess",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["batch", "height", "width", channels])],
        [helper.make_tensor_value_info("normalized", TensorProto.FLOAT, ["batch", channels, height, width])],
        consts), opset_imports=[helper.make_opsetid("", opset)])
    classes = len(json.loads(entry["metadata"]["class_labels"]))
    k = min(top_k, classes)
    post = helper.make_model(helper.make_graph(
        [helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
         helper.make_node("TopK", ["probabilities", "k"], ["top_probabilities", "top_indices"], axis=1)],
        "zoo_postprocess",
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", classes]),
         helper.make_tensor_value_info("top_probabilities", TensorProto.FLOAT, ["batch", k]),
         helper.make_tensor_value_info("top_indices", TensorProto.INT64, ["batch", k])],
        [numpy_helper.from_array(np.array([k], np.int64), "k")]), opset_imports=[helper.make_opsetid("", opset)])
    description = {
        "kind": "classifier",
        "inputs": {"image": f"uint8, batch×height×width×{channels} (NHWC), any height and width, "
                            f"{'grayscale' if channels == 1 else 'RGB'}, 0–255"},
        "outputs": {"probabilities": f"float32, batch×{classes} (softmax)",
                    "top_probabilities": f"float32, batch×{k}", "top_indices": f"int64, batch×{k} (class indices)"},
        "resize": f"to {height}×{width}: linear, antialias=1, exclude_outside=1, half_pixel (Pillow BILINEAR); "
                  "rounded to 8-bit",
        "resize_tolerance_8bit": RESIZE_TOLERANCE_8BIT, "top_k": k,
        "class_labels": json.loads(entry["metadata"]["class_labels"]),
    }
    return pre, post, description


def _sampler_parts(entry: dict[str, Any], norm: dict[str, Any], opset: int) -> tuple[Any, dict]:
    from onnx import TensorProto, helper, numpy_helper

    out = entry["outputs"][0]
    _, channels, height, width = out["shape"]
    mean = np.asarray(norm["mean"], np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(norm["std"], np.float32).reshape(1, -1, 1, 1)
    consts = [numpy_helper.from_array(a, n) for a, n in (
        (mean, "mean"), (std, "std"), (np.array([0.0], np.float32), "zero"), (np.array([1.0], np.float32), "one"),
        (np.array([255.0], np.float32), "white"))]
    nodes = [
        helper.make_node("Mul", ["model_output", "std"], ["spread"]),
        helper.make_node("Add", ["spread", "mean"], ["unit"]),
        helper.make_node("Clip", ["unit", "zero", "one"], ["clipped"]),
        helper.make_node("Mul", ["clipped", "white"], ["levels"]),
        helper.make_node("Round", ["levels"], ["rounded"]),
        helper.make_node("Cast", ["rounded"], ["pixels_nchw"], to=TensorProto.UINT8),
        helper.make_node("Transpose", ["pixels_nchw"], ["pixels"], perm=[0, 2, 3, 1]),
    ]
    post = helper.make_model(helper.make_graph(
        nodes, "zoo_postprocess",
        [helper.make_tensor_value_info("model_output", TensorProto.FLOAT, ["batch", channels, height, width])],
        [helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["batch", height, width, channels])],
        consts), opset_imports=[helper.make_opsetid("", opset)])
    description = {"kind": "sampler",
                   "inputs": {i["name"]: f"{i['dtype']}, {i['shape']}" for i in entry["inputs"]},
                   "outputs": {"pixels": f"uint8, batch×{height}×{width}×{channels} (NHWC), 0–255"}}
    return post, description


def preprocessing_graph(entry: dict[str, Any]) -> Any:
    """The classifier's preprocessing alone (uint8 NHWC ``image`` → ``normalized`` model input), for checks."""
    import onnx

    norm = json.loads(entry["metadata"]["normalization"])
    pre, _, _ = _classifier_parts(entry, norm, 18, TOP_K)
    pre.ir_version = onnx.IR_VERSION if onnx.IR_VERSION < 11 else 10
    return pre
