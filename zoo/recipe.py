"""Fine-tuning recipe pieces any family may use: parameter groups (no weight decay on norms, biases, position
embeddings and tokens; layer-wise learning-rate decay) and mixup/cutmix drawn from (seed, epoch, step).

Re-exported from :mod:`zoo.family` (the public contract). A model says how deep each of its parameters sits with
an optional ``lr_layer_groups()`` method: a list of tuples of parameter-name prefixes, from the input to the output
(a ViT: the patch embedding, class token and position embedding first, then each block, then the norm and head).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError

if TYPE_CHECKING:
    import torch

#: Parameter-name parts that never get weight decay, besides every tensor of one dimension (norms, biases).
NO_DECAY_NAMES = ("pos_embed", "position", "cls_token", "token", "embed.weight", "bias")


def no_decay(name: str, ndim: int) -> bool:
    """Whether a parameter is exempt from weight decay: norms, biases, position embeddings and learned tokens."""
    return ndim <= 1 or any(part in name for part in NO_DECAY_NAMES)


def param_groups(model: torch.nn.Module, hp: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Optimizer groups for ``model`` under ``hp``: ``weight_decay`` on matrices and kernels only (unless
    ``no_decay_groups=0``), and with ``layer_decay=d`` (0 < d ≤ 1) the learning rate of layer ``i`` of ``L`` scaled by
    ``d ** (L - 1 - i)`` (the model's ``lr_layer_groups()``; a model without it is refused in one line). Each group
    carries ``lr`` and ``weight_decay``; frozen parameters are left out."""
    lr, weight_decay = float(hp["lr"]), float(hp.get("weight_decay", 0.0))
    split_decay = bool(int(hp.get("no_decay_groups", 1)))
    layer_decay = float(hp.get("layer_decay", 1.0))
    if not 0.0 < layer_decay <= 1.0:
        raise ZooError(f"--hp layer_decay={layer_decay} must be in (0, 1]; 0.65-0.85 is usual for ViTs")
    depth_of = _depths(model) if layer_decay < 1.0 else (lambda _name: 0, 1)
    depth, layers = depth_of
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        exempt = split_decay and no_decay(name, param.ndim)
        layer = depth(name)
        key = (layer, exempt)
        if key not in groups:
            groups[key] = {"params": [], "lr": lr * layer_decay ** (layers - 1 - layer),
                           "weight_decay": 0.0 if exempt else weight_decay}
        groups[key]["params"].append(param)
    return [groups[key] for key in sorted(groups)]


def _depths(model: Any) -> tuple[Any, int]:
    layers_of = getattr(model, "lr_layer_groups", None)
    if not callable(layers_of):
        raise ZooError(f"--hp layer_decay needs a model that says how deep its layers are (lr_layer_groups()); "
                       f"{type(model).__name__} does not: drop --hp layer_decay")
    prefixes: Sequence[Sequence[str]] = layers_of()
    count = len(prefixes)

    def depth(name: str) -> int:
        best, best_len = count - 1, -1  # what no prefix names sits with the output (a head)
        for index, group in enumerate(prefixes):
            for prefix in group:
                if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best_len:
                    best, best_len = index, len(prefix)
        return best

    return depth, count


@dataclass(frozen=True)
class Mix:
    """One batch's mixup or cutmix: partner order, the share ``lam`` of each sample's own label, (cutmix) the box."""

    order: torch.Tensor
    lam: float
    box: tuple[int, int, int, int] | None = None  # top, bottom, left, right


def draw_mix(batch: int, height: int, width: int, hp: Mapping[str, Any], *, seed: int, epoch: int, step: int
             ) -> Mix | None:
    """The mix of one training batch, or None: ``--hp mixup=α`` and/or ``cutmix=α`` (λ ~ Beta(α, α)), applied with
    probability ``mix_prob`` (default 1) before epoch ``mix_off_epoch`` (0, the default: never switched off); with both,
    each batch picks one at even odds. Drawn from a generator of its own seeded by (seed, epoch, step), so a resumed
    run mixes the same batches the same way and the run's random state is untouched."""
    import numpy as np
    import torch

    mixup, cutmix = float(hp.get("mixup", 0.0)), float(hp.get("cutmix", 0.0))
    if mixup < 0 or cutmix < 0:
        raise ZooError("--hp mixup and cutmix are Beta(α, α) parameters: give α > 0 (0.2 and 1.0 are usual) or 0")
    off = int(hp.get("mix_off_epoch", 0))
    if (mixup == 0 and cutmix == 0) or (off > 0 and epoch >= off) or batch < 2:
        return None
    rng = np.random.default_rng([seed, epoch, step])
    if rng.random() >= float(hp.get("mix_prob", 1.0)):
        return None
    use_cutmix = cutmix > 0 and (mixup == 0 or rng.random() < 0.5)
    alpha = cutmix if use_cutmix else mixup
    lam = float(rng.beta(alpha, alpha))
    order = torch.from_numpy(rng.permutation(batch))
    if not use_cutmix:
        return Mix(order, lam)
    cut_h, cut_w = int(height * (1 - lam) ** 0.5), int(width * (1 - lam) ** 0.5)
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    lam = 1.0 - (bottom - top) * (right - left) / (height * width)  # the share the pasted box really left
    return Mix(order, lam, (top, bottom, left, right))


def mix_inputs(images: torch.Tensor, mix: Mix) -> torch.Tensor:
    """The batch mixed: ``lam·x + (1−lam)·x[order]`` (mixup), or ``x`` with the partner's box pasted in (cutmix)."""
    partner = images[mix.order]
    if mix.box is None:
        return images * mix.lam + partner * (1.0 - mix.lam)
    top, bottom, left, right = mix.box
    mixed = images.clone()
    mixed[..., top:bottom, left:right] = partner[..., top:bottom, left:right]
    return mixed
