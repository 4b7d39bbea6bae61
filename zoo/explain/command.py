"""The ``zoo explain`` command: parse, explain, write the pictures or the token page, print (docs/explain.md)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click

from zoo.errors import ZooError

#: ``--method`` choices (the same as ``zoo.explain.attribute.METHODS``, kept here so ``zoo --help`` imports no numpy).
METHOD_CHOICES = ("ig", "saliency", "gradcam", "occlusion", "attention")
#: Exit code when an attribution fails one of its checks (like a failed parity check).
CHECK_FAILED = 1


@click.command("explain")
@click.argument("target", type=click.Path())
@click.argument("inputs", nargs=-1, required=True)
@click.option("--method", default="ig", show_default=True, type=click.Choice(METHOD_CHOICES),
              help="Integrated Gradients, saliency, Grad-CAM (convolutional models), occlusion, attention rollout "
                   "(vision transformers).")
@click.option("--target", "explained", metavar="CLASS", help="Class (name or index) to explain, or for a language "
              "model the next token (text of one token, or #ID); default: the model's own prediction.")
@click.option("--sanity", is_flag=True, help="Also run the model-parameter randomisation check (slower).")
@click.option("--steps", type=int, help="Integrated Gradients' integration steps (default 64, or what the family "
              "asks for its inputs: 1024 for regressors).")
@click.option("--out", type=click.Path(), help="Folder for the PNGs / token page (default: explanations/<name>/).")
@click.option("--run", "run_dir", type=click.Path(), help="For a bundle: its run folder, if it moved.")
@click.option("--force", is_flag=True, help="Replace pictures that already exist in --out.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw attributions and checks as JSON (files are "
              "written only with --out).")
def explain_command(target: str, inputs: tuple[str, ...], method: str, explained: str | None, sanity: bool,
                    steps: int | None, out: str | None, run_dir: str | None, force: bool, as_json: bool) -> None:
    """Attributions of a run's (or a bundle's) model for INPUTS: image files (or val:INDEX) for classifiers,
    prompts for language models, the files a family reads (WAV clips, CSV rows) or val:INDEX for the others.
    Exit 1 when a check fails (IG completeness, --sanity)."""
    from zoo.explain.explainer import explain
    from zoo.explain.source import open_subject

    subject = open_subject(target, run_dir)
    results = explain(subject, list(inputs), method=method, target=explained, sanity=sanity, steps=steps)
    written: list[Path] = []
    if out is not None or not as_json:
        folder = Path(out) if out else Path("explanations") / subject.name
        written = write_outputs(subject, results, folder, force)
    if as_json:
        click.echo(json.dumps({"subject": subject.name, "method": method, "files": [str(p) for p in written],
                               "explanations": [r.to_dict() for r in results]}, indent=2))
    else:
        _print(subject, results, written)
    if not all(r.passed for r in results):
        sys.exit(CHECK_FAILED)


def write_outputs(subject: Any, results: list[Any], folder: Path, force: bool) -> list[Path]:
    """PNG overlays (images) or one HTML page (text) in ``folder``; refuses to replace files without ``force``."""
    from zoo.atomic import write_bytes

    if subject.kind == "text":
        from zoo.explain.render import tokens_html

        planned = {folder / f"tokens-{results[0].method}.html": tokens_html(results).encode()}
    elif subject.space is not None:
        planned = {}
        several = len({item.target for item in results}) > 1 and not subject.space.classes
        for item in results if subject.space.picture is not None else []:
            suffix = f"-{_stem(item.target_name)}" if several else ""
            path = _unique(folder / f"{_stem(item.input)}-{item.method}{suffix}.png", planned)
            planned[path] = subject.space.picture(item)
    else:
        from zoo.explain.render import overlay_png

        info = subject.data_info
        planned = {}
        for item in results:
            path = _unique(folder / f"{_stem(item.input)}-{item.method}.png", planned)
            caption = f"{item.method}: {item.target_name} (p={item.probability:.2f})"
            planned[path] = overlay_png(item.image, item.values, info.mean, info.std, caption)
    existing = [p for p in planned if p.exists()]
    if existing and not force:
        raise ZooError(f"{existing[0]} already exists; pass --force to replace it or --out to write elsewhere")
    folder.mkdir(parents=True, exist_ok=True)
    for path, data in planned.items():
        write_bytes(path, data)
    return list(planned)


def _stem(name: str) -> str:
    """A file name part for an input: a file's stem (with ``-N`` for row ``N`` of ``rows.csv:N``), else the input."""
    row = re.search(r":(\d+)$", name)
    suffix = ""
    if row and ("/" in name or "." in name):
        name, suffix = name[:row.start()], f"-{row.group(1)}"
    stem = Path(name).stem if "/" in name or "." in name else name
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem + suffix).strip("-")


def _unique(path: Path, planned: dict[Path, bytes]) -> Path:
    """``path``, or ``<stem>-2.png`` and so on when another input of this call already took it (same file name
    in two folders)."""
    found, number = path, 1
    while found in planned:
        number += 1
        found = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return found


def _print(subject: Any, results: list[Any], written: list[Path]) -> None:
    from zoo.explain.render import feature_lines, tokens_terminal

    color = sys.stdout.isatty()
    for item in results:
        if item.probability is None:  # an output that is a value
            head = f"{item.input}: {item.target_name} = {item.output:.6g}; {item.method} of {item.target_name!r}"
        else:
            head = (f"{item.input}: predicted {item.predicted_name!r}; {item.method} of {item.target_name!r} "
                    f"(p={item.probability:.3f})")
        click.echo(head)
        if item.tokens is not None:
            click.echo("  " + tokens_terminal(item.tokens, item.values, color))
        if item.features is not None:
            click.echo(feature_lines(item.features, item.feature_values or [], item.values))
        for check in item.checks:
            click.echo(f"  {check.name}: {'passed' if check.passed else 'FAILED'}: {check.detail}")
    for path in written:
        click.echo(f"wrote {path}")
