"""Parameter counts and FLOPs of a registered model (``zoo info NAME --flops``); torch only in here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class ModelStats:
    """What one forward pass of a model costs, at the input it was measured on."""

    parameters: int
    trainable: int
    flops: int  # per image, counted by torch.utils.flop_counter (a multiply-add is 2 FLOPs)
    input_shape: tuple[int, int, int]

    def to_dict(self) -> dict[str, Any]:
        return {"parameters": self.parameters, "trainable": self.trainable, "flops": self.flops,
                "input": list(self.input_shape)}


def model_stats(name: str, **model_args: Any) -> ModelStats:
    """Build ``name`` with its default arguments (plus ``model_args``) and count one batch-1 forward pass."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from zoo.api import create_model, get_spec

    spec = get_spec(name)
    size = model_args.get("image_size", spec.model_args.get("image_size", [spec.input.height, spec.input.width]))
    if "image_size" not in spec.model_args:  # sized by its input alone (global pooling): not a builder argument
        model_args = {k: v for k, v in model_args.items() if k != "image_size"}
    model = create_model(name, **model_args).eval()
    channels = int(model_args.get("in_channels", spec.model_args.get("in_channels", spec.input.channels)))
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, channels, height, width))
    parameters = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ModelStats(parameters, trainable, int(counter.get_total_flops()), (channels, height, width))


def human(count: float) -> str:
    """``25557032`` → ``25.56 M``."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= scale:
            return f"{count / scale:.2f} {unit}"
    return str(int(count))
