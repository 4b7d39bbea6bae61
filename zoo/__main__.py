"""``python -m zoo`` runs the CLI (torchrun uses this form)."""

from zoo.cli import main

main()
