"""The ``zoo`` command: thin wrappers over the Python API that parse, call and print.

Listing commands never import torch; heavy imports happen inside the commands that need them.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from zoo.errors import ParityError, ZooError
from zoo.version import __version__


class UserError(click.ClickException):
    """A ZooError shown as one line on stderr, with the error's exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ZooGroup(click.Group):
    """Turns ZooErrors (and surprises) into one clear line, unless --debug asks for the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except ZooError as exc:
            if _debug(ctx):
                raise
            raise UserError(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            click.echo("zoo: interrupted", err=True)
            sys.exit(130)
        except Exception as exc:
            if _debug(ctx):
                raise
            raise UserError(
                f"internal error: {type(exc).__name__}: {exc} (run `zoo --debug ...` for the traceback)", 1
            ) from None


def _debug(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool(root.params.get("debug")) or os.environ.get("ZOO_DEBUG") == "1"


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zoo")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.option("--no-plugins", is_flag=True, help="Load the built-in plugins only (same as ZOO_LOAD_PLUGINS=).")
def cli(debug: bool, no_plugins: bool) -> None:
    """zoo: list, train, export and verify the models that installed plugins provide."""
    if no_plugins:
        os.environ["ZOO_LOAD_PLUGINS"] = ""
        from zoo.registry import reset

        reset()


@cli.command("list")
@click.argument("pattern", default="*")
@click.option("--family", help="Only models of this family.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (name, family, plugin, summary, ...).")
def list_command(pattern: str, family: str | None, as_json: bool) -> None:
    """List the models installed plugins provide (PATTERN takes * and ? wildcards)."""
    from zoo.registry import get_family_spec, list_models

    if family:
        get_family_spec(family)
    specs = list_models(pattern, family=family)
    if as_json:
        _print_json([spec.to_dict() for spec in specs])
        return
    if not specs:
        click.echo(f"no models match {pattern!r}" + (f" in family {family!r}" if family else ""), err=True)
        return
    rows = [("NAME", "FAMILY", "PLUGIN", "SUMMARY")] + [(s.name, s.family, s.plugin, s.summary) for s in specs]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=False)) + "  " + row[3])


@cli.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the spec as JSON.")
def info(name: str, as_json: bool) -> None:
    """Show one model: family, plugin, input, hyperparameters and architecture arguments."""
    from zoo.registry import get_spec

    data = get_spec(name).to_dict()
    if as_json:
        _print_json(data)
        return
    for key in ("name", "family", "plugin", "summary", "builder"):
        click.echo(f"{key + ':':10} {data[key]}")
    i = data["input"]
    click.echo(f"{'input:':10} {i['channels']}×{i['height']}×{i['width']}")
    click.echo(f"{'defaults:':10} " + ", ".join(f"{k}={v}" for k, v in data["defaults"].items()))
    click.echo(f"{'args:':10} " + ", ".join(f"{k}={v}" for k, v in data["model_args"].items()))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print plugin records as JSON.")
def plugins(as_json: bool) -> None:
    """Show every plugin found: where it comes from, its hooks, what it registered, its status."""
    from zoo.registry import list_plugins

    records = list_plugins()
    if as_json:
        _print_json([r.to_dict() for r in records])
        return
    for r in records:
        origin = "built-in" if r.builtin else f"{r.distribution} {r.version}".strip()
        click.echo(f"{r.name}  [{r.status}]  {origin}")
        for kind, names in r.registered.items():
            click.echo(f"    {kind}: {', '.join(names)}")
        if r.error:
            click.echo(f"    error: {r.error}")


def _parse_assignments(values: tuple[str, ...], option: str) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ZooError(f"{option} takes KEY=VALUE, got {item!r}")
        try:
            parsed[key] = json.loads(raw)
        except json.JSONDecodeError:
            parsed[key] = raw
    return parsed


@cli.command()
@click.argument("name")
@click.option("--data", "dataset", default="digits", show_default=True, help="Dataset name.")
@click.option("--epochs", type=int, help="Epochs (default: the model's).")
@click.option("--batch-size", type=int, help="Batch size (default: the model's).")
@click.option("--lr", type=float, help="Learning rate (default: the model's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the split, init and shuffling.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--out", default="runs", show_default=True, type=click.Path(), help="Folder the run directory goes in.")
@click.option("--hp", "hparams", multiple=True, metavar="KEY=VALUE",
              help="Another hyperparameter, e.g. --hp momentum=0.8.")
@click.option("--arg", "model_args", multiple=True, metavar="KEY=VALUE", help="A model argument, e.g. --arg width=32.")
@click.option("--export", "then_export", is_flag=True, help="Then export to exports/ and verify parity.")
@click.option("--json", "as_json", is_flag=True, help="Print the run directory and final metrics as JSON.")
def train(name: str, dataset: str, epochs: int | None, batch_size: int | None, lr: float | None, seed: int,
          device: str, out: str, hparams: tuple[str, ...], model_args: tuple[str, ...], then_export: bool,
          as_json: bool) -> None:
    """Train model NAME through the shared engine; writes a run directory."""
    from zoo.engine import train as run_training

    result = run_training(
        name, dataset=dataset, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device, out=out,
        hyperparameters=_parse_assignments(hparams, "--hp"), model_args=_parse_assignments(model_args, "--arg"),
    )
    output = result.to_dict()
    if not as_json:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in result.summary["metrics"].items())
        click.echo(f"run: {result.run_dir}\nmetrics: {metrics}")
    if then_export:
        exported = _export(str(result.run_dir), "exports", 18, "dynamo", False, True, as_json)
        output.update({"bundle_dir": str(exported.bundle_dir), "parity": exported.parity})
    if as_json:
        _print_json(output)


def _export(run_dir: str, out: str, opset: int, exporter: str, force: bool, verify: bool, as_json: bool) -> Any:
    from zoo.bundles import export_run, format_table

    try:
        result = export_run(run_dir, out=out, opset=opset, exporter=exporter, force=force, verify=verify)
    except ParityError as exc:
        if exc.report is not None:
            _print_json(exc.report) if as_json else click.echo(format_table(exc.report))
        raise UserError(str(exc), exc.exit_code) from None
    if not as_json:
        if result.parity:
            click.echo(format_table(result.parity))
        click.echo(f"bundle: {result.bundle_dir}")
    return result


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--out", default="exports", show_default=True, type=click.Path(), help="Folder the bundle goes in.")
@click.option("--opset", default=18, show_default=True, type=int, help="ONNX opset.")
@click.option("--exporter", default="dynamo", show_default=True, type=click.Choice(["dynamo", "torchscript"]))
@click.option("--force", is_flag=True, help="Replace an existing bundle of the same name.")
@click.option("--no-verify", is_flag=True, help="Skip the parity check (not recommended).")
@click.option("--json", "as_json", is_flag=True, help="Print the bundle directory and parity report as JSON.")
def export(run_dir: str, out: str, opset: int, exporter: str, force: bool, no_verify: bool, as_json: bool) -> None:
    """Export a trained run to an ONNX bundle and verify it (exit 1 if parity fails)."""
    result = _export(run_dir, out, opset, exporter, force, not no_verify, as_json)
    if as_json:
        _print_json({"bundle_dir": str(result.bundle_dir), "parity": result.parity})


@cli.command()
@click.argument("bundle", type=click.Path())
@click.option("--providers", help="Comma list of providers to check (cpu, cuda); default: all that run here.")
@click.option("--run", "run_dir", type=click.Path(), help="The run directory, if it moved since export.")
@click.option("--json", "as_json", is_flag=True, help="Print the parity report as JSON.")
def verify(bundle: str, providers: str | None, run_dir: str | None, as_json: bool) -> None:
    """Check a bundle's graphs against the PyTorch model under ONNX Runtime (exit 1 on failure)."""
    from zoo.bundles import format_table, verify_bundle

    chosen = [p.strip() for p in providers.split(",") if p.strip()] if providers else None
    report = verify_bundle(bundle, providers=chosen, run_dir=run_dir)
    if as_json:
        _print_json(report)
    else:
        click.echo(format_table(report))
    if not report["passed"]:
        sys.exit(ParityError.exit_code)


