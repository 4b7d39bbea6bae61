"""Graphs with the preprocessing and postprocessing inside, so a deployer writes none.

- **Classifier**: input ``image``, uint8 N×H×W×C of any height and width (C = the model's channels) →
  ``Resize`` (linear, ``antialias=1``, ``exclude_outside=1``, half-pixel centres: Pillow's ``BILINEAR``,
  which zoo trains with; without ``exclude_outside`` borders differ by up to 8 grey levels) →
  rounded to whole 8-bit values as zoo's own resize does → × (8-bit → raw unit) × scale → (x − mean) / std →
  the model → ``probabilities`` (softmax), ``top_probabilities`` and ``top_indices`` (top-k, int64).
  When the graph's ``preprocessing`` holds a ``crop`` (:mod:`zoo.data.crop`), the ``Resize`` goes to the size that
  covers the scale size keeping the aspect ratio (computed from the input's shape with integer ``Mul``/``Div``/
  ``Where``; ``cubic`` with a = −0.5, Pillow's ``BICUBIC``, when the crop says bicubic: one axis, clipped to 0–255,
  then the other, in the order Pillow picks (an ``If``), as Pillow resizes an 8-bit image) and a ``Slice`` takes
  the centre (offset ``Round``-ed half to even, as torchvision's ``CenterCrop``).
- **Sampler / decoder** (graph role ``sampler`` or ``decoder``): the same inputs (noise, label) →
  the model → ``pixels``, uint8 N×H×W×C. The noise (input, distribution, shape [batch, latent_dim]) is
  the role's ``zoo_role_info``, kept in the graph's metadata, and is stated in the description.

Built from a bundle's fp32 graph (picked by its role, :mod:`zoo.roles`) with onnx alone (no torch); the
graph's own metadata is kept and ``zoo_pregraph`` describes the inputs and outputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.bundles.manifest import GraphEntry, Manifest
from zoo.errors import ZooError
from zoo.roles import GraphRole

#: How many classes the top-k outputs name (fewer when the model has fewer classes).
TOP_K = 5
#: ONNX Runtime's antialiased Resize against Pillow's BILINEAR on 8-bit images, after rounding to 8-bit:
#: at most one grey level apart (rounding ties; mostly identical), measured on down- and upscales of digits.
RESIZE_TOLERANCE_8BIT = 1.0
#: How each latent distribution a sampler may declare (``zoo.roles.DISTRIBUTIONS``) is described to a deployer.
NOISE_TEXT = {"standard_normal": "standard normal N(0, 1), float32", "uniform": "uniform U(-1, 1), float32"}


@dataclass(frozen=True)
class DeployGraph:
    """A bundle graph chosen for deployment: its typed manifest entry, and what kind it is."""

    name: str
    entry: GraphEntry
    kind: str  # "classifier" or "sampler" (GraphRole values)


def deploy_graph(manifest: Manifest) -> DeployGraph:
    """The graph to deploy, by role: the fp32 image classifier, else the fp32 sampler, else the decoder."""
    for entry in manifest.with_role(GraphRole.CLASSIFIER):
        if (entry.role_info.get("input_kind", "image") == "image" and len(entry.inputs) == 1
                and "normalization" in entry.metadata):
            return DeployGraph(entry.name, entry, GraphRole.CLASSIFIER)
    samplers = manifest.with_role(GraphRole.SAMPLER) or manifest.with_role(GraphRole.DECODER)
    if samplers:
        return DeployGraph(samplers[0].name, samplers[0], "sampler")
    raise ZooError(f"the bundle holds no image classifier, sampler or decoder graph to deploy (family "
                   f"{manifest.family!r}; graph roles: {', '.join(manifest.roles())})")


def build_pregraph(bundle: Path, graph: DeployGraph, out: Path, *, top_k: int = TOP_K) -> dict[str, Any]:
    """Write the graph with pre- and postprocessing inside to ``out``; its ``zoo_pregraph`` description."""
    import onnx
    from onnx import compose

    entry = graph.entry
    model = onnx.load(str(bundle / entry.file))
    meta = entry.metadata
    norm = entry.meta("normalization")
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 18:
        raise ZooError(f"graph {graph.name!r} is at opset {opset}; an antialiased Resize needs 18: export with "
                       "--opset 18 or later")
    if graph.kind == GraphRole.CLASSIFIER:
        pre, post, description = _classifier_parts(entry, norm, opset, top_k)
        pre.ir_version = post.ir_version = model.ir_version
        merged = compose.merge_models(pre, model, io_map=[("normalized", entry.input_names[0])],
                                      prefix1="zoo_pre/")
        merged = compose.merge_models(merged, post, io_map=[(entry.role_info["output"], "logits")],
                                      prefix2="zoo_post/")
    else:
        post, description = _sampler_parts(entry, norm, opset)
        post.ir_version = model.ir_version
        merged = compose.merge_models(model, post, io_map=[(entry.role_info["output"], "model_output")],
                                      prefix2="zoo_post/")
        description["noise"] = noise_of(entry)
    for value in [*merged.graph.input, *merged.graph.output]:
        if value.name.startswith(("zoo_pre/", "zoo_post/")):
            _rename(merged.graph, value.name, value.name.split("/", 1)[1])
    props = {**meta, "zoo_pregraph": json.dumps(description)}
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


def noise_of(entry: GraphEntry) -> dict[str, Any]:
    """What a sampler is fed, from its role_info: the noise input, its distribution and shape, the label input."""
    info = entry.role_info
    law = info.get("distribution", "standard_normal")
    return {"input": info["latent_input"], "distribution": NOISE_TEXT[law], "distribution_id": law,
            "shape": ["batch", int(info["latent_dim"])], "label_input": info.get("label_input"),
            "num_classes": info.get("num_classes")}


def _classifier_parts(entry: GraphEntry, norm: dict[str, Any], opset: int, top_k: int) -> tuple[Any, Any, dict]:
    from onnx import TensorProto, helper, numpy_helper

    from zoo.bundles.crop_nodes import centre_slice, covering_sizes, crop_text
    from zoo.data.crop import graph_crop
    from zoo.data.units import from_8bit_factor

    _, channels, height, width = entry.inputs[0].shape
    crop = graph_crop(entry.metadata)
    factor = np.float32(from_8bit_factor(norm) * norm["scale"])
    resize_mode = {"antialias": 1, "exclude_outside": 1, "coordinate_transformation_mode": "half_pixel",
                   **({"mode": "cubic", "cubic_coeff_a": -0.5} if crop and crop.interpolation == "bicubic"
                      else {"mode": "linear"})}  # cubic with a = -0.5: Pillow's BICUBIC
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
        *(covering_sizes(crop, (height, width), consts, resize_mode) if crop else
          [helper.make_node("Concat", ["nc", "size_hw"], ["sizes"], axis=0)]),
        # Pillow's BILINEAR: a triangle filter stretched when downscaling, taps outside the image left out
        *([] if crop and crop.interpolation == "bicubic" else  # bicubic: two passes (crop_nodes.two_pass)
          [helper.make_node("Resize", ["nchw", "", "", "sizes"], ["resized"], **resize_mode)]),
        helper.make_node("Round", ["resized"], ["rounded"]),
        helper.make_node("Clip", ["rounded", "zero", "white"], ["levels" if crop else "pixels"]),
        *(centre_slice(consts) if crop else []),
        helper.make_node("Mul", ["pixels", "factor"], ["scaled"]),
        helper.make_node("Sub", ["scaled", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["normalized"]),
    ]
    pre = helper.make_model(helper.make_graph(
        nodes, "zoo_preprocess",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["batch", "height", "width", channels])],
        [helper.make_tensor_value_info("normalized", TensorProto.FLOAT, ["batch", channels, height, width])],
        consts), opset_imports=[helper.make_opsetid("", opset)])
    labels = list(entry.role_info["class_names"])
    classes = len(labels)
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
        "kind": GraphRole.CLASSIFIER,
        "inputs": {"image": f"uint8, batch×height×width×{channels} (NHWC), any height and width, "
                            f"{'grayscale' if channels == 1 else 'RGB'}, 0–255"},
        "outputs": {"probabilities": f"float32, batch×{classes} (softmax)",
                    "top_probabilities": f"float32, batch×{k}", "top_indices": f"int64, batch×{k} (class indices)"},
        "resize": (f"to {height}×{width}: linear, antialias=1, exclude_outside=1, half_pixel (Pillow BILINEAR); "
                   "rounded to 8-bit") if crop is None else crop_text(crop, (height, width)),
        "resize_tolerance_8bit": RESIZE_TOLERANCE_8BIT, "top_k": k,
        "class_labels": labels,
    }
    return pre, post, description


def _sampler_parts(entry: GraphEntry, norm: dict[str, Any], opset: int) -> tuple[Any, dict]:
    from onnx import TensorProto, helper, numpy_helper

    info = entry.role_info
    out = next(o for o in entry.outputs if o.name == info["output"])
    _, channels, height, width = out.shape
    unit = info.get("pixel_space", "model_input") == "unit"  # already in [0, 1]: no (x * std + mean)
    mean = np.zeros(1, np.float32) if unit else np.asarray(norm["mean"], np.float32)
    std = np.ones(1, np.float32) if unit else np.asarray(norm["std"], np.float32)
    mean, std = mean.reshape(1, -1, 1, 1), std.reshape(1, -1, 1, 1)
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
                   "inputs": {i.name: f"{i.dtype}, {i.shape}" for i in entry.inputs},
                   "outputs": {"pixels": f"uint8, batch×{height}×{width}×{channels} (NHWC), 0–255"}}
    return post, description


def preprocessing_graph(entry: GraphEntry) -> Any:
    """The classifier's preprocessing alone (uint8 NHWC ``image`` → ``normalized`` model input), for checks."""
    import onnx

    pre, _, _ = _classifier_parts(entry, entry.meta("normalization"), 18, TOP_K)
    pre.ir_version = onnx.IR_VERSION if onnx.IR_VERSION < 11 else 10
    return pre
