"""Attributions through Captum: images (Integrated Gradients, saliency, occlusion, Grad-CAM, attention rollout)
and tokens (Integrated Gradients on the embedding, gradient × embedding, token occlusion).

Every function takes the model as an argument (never a global), so the randomisation sanity check can call it
again on a copy whose top layers were re-initialised. What is family-specific (the Grad-CAM layer, attention maps,
the tokenizer) comes from the family's optional hooks (:mod:`zoo.explain.types`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.errors import ZooError

#: Every method ``--method`` accepts; which apply depends on the model (see :func:`image_methods`).
METHODS = ("ig", "saliency", "gradcam", "occlusion", "attention")
#: Methods for models that read tokens.
TEXT_METHODS = ("ig", "saliency", "occlusion")
#: Integration steps of Integrated Gradients (Gauss-Legendre): enough for the completeness tolerance on the
#: built-in models (see docs/explain.md for the deltas measured).
IG_STEPS = 64


@dataclass
class Attributions:
    """Attributions of one batch: ``values`` (N × the input's shape for images, N × T for tokens), and for
    Integrated Gradients Captum's convergence delta per sample (sum of attributions − output difference)."""

    values: np.ndarray
    delta: np.ndarray | None = None


def captum_attr() -> Any:
    """``captum.attr``, or one line saying how to install it."""
    try:
        import captum.attr
    except ImportError as exc:
        raise ZooError("zoo explain needs Captum, which is not installed: pip install 'plugzoo[explain]'") from exc
    return captum.attr


def occlusion_window(height: int, width: int) -> tuple[int, int]:
    """Occlusion patch side and stride for an image: an eighth of the shorter side (at least 2), half-overlapping."""
    side = max(2, min(height, width) // 8)
    return side, max(1, side // 2)


def attribute_images(model: Any, family: Any, images: Any, targets: list[int], method: str, baseline: Any,
                     steps: int = IG_STEPS) -> Attributions:
    """Attributions of ``targets`` (one class per image) for N×C×H×W ``images`` under ``method``.

    ``baseline`` (1×C×H×W) is what Integrated Gradients starts from and what occlusion paints in: a black image
    in the model's input units. Grad-CAM and attention rollout give one map per image (N×1×H×W).
    """
    import torch

    attr = captum_attr()
    with torch.enable_grad():
        inputs = images.detach().clone().requires_grad_(True)
        if method == "ig":
            values, delta = attr.IntegratedGradients(model).attribute(
                inputs, baselines=baseline.expand_as(inputs), target=targets, n_steps=steps,
                method="gausslegendre", return_convergence_delta=True)
            return Attributions(_numpy(values), _numpy(delta))
        if method == "saliency":
            return Attributions(_numpy(attr.Saliency(model).attribute(inputs, target=targets, abs=False)))
        if method == "occlusion":
            channels, height, width = inputs.shape[1:]
            side, stride = occlusion_window(height, width)
            values = attr.Occlusion(model).attribute(inputs, sliding_window_shapes=(channels, side, side),
                                                     strides=(channels, stride, stride), target=targets,
                                                     baselines=baseline)
            return Attributions(_numpy(values))
        if method == "gradcam":
            layer = family.gradcam_layer(model)
            if layer is None:
                raise ZooError("--method gradcam needs convolutional feature maps and this model has none its "
                               "family names (Family.gradcam_layer); use ig, saliency or occlusion")
            maps = attr.LayerGradCam(model, layer).attribute(inputs, target=targets, relu_attributions=True)
            maps = attr.LayerAttribution.interpolate(maps.sum(dim=1, keepdim=True), tuple(inputs.shape[2:]),
                                                     interpolate_mode="bilinear")
            return Attributions(_numpy(maps))
        if method == "attention":
            with torch.no_grad():
                found = family.attention_maps(model, inputs.detach())
            if found is None:
                raise ZooError("--method attention needs a transformer and this model has no attention maps its "
                               "family gives (Family.attention_maps); use ig, saliency, occlusion or gradcam")
            return Attributions(attention_rollout(found, tuple(inputs.shape[2:])))
    raise ZooError(f"unknown --method {method!r}; use one of {', '.join(METHODS)}")


#: Methods for models a family describes with an :class:`zoo.explain.types.InputSpace`.
SPACE_METHODS = ("ig", "saliency", "occlusion")


def attribute_space(forward: Any, inputs: Any, targets: list[int], method: str, baseline: Any,
                    occlusion: tuple[int, ...] | None, kind: str, steps: int = IG_STEPS) -> Attributions:
    """Attributions of ``targets`` (one output per sample) for a batch of representations ``inputs`` (what an
    :class:`zoo.explain.types.InputSpace` attributes: a spectrogram, a row of features) through ``forward``.

    ``baseline`` (1 × the representation) is where Integrated Gradients starts and what occlusion paints in;
    ``occlusion`` is the occlusion window (strides half of it, at least 1), ``None`` when the family gives none.
    """
    import torch

    attr = captum_attr()
    with torch.enable_grad():
        x = inputs.detach().clone().requires_grad_(True)
        if method == "ig":
            values, delta = attr.IntegratedGradients(forward).attribute(
                x, baselines=baseline.expand_as(x), target=targets, n_steps=steps, method="gausslegendre",
                return_convergence_delta=True)
            return Attributions(_numpy(values), _numpy(delta))
        if method == "saliency":
            return Attributions(_numpy(attr.Saliency(forward).attribute(x, target=targets, abs=False)))
        if method == "occlusion" and occlusion is not None:
            strides = tuple(max(1, side // 2) for side in occlusion)
            values = attr.Occlusion(forward).attribute(x, sliding_window_shapes=tuple(occlusion), strides=strides,
                                                       target=targets, baselines=baseline)
            return Attributions(_numpy(values))
    usable = [m for m in SPACE_METHODS if m != "occlusion" or occlusion is not None]
    raise ZooError(f"--method {method} does not apply to {kind} inputs; use one of {', '.join(usable)}")


def attention_rollout(found: Any, size: tuple[int, int]) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema, 2020): per block the head-averaged attention plus the identity (the
    residual), rows renormalised, multiplied from the first block to the last; the first token's row over the
    patches, as an N×1×H×W map upsampled to the image."""
    import torch
    import torch.nn.functional as F

    rollout = None
    for block in found.maps:
        mixed = block.float().mean(dim=1)
        mixed = mixed + torch.eye(mixed.shape[-1], device=mixed.device)
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        rollout = mixed if rollout is None else mixed @ rollout
    if rollout is None:
        raise ZooError("the family gave no attention maps for this model")
    rows, columns = found.grid
    cls = rollout[:, 0, found.prefix_tokens:]
    if cls.shape[-1] != rows * columns:
        raise ZooError(f"the family's attention maps hold {cls.shape[-1]} patch tokens, not the {rows}×{columns} "
                       "grid it names")
    grid = cls.reshape(-1, 1, rows, columns)
    return _numpy(F.interpolate(grid, size=size, mode="bilinear", align_corners=False))


def attribute_tokens(token_model: Any, ids: Any, target: int, method: str, steps: int = IG_STEPS) -> Attributions:
    """Attributions of the next-token logit ``target`` to each token of the 1×T prompt ``ids``.

    Integrated Gradients integrates along the embedding layer's output from the baseline prompt (every token the
    family's ``baseline_token``) and sums over the embedding width; saliency is gradient × embedding summed the same
    way; occlusion is the logit's drop when one token at a time becomes the baseline token.
    """
    import torch

    attr = captum_attr()
    forward = token_model.next_token_logits
    baseline = torch.full_like(ids, int(token_model.baseline_token))
    with torch.enable_grad():
        if method == "ig":
            values, delta = attr.LayerIntegratedGradients(forward, token_model.embedding).attribute(
                ids, baselines=baseline, target=target, n_steps=steps, method="gausslegendre",
                return_convergence_delta=True)
            return Attributions(_numpy(values.sum(dim=-1)), _numpy(delta))
        if method == "saliency":
            values = attr.LayerGradientXActivation(forward, token_model.embedding).attribute(ids, target=target)
            return Attributions(_numpy(values.sum(dim=-1)))
    if method == "occlusion":
        with torch.no_grad():
            length = ids.shape[1]
            occluded = ids.repeat(length, 1)
            occluded[torch.arange(length), torch.arange(length)] = int(token_model.baseline_token)
            full = forward(ids)[:, target]
            return Attributions(_numpy((full - forward(occluded)[:, target])[None]))
    raise ZooError(f"--method {method} does not apply to text; use one of {', '.join(TEXT_METHODS)}")


def _numpy(tensor: Any) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()