@cli.command()
@click.argument("bundle", type=click.Path())
@click.option("--n", "count", default=64, show_default=True, type=int, help="How many images to draw.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for the noise.")
@click.option("--out", type=click.Path(), help="PNG file to write (default: <bundle>-samples-seed<S>.png here).")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def sample(bundle: str, count: int, seed: int, out: str | None, force: bool) -> None:
    """Draw images from a GAN or VAE bundle with ONNX Runtime alone (torch is not imported)."""
    from zoo.sampling import sample_bundle

    click.echo(f"samples: {sample_bundle(bundle, n=count, seed=seed, out=out, force=force)}")


def _add_plugin_commands() -> None:
    """Let plugins add commands; a plugin that fails here is reported and skipped."""
    from zoo.plugins import report_problem
    from zoo.registry import catalog

    cat = catalog()
    by_name = {r.name: r for r in cat.plugins}
    for impl in cat.manager.hook.register_commands.get_hookimpls():
        record = by_name[impl.plugin_name]
        if record.status != "loaded":
            continue
        before = set(cli.commands)
        try:
            impl.function(cli=cli)
        except Exception as exc:
            report_problem(record, f"raised in register_commands ({type(exc).__name__}: {exc})")
        record.registered.setdefault("commands", []).extend(sorted(set(cli.commands) - before))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = sys.argv[1:] if argv is None else argv
    if "--no-plugins" in args:
        os.environ["ZOO_LOAD_PLUGINS"] = ""
    try:
        _add_plugin_commands()
    except ZooError as exc:  # ZOO_STRICT_PLUGINS=1 and a broken plugin
        if "--debug" in args:
            raise
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    cli.main(args=args, prog_name="zoo")


if __name__ == "__main__":
    main()
