"""Parameter counts and FLOPs of a registered model (``zoo info NAME --flops``); torch only in here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class ModelStats:
    """What one forward pass of a model costs, at the input it was measured on."""

    parameters: int
    trainable: int
    flops: int  # per sample (``unit``), counted by torch.utils.flop_counter (a multiply-add is 2 FLOPs)
    input_shape: tuple[int, ...]
    unit: str = "image"  # what one sample is: image, row, clip, token sequence (zoo.data.kinds.sample_unit)

    def to_dict(self) -> dict[str, Any]:
        return {"parameters": self.parameters, "trainable": self.trainable, "flops": self.flops,
                "input": list(self.input_shape), "unit": self.unit}


def model_stats(name: str, **model_args: Any) -> ModelStats:
    """Build ``name`` with its default arguments (plus ``model_args``) and count one batch-1 forward pass."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from zoo.api import create_model, get_spec
    from zoo.data.kinds import accepted_kinds, sample_unit

    spec = get_spec(name)
    kind = accepted_kinds(spec)[0][0]
    if kind != "image":
        model = create_model(name, **model_args).eval()
        sample = _one_sample(kind, spec, model_args)
    else:
        size = model_args.get("image_size", spec.model_args.get("image_size", [spec.input.height, spec.input.width]))
        if "image_size" not in spec.model_args:  # sized by its input alone (global pooling): not a builder argument
            model_args = {k: v for k, v in model_args.items() if k != "image_size"}
        model = create_model(name, **model_args).eval()
        channels = int(model_args.get("in_channels", spec.model_args.get("in_channels", spec.input.channels)))
        height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        sample = torch.zeros(1, channels, height, width)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(sample)
    parameters = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ModelStats(parameters, trainable, int(counter.get_total_flops()), tuple(sample.shape[1:]),
                      sample_unit(kind))


def _one_sample(kind: str, spec: Any, model_args: dict[str, Any]) -> Any:
    """A batch of one zero sample of a non-image kind: a row of features, a clip, a token sequence."""
    import torch

    args = {**spec.model_args, **model_args}
    if kind == "features":
        return torch.zeros(1, int(args.get("in_features", spec.input.width)))
    if kind == "text":
        return torch.zeros(1, int(args.get("context", spec.input.width)), dtype=torch.long)
    if kind == "audio":
        return torch.zeros(1, int(args.get("num_samples", spec.input.width)))
    return torch.zeros(1, *spec.input.shape)


def human(count: float) -> str:
    """``25557032`` → ``25.56 M``."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= scale:
            return f"{count / scale:.2f} {unit}"
    return str(int(count))
