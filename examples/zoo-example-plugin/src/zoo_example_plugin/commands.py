"""The command this plugin adds: ``zoo digit-rows INDEX``."""

from __future__ import annotations

import click

from zoo.errors import ZooError

SHADES = " .:-=+*#%@"


@click.command("digit-rows")
@click.argument("index", type=int, default=0)
def digit_rows(index: int) -> None:
    """Draw digit INDEX of the digit-rows training split the way the recurrent models read it: row by row."""
    from zoo.data import load_dataset

    data = load_dataset("digit-rows")
    if not 0 <= index < len(data.x_train):
        raise ZooError(f"INDEX must be from 0 to {len(data.x_train) - 1}, got {index}")
    sequence = data.x_train[index]
    low, high = float(sequence.min()), float(sequence.max())
    for step, row in enumerate(sequence):
        shades = "".join(SHADES[int((v - low) / (high - low + 1e-9) * (len(SHADES) - 1))] * 2 for v in row)
        click.echo(f"step {step}: |{shades}|")
    click.echo(f"label: {data.info.class_names[int(data.y_train[index])]}")
