"""Built-in plugin: the embedded ``digits`` dataset (scikit-learn's bundled 8×8 handwritten digits)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zoo.hookspecs import hookimpl
from zoo.specs import DatasetSpec, InputSpec


@hookimpl
def register_datasets(register: Callable[[Any], None]) -> None:
    register(
        DatasetSpec(
            name="digits",
            summary="8×8 handwritten digits, 1,797 images in 10 classes (bundled with scikit-learn, no download)",
            loader="zoo_digits.loader:load_digits",
            input=InputSpec(1, 8, 8),
            num_classes=10,
            size=1797,
        )
    )
