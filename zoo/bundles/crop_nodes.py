"""The evaluation transform (:mod:`zoo.data.crop`) as ONNX nodes, for the classifier pregraph
(:mod:`zoo.bundles.pregraph`): the size that covers the scale size keeping the aspect ratio, computed from the input's
shape; Pillow's two-pass bicubic on 8-bit images; the centre ``Slice``. Each builder returns nodes over the pregraph's
tensor names (``shape``, ``nc``, ``nchw``, ``size_hw``, ``levels``) and adds its constants to ``consts``."""

from __future__ import annotations

from typing import Any

import numpy as np


def covering_sizes(crop: Any, size: tuple[int, int], consts: list[Any], resize_mode: dict[str, Any]) -> list[Any]:
    """Nodes giving ``sizes`` (N, C, new height, new width): the input's size scaled to cover the crop's scale size
    keeping the aspect ratio, as :func:`zoo.data.crop.covering_size` (``new_hw`` holds the last two); for bicubic
    also ``resized`` (:func:`two_pass`)."""
    from onnx import helper, numpy_helper

    scale_h, scale_w = crop.scale_size(size)
    consts += [numpy_helper.from_array(np.array([v], np.int64), n) for v, n in (
        (2, "h_at"), (3, "w_at"), (scale_h, "scale_h"), (scale_w, "scale_w"))]
    nodes = [
        helper.make_node("Gather", ["shape", "h_at"], ["in_h"]),
        helper.make_node("Gather", ["shape", "w_at"], ["in_w"]),
        helper.make_node("Mul", ["in_h", "scale_w"], ["h_by_sw"]),
        helper.make_node("Mul", ["in_w", "scale_h"], ["w_by_sh"]),
        helper.make_node("GreaterOrEqual", ["h_by_sw", "w_by_sh"], ["taller"]),  # the width decides
        helper.make_node("Div", ["h_by_sw", "in_w"], ["tall_h"]),  # whole numbers: floor
        helper.make_node("Div", ["w_by_sh", "in_h"], ["wide_w"]),
        helper.make_node("Where", ["taller", "tall_h", "scale_h"], ["new_h"]),
        helper.make_node("Where", ["taller", "scale_w", "wide_w"], ["new_w"]),
        helper.make_node("Concat", ["new_h", "new_w"], ["new_hw"], axis=0),
        helper.make_node("Concat", ["nc", "new_hw"], ["sizes"], axis=0),
    ]
    if crop.interpolation != "bicubic":
        return nodes
    return [*nodes, *two_pass(resize_mode)]


def two_pass(resize_mode: dict[str, Any]) -> list[Any]:
    """``resized``: ``nchw`` resized to ``sizes`` as Pillow's bicubic does on an 8-bit image, one axis, clipped to
    0–255, then the other; an ``If`` picks the order by :func:`zoo.data.crop.vertical_first`'s rule."""
    from onnx import TensorProto, helper, numpy_helper

    def branch(name: str, first_sizes: str) -> Any:
        nodes = [helper.make_node("Resize", ["nchw", "", "", first_sizes], [f"{name}_half"], **resize_mode),
                 helper.make_node("Clip", [f"{name}_half", "level_min", "level_max"], [f"{name}_clipped"]),
                 helper.make_node("Resize", [f"{name}_clipped", "", "", "sizes"], [f"{name}_out"], **resize_mode)]
        return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT,
                                                                                 None)])

    def constant(value: np.ndarray, name: str) -> Any:
        return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name))

    # what the branches use from outside are node outputs, not initializers: onnx.compose's prefixing renames an
    # initializer inside a subgraph only after the subgraph was visited, and the merged graph would not check
    return [
        constant(np.array(0, np.float32), "level_min"), constant(np.array(255, np.float32), "level_max"),
        constant(np.array([0], np.int64), "int_zero"), constant(np.array([2], np.int64), "int_two"),
        helper.make_node("Sub", ["in_h", "new_h"], ["shrink_h"]),
        helper.make_node("Sub", ["in_w", "new_w"], ["shrink_w"]),
        helper.make_node("Mul", ["shrink_w", "int_two"], ["twice_shrink_w"]),
        helper.make_node("Greater", ["shrink_h", "int_zero"], ["shrinks_h"]),
        helper.make_node("Greater", ["shrink_h", "twice_shrink_w"], ["shrinks_h_more"]),
        helper.make_node("And", ["shrinks_h", "shrinks_h_more"], ["height_first"]),
        helper.make_node("Concat", ["nc", "new_h", "in_w"], ["sizes_h"], axis=0),
        helper.make_node("Concat", ["nc", "in_h", "new_w"], ["sizes_w"], axis=0),
        helper.make_node("If", ["height_first"], ["resized"], then_branch=branch("height_first_pass", "sizes_h"),
                         else_branch=branch("width_first_pass", "sizes_w")),
    ]


def centre_slice(consts: list[Any]) -> list[Any]:
    """Nodes taking the centre ``size_hw`` of ``levels`` (resized to ``new_hw``) as ``pixels``; the offset is
    ``round((new − size) / 2)`` with ONNX's ``Round`` (halves to even, as Python's, as torchvision's CenterCrop)."""
    from onnx import TensorProto, helper, numpy_helper

    consts += [numpy_helper.from_array(a, n) for a, n in (
        (np.array([2.0], np.float32), "two"), (np.array([2, 3], np.int64), "hw_axes"))]
    return [
        helper.make_node("Sub", ["new_hw", "size_hw"], ["margin"]),
        helper.make_node("Cast", ["margin"], ["margin_f"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["margin_f", "two"], ["half_margin"]),
        helper.make_node("Round", ["half_margin"], ["start_f"]),
        helper.make_node("Cast", ["start_f"], ["starts"], to=TensorProto.INT64),
        helper.make_node("Add", ["starts", "size_hw"], ["ends"]),
        helper.make_node("Slice", ["levels", "starts", "ends", "hw_axes"], ["pixels"]),
    ]


def crop_text(crop: Any, size: tuple[int, int]) -> str:
    """The deployed graph's resize and crop in words (``deploy.json``, the README)."""
    scale_h, scale_w = crop.scale_size(size)
    mode = ("cubic, cubic_coeff_a=-0.5 (Pillow BICUBIC)" if crop.interpolation == "bicubic"
            else "linear (Pillow BILINEAR)")
    two_pass = (", one axis then the other, clipped to 0-255 between, in Pillow's order (Pillow on 8-bit images)"
                if crop.interpolation == "bicubic" else "")
    return (f"keeping the aspect ratio to cover {scale_h}×{scale_w} (size / crop_pct {crop.crop_pct:g}; for a square "
            f"size the shorter side becomes {min(scale_h, scale_w)}): {mode}, antialias=1, exclude_outside=1, "
            f"half_pixel{two_pass}; rounded to 8-bit; then the centre {size[0]}×{size[1]} (offset rounded half to "
            "even)")
