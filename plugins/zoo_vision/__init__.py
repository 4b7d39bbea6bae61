"""Built-in plugin: real-size vision architectures in the ``classifier`` family (from ``zoo_cnn``).

ResNet-18/34/50 in torchvision's layout and ViT-Tiny/Small/Base (patch 16) in timm's layout, so state
dicts published for those libraries load with ``zoo train NAME --init FILE.safetensors``. Each takes
``--arg stem=small`` for 32×32 images (CIFAR-style). Nothing here imports torch: builders are lazy
``"module:attr"`` references.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zoo.hookspecs import hookimpl
from zoo.specs import InputSpec, ModelSpec

#: name → (builder, published parameter count at 1000 classes and 224×224, description)
RESNETS = {
    "resnet18": ("zoo_vision.resnet:resnet18", 11_689_512, "ResNet-18"),
    "resnet34": ("zoo_vision.resnet:resnet34", 21_797_672, "ResNet-34"),
    "resnet50": ("zoo_vision.resnet:resnet50", 25_557_032, "ResNet-50 (v1.5, bottleneck blocks)"),
}
VITS = {
    "vit-tiny": ("zoo_vision.vit:vit_tiny", 5_717_416, "ViT-Tiny/16 (width 192, 3 heads)"),
    "vit-small": ("zoo_vision.vit:vit_small", 22_050_664, "ViT-Small/16 (width 384, 6 heads)"),
    "vit-base": ("zoo_vision.vit:vit_base", 86_567_656, "ViT-Base/16 (width 768, 12 heads)"),
}
#: Every model here, with its published parameter count (the tests check both).
PUBLISHED_PARAMETERS = {name: count for name, (_, count, _) in {**RESNETS, **VITS}.items()}


@hookimpl
def register_models(register: Callable[[Any], None]) -> None:
    for name, (builder, count, title) in RESNETS.items():
        register(ModelSpec(
            name=name, family="classifier", builder=builder, input=InputSpec(3, 224, 224),
            summary=f"{title}, torchvision layout; {count / 1e6:.1f} M parameters at 1000 classes",
            defaults={"epochs": 30, "batch_size": 64, "lr": 0.025, "optimizer": "sgd", "momentum": 0.9,
                      "weight_decay": 1e-4},
            model_args={"in_channels": 3, "num_classes": 1000, "stem": "standard", "norm": "batch"},
        ))
    for name, (builder, count, title) in VITS.items():
        register(ModelSpec(
            name=name, family="classifier", builder=builder, input=InputSpec(3, 224, 224),
            summary=f"{title}, timm layout; {count / 1e6:.1f} M parameters at 1000 classes, 224×224",
            defaults={"epochs": 30, "batch_size": 64, "lr": 1e-3, "optimizer": "adamw", "weight_decay": 0.05},
            model_args={"in_channels": 3, "num_classes": 1000, "image_size": [224, 224], "patch_size": 16,
                        "stem": "standard", "checkpoint_activations": False, "drop_path": 0.0},
        ))
