"""Built-in plugin: datasets read from local files (MNIST, Fashion-MNIST, CIFAR-10, image folders, npz)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zoo.hookspecs import hookimpl
from zoo.specs import DatasetSpec, InputSpec


@hookimpl
def register_datasets(register: Callable[[Any], None]) -> None:
    idx = "train-images-idx3-ubyte and train-labels-idx1-ubyte (raw or .gz)"
    register(DatasetSpec("mnist", f"MNIST from a folder holding {idx}", "zoo_datasets.loaders:load_mnist",
                         input=InputSpec(1, 28, 28), num_classes=10, size=60000, needs_path=True))
    register(DatasetSpec("fashion-mnist", f"Fashion-MNIST from a folder holding {idx}",
                         "zoo_datasets.loaders:load_fashion_mnist",
                         input=InputSpec(1, 28, 28), num_classes=10, size=60000, needs_path=True))
    register(DatasetSpec("cifar10", "CIFAR-10 from the python-format batches (cifar-10-batches-py folder)",
                         "zoo_datasets.loaders:load_cifar10",
                         input=InputSpec(3, 32, 32), num_classes=10, size=50000, needs_path=True))
    register(DatasetSpec("imagefolder", "PNG/JPEG images in one sub-folder per class (PATH/<class>/<image>)",
                         "zoo_datasets.loaders:load_imagefolder", needs_path=True))
    register(DatasetSpec("npz", "an .npz file with 'images' (N×H×W[×C] or N×C×H×W) and 'labels' arrays",
                         "zoo_datasets.loaders:load_npz", needs_path=True))
