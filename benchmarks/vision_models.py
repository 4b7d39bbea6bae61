"""Parameters and FLOPs per image of the vision models, at 224×224 (standard stem) and 32×32 (stem=small).

    python benchmarks/vision_models.py > benchmarks/results/vision_models.txt
"""

from __future__ import annotations

import platform

import torch

from zoo.model_stats import human, model_stats

MODELS = ("resnet18", "resnet34", "resnet50", "vit-tiny", "vit-small", "vit-base")


def main() -> None:
    print(f"# torch {torch.__version__}, {platform.machine()}; FLOPs from torch.utils.flop_counter (multiply-add = 2)")
    print("| model | parameters (1000 classes) | FLOPs 224×224 | parameters (10 classes, 32×32 small) "
          "| FLOPs 32×32 small |")
    print("| --- | --- | --- | --- | --- |")
    for name in MODELS:
        big = model_stats(name)
        small = model_stats(name, stem="small", num_classes=10, image_size=[32, 32])
        print(f"| {name} | {big.parameters:,} | {human(big.flops)} | {small.parameters:,} | {human(small.flops)} |")


if __name__ == "__main__":
    main()
