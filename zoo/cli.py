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
from zoo.serve.command import serve_command
from zoo.version import __version__


class UserError(click.ClickException):
    """A ZooError shown as one line on stderr, with the error's exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ZooGroup(click.Group):
    """Turns ZooErrors (and surprises) into one clear line, unless --debug asks for the traceback."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """A command of zoo's, else one a plugin adds (plugins are asked once, when a name is not zoo's)."""
        command = super().get_command(ctx, cmd_name)
        if command is None and self is cli:
            _add_plugin_commands()
            command = super().get_command(ctx, cmd_name)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except ZooError as exc:
            if _debug(ctx):
                raise
            _quiet_unless_first_rank(exc.exit_code)
            raise UserError(str(exc), exc.exit_code) from exc
        except KeyboardInterrupt:
            _quiet_unless_first_rank(130)
            click.echo("zoo: interrupted", err=True)
            sys.exit(130)
        except Exception as exc:
            if _debug(ctx):
                raise
            from zoo import faults

            if isinstance(exc, BrokenPipeError):  # `zoo list | head`: the reader left; nothing to say
                faults.silence_stdout()
                sys.exit(141)
            if faults.interrupted_by_user(exc):  # a library wrapped the KeyboardInterrupt in its own error
                _quiet_unless_first_rank(130)
                click.echo("zoo: interrupted", err=True)
                sys.exit(130)
            user = faults.as_user_error(exc)
            if user is not None:
                _quiet_unless_first_rank(user.exit_code)
                raise UserError(str(user), user.exit_code) from exc
            raise UserError(
                f"internal error: {type(exc).__name__}: {exc} (run `zoo --debug ...` for the traceback)", 1
            ) from exc


def _quiet_unless_first_rank(code: int) -> None:
    """Under torchrun only process 0 reports an error (every process hits the same one): others just exit."""
    if os.environ.get("RANK", "0") != "0":
        sys.exit(code)


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
@click.option("--flops", is_flag=True, help="Also build the model (imports torch): parameters and FLOPs per sample "
              "(image, row, clip or token sequence).")
@click.option("--arg", "model_args", multiple=True, metavar="KEY=VALUE", help="With --flops: a model argument.")
def info(name: str, as_json: bool, flops: bool, model_args: tuple[str, ...]) -> None:
    """Show one model: family, plugin, input, hyperparameters and architecture arguments."""
    from zoo.registry import get_spec

    data = get_spec(name).to_dict()
    if flops:
        from zoo.model_stats import model_stats

        data["stats"] = model_stats(name, **_parse_assignments(model_args, "--arg")).to_dict()
    if as_json:
        _print_json(data)
        return
    for key in ("name", "family", "plugin", "summary", "builder"):
        click.echo(f"{key + ':':10} {data[key]}")
    click.echo(f"{'input:':10} {_input_text(name, data['input'])}")
    click.echo(f"{'defaults:':10} " + ", ".join(f"{k}={v}" for k, v in data["defaults"].items()))
    click.echo(f"{'args:':10} " + ", ".join(f"{k}={v}" for k, v in data["model_args"].items()))
    if flops:
        from zoo.model_stats import human

        stats = data["stats"]
        click.echo(f"{'params:':10} {stats['parameters']:,} ({human(stats['parameters'])})")
        shape = "×".join(map(str, stats["input"]))
        click.echo(f"{'flops:':10} {human(stats['flops'])}FLOPs per {stats['unit']} at {shape}")


def _input_text(name: str, shape: dict[str, int]) -> str:
    """A model's default input in words of its kind: ``1×8×8`` (an image), ``a row of 10 features``…"""
    from zoo.data.kinds import accepted_kinds
    from zoo.registry import get_spec

    kind = accepted_kinds(get_spec(name))[0][0]
    words = {"features": "a row of {} features", "text": "{} tokens", "audio": "{} samples"}
    if kind in words:
        return words[kind].format(shape["width"])
    return f"{shape['channels']}×{shape['height']}×{shape['width']}"


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print plugin records as JSON.")
@click.option("--requirements", is_flag=True, help="Print name==version of each loaded plugin's distribution.")
def plugins(as_json: bool, requirements: bool) -> None:
    """Show every plugin found: where it comes from, its hooks, what it registered, its status."""
    from zoo.registry import list_plugins

    records = list_plugins()
    if requirements:
        pins = {f"{r.distribution}=={r.version}" for r in records if r.status == "loaded" and r.distribution}
        click.echo("\n".join(sorted(pins, key=str.lower)))
        return
    if as_json:
        _print_json([r.to_dict() for r in records])
        return
    for r in records:
        origin = "built-in" if r.builtin else f"{r.distribution} {r.version}".strip()
        click.echo(f"{r.name}  [{r.status}]  {origin}")
        if r.hooks:
            click.echo(f"    hooks: {', '.join(r.hooks)}")
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


def _train_options(command: Any) -> Any:
    """The `zoo train` options. Every default is None: a flag given counts, the rest comes from
    --config, the run being resumed, or the model's defaults."""
    from zoo.engine.options import train_flags

    options = [
        *train_flags(),
        click.option("--config", "config_file", type=click.Path(), help="TOML file of these options; flags override."),
        click.option("--resume", type=click.Path(), metavar="RUN_DIR",
                     help="Continue this run from its last checkpoint."),
        click.option("--nproc", type=int, help="Train with N processes on this machine (runs torchrun)."),
        click.option("--export", "then_export", is_flag=True, help="Then export to exports/ and verify parity."),
        click.option("--json", "as_json", is_flag=True, help="Print the run directory and final metrics as JSON."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@cli.command()
@click.argument("name", required=False)
@_train_options
@click.pass_context
def train(ctx: click.Context, name: str | None, hparams: tuple[str, ...], model_args: tuple[str, ...],
          data_args: tuple[str, ...], config_file: str | None, resume: str | None, nproc: int | None,
          then_export: bool, as_json: bool, **options: Any) -> None:
    """Train model NAME through the shared engine; writes a run directory.

    `zoo train --resume RUN_DIR` continues a stopped run; `--nproc N` (or `torchrun --nproc-per-node N
    -m zoo train ...`) trains with N processes.
    """
    from zoo.engine import Interrupted
    from zoo.engine import train as run_training

    if nproc is not None and nproc != 1:
        from zoo.engine.distributed import launch

        if nproc < 1:
            raise ZooError(f"--nproc must be a positive whole number, got {nproc}")
        sys.exit(launch(nproc, _as_args(ctx, exclude={"nproc"}), debug=_debug(ctx)))
    rank0 = os.environ.get("RANK", "0") == "0"
    try:
        result = run_training(
            name, config=config_file, resume=resume, **options,
            hyperparameters=_parse_assignments(hparams, "--hp"), model_args=_parse_assignments(model_args, "--arg"),
            data_args=_parse_assignments(data_args, "--data-arg") or None,
        )
    except Interrupted as exc:
        if rank0:
            click.echo(f"zoo: {exc}", err=True)
        sys.exit(exc.exit_code)
    if not rank0:
        return
    output = result.to_dict()
    if not as_json:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in result.summary["metrics"].items())
        click.echo(f"run: {result.run_dir}\nmetrics: {metrics}")
    if then_export:
        exported = _export(str(result.run_dir), "exports", 18, "dynamo", False, True, as_json)
        output.update({"bundle_dir": str(exported.bundle_dir), "parity": exported.parity})
    if as_json:
        _print_json(output)


def _as_args(ctx: click.Context, exclude: set[str]) -> list[str]:
    """The command line that gave ``ctx.params`` (less ``exclude``), to hand on to torchrun."""
    args: list[str] = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if param.name in exclude or value is None or value == ():
            continue
        if value is False:  # a --x/--no-x flag turned off is said; a plain flag left off is not
            args += getattr(param, "secondary_opts", [])[:1]
            continue
        if isinstance(param, click.Argument):
            args.append(str(value))
        elif getattr(param, "is_flag", False):
            args.append(param.opts[0])
        else:
            for item in value if getattr(param, "multiple", False) else [value]:
                args += [param.opts[0], str(item)]
    return args


def _export(run_dir: str, out: str, opset: int, exporter: str, force: bool, verify: bool, as_json: bool,
            **variants: Any) -> Any:
    from zoo.bundles import export_run, format_table

    try:
        result = export_run(run_dir, out=out, opset=opset, exporter=exporter, force=force, verify=verify, **variants)
    except ParityError as exc:
        if exc.report is not None:
            _print_json(exc.report) if as_json else click.echo(format_table(exc.report))
        raise UserError(str(exc), exc.exit_code) from exc
    if not as_json:
        if result.parity:
            click.echo(format_table(result.parity))
        click.echo(f"bundle: {result.bundle_dir}")
    for name, dropped in ((result.parity or {}).get("dropped_variants") or {}).items():
        click.echo(f"zoo: warning: variant {name} failed its gate and was left out of the bundle ({dropped['reason']})",
                   err=True)
    return result


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--out", default="exports", show_default=True, type=click.Path(), help="Folder the bundle goes in.")
@click.option("--opset", default=18, show_default=True, type=int, help="ONNX opset.")
@click.option("--exporter", default="dynamo", show_default=True, type=click.Choice(["dynamo", "torchscript"]))
@click.option("--quantize", type=click.Choice(["int8"]), help="Add an int8 variant of each graph (static QDQ "
              "calibrated on training data; dynamic where static does not fit; int8 weights only where the graph "
              "asks, as language models do).")
@click.option("--fp16", is_flag=True, help="Add an fp16 variant of each graph (for GPU targets).")
@click.option("--optimize", is_flag=True, help="Write graphs after ONNX Runtime's offline (basic) optimisations.")
@click.option("--measure-variants", is_flag=True, help="Time each int8/fp16 variant against fp32 on this CPU for the "
              "card (a few seconds a graph; `zoo bench` measures it later otherwise).")
@click.option("--external-data", is_flag=True, help="Keep weights in one file beside each graph (automatic over 2 GB).")
@click.option("--providers", help="Comma list of providers to verify on (cpu, cuda, tensorrt); default: all that run.")
@click.option("--force", is_flag=True, help="Replace an existing bundle of the same name.")
@click.option("--no-verify", is_flag=True, help="Skip the parity check (not recommended).")
@click.option("--json", "as_json", is_flag=True, help="Print the bundle directory and parity report as JSON.")
def export(run_dir: str, out: str, opset: int, exporter: str, quantize: str | None, fp16: bool, optimize: bool,
           measure_variants: bool, external_data: bool, providers: str | None, force: bool, no_verify: bool,
           as_json: bool) -> None:
    """Export a trained run to an ONNX bundle and verify it (exit 1 if parity fails)."""
    result = _export(run_dir, out, opset, exporter, force, not no_verify, as_json, quantize=quantize, fp16=fp16,
                     optimize=optimize, external_data=external_data, providers=_names(providers),
                     measure_variants=measure_variants)
    if as_json:
        _print_json({"bundle_dir": str(result.bundle_dir), "parity": result.parity})


def _names(value: str | None) -> list[str] | None:
    return [p.strip() for p in value.split(",") if p.strip()] if value else None


@cli.command()
@click.argument("bundle", type=click.Path())
@click.option("--providers", help="Comma list of providers to check (cpu, cuda, tensorrt); default: all that run here.")
@click.option("--require", help="Comma list of providers that must run here (e.g. cuda); fails with the reason if not.")
@click.option("--run", "run_dir", type=click.Path(), help="The run directory, if it moved since export.")
@click.option("--bundle-only", is_flag=True, help="Check the stored test vectors only (no torch, no run directory).")
@click.option("--runtimes", help="Also run the test vectors on these runtimes: onnxruntime, reference, openvino, "
                                "openvino-default, tract (comma list; 'all' for every one; one you name must run "
                                "at least one graph).")
@click.option("--json", "as_json", is_flag=True, help="Print the parity report as JSON.")
def verify(bundle: str, providers: str | None, require: str | None, run_dir: str | None, bundle_only: bool,
           runtimes: str | None, as_json: bool) -> None:
    """Check a bundle's graphs against its test vectors and the PyTorch model (exit 1 on failure)."""
    from zoo.bundles import format_table, verify_bundle

    names = None if runtimes is None else [] if runtimes.strip() == "all" else _names(runtimes) or []
    report = verify_bundle(bundle, providers=_names(providers), run_dir=run_dir, bundle_only=bundle_only,
                           require=_names(require), runtimes=names)
    if as_json:
        _print_json(report)
    else:
        click.echo(format_table({**report, "passed": report.get("providers_passed", report["passed"])}))
        if "runtimes" in report:
            from zoo.bundles.runtime_checks import RuntimeCheck, format_runtimes

            rows = [RuntimeCheck(**r) for r in report["runtimes"]]
            click.echo(format_runtimes(rows, report.get("runtimes_explicit")))
    if not report["passed"]:
        sys.exit(ParityError.exit_code)


@cli.command()
@click.argument("bundle", type=click.Path())
@click.option("--batch-sizes", default="1,16,64", show_default=True, help="Comma list of batch sizes.")
@click.option("--threads", default=2, show_default=True, type=int, help="CPU threads for ONNX Runtime and PyTorch.")
@click.option("--warmup", default=10, show_default=True, type=int, help="Untimed runs first.")
@click.option("--runs", default=100, show_default=True, type=int, help="Timed runs per measurement.")
@click.option("--providers", help="Comma list (cpu, cuda, tensorrt); default: all that run here.")
@click.option("--run", "run_dir", type=click.Path(), help="The run directory (for eager PyTorch), if it moved.")
@click.option("--no-torch", is_flag=True, help="Leave out eager PyTorch.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of a markdown table.")
@click.option("--save", is_flag=True, help="Also store the results in the bundle (bench.json, for zoo report).")
def bench(bundle: str, batch_sizes: str, threads: int, warmup: int, runs: int, providers: str | None,
          run_dir: str | None, no_torch: bool, as_json: bool, save: bool) -> None:
    """Latency (p50, p90, p99) and throughput of a bundle's graphs: eager PyTorch and ONNX Runtime per provider."""
    from zoo.bundles.bench import bench_bundle, markdown_table

    try:
        batches = [int(b) for b in batch_sizes.split(",") if b.strip()]
    except ValueError as exc:
        raise ZooError(f"--batch-sizes takes whole numbers separated by commas, got {batch_sizes!r}") from exc
    result = bench_bundle(bundle, batch_sizes=batches, threads=threads, warmup=warmup, runs=runs,
                          providers=_names(providers), run_dir=run_dir, torch=not no_torch)
    if save:
        from zoo.atomic import write_json
        from zoo.reports.sources import BENCH

        write_json(os.path.join(bundle, BENCH), result)
    _print_json(result) if as_json else click.echo(markdown_table(result))


@cli.command()
@click.argument("bundle", type=click.Path())
@click.option("--n", "count", default=64, show_default=True, type=int, help="How many images to draw.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for the noise.")
@click.option("--out", type=click.Path(), help="PNG file to write (default: <bundle>-samples-seed<S>.png here).")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def sample(bundle: str, count: int, seed: int, out: str | None, force: bool) -> None:
    """Draw images from a bundle's sampler or decoder graph with ONNX Runtime alone (torch is not imported)."""
    from zoo.sampling import sample_bundle

    click.echo(f"samples: {sample_bundle(bundle, n=count, seed=seed, out=out, force=force)}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the datasets as JSON.")
def datasets(as_json: bool) -> None:
    """List the datasets installed plugins provide (NAME, or NAME:PATH for local files)."""
    from zoo.registry import list_datasets

    specs = list_datasets()
    if as_json:
        _print_json([spec.to_dict() for spec in specs])
        return
    rows = [("NAME", "SHAPE", "CLASSES", "SIZE", "SUMMARY")]
    for s in specs:
        shape = "×".join(str(d) for d in s.input.shape) if s.input else "any"
        rows.append((s.name + (":PATH" if s.needs_path else ""), shape, str(s.num_classes or "?"),
                     str(s.size or "?"), s.summary))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
    for s in specs:  # the loaders' own options, set with --data-arg KEY=VALUE
        for key, text in s.args.items():
            click.echo(f"  --data-arg {key}=…  ({s.name}): {text}")


@cli.command()
@click.argument("bundle", type=click.Path())
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--top", default=3, show_default=True, type=click.IntRange(1), help="Alternatives to show per row.")
@click.option("--json", "as_json", is_flag=True, help="Print the result rows as JSON.")
def predict(bundle: str, inputs: tuple[str, ...], top: int, as_json: bool) -> None:
    """Run a bundle on input files (images for a classifier; whatever its graph's role reads), under ONNX Runtime
    alone (no torch)."""
    from zoo.predict import predict_files

    rows = predict_files(bundle, list(inputs), top=top)
    if as_json:
        _print_json([row.to_dict() for row in rows])
        return
    for row in rows:
        click.echo(f"{row.input}: {row.summary}")


@cli.command()
@click.argument("bundle", type=click.Path())
@click.option("--target", required=True, type=click.Choice(["node", "web", "python", "serve"]),
              help="Where it will run (serve: zoo serve over a copy of the bundle, run.sh and a systemd unit).")
@click.option("--out", type=click.Path(), help="Folder to write (default: <bundle>-<target> here).")
@click.option("--force", is_flag=True, help="Replace the folder if it exists (only a folder zoo deploy made).")
def deploy(bundle: str, target: str, out: str | None, force: bool) -> None:
    """A ready-to-run folder: the graph with preprocessing inside, a small program, its README, test vectors."""
    from zoo.deploy import deploy_bundle

    click.echo(f"deployed: {deploy_bundle(bundle, target, out, force=force)}")


cli.add_command(serve_command)  # zoo/serve/command.py: click only; the server is imported when it runs


@cli.command()
@click.argument("names", nargs=-1, metavar="[PATTERN | --compare RUN RUN ...]")
@click.option("--root", default="runs", show_default=True, type=click.Path(), help="Folder the runs are in.")
@click.option("--exports", default="exports", show_default=True, type=click.Path(),
              help="Folder of bundles (to show which runs were exported).")
@click.option("--sort", "sort_by", metavar="METRIC", help="Best first by a metric (or value, params, seconds).")
@click.option("--compare", "compare_runs", is_flag=True,
              help="Compare the runs named as arguments (folders or names under --root), side by side.")
@click.option("--plot", type=click.Path(), help="--compare: PNG of their curves (default: runs-compare.png).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def runs(names: tuple[str, ...], root: str, exports: str, sort_by: str | None, compare_runs: bool,
         plot: str | None, as_json: bool) -> None:
    """List runs (PATTERN matches the folder or the model): status, metric, size, time, export.

    `zoo runs --compare RUN_A RUN_B ...` shows their metrics and options side by side (what differs
    marked *) and writes one PNG of their curves. Never imports torch.
    """
    from zoo.reports import runs_table

    if compare_runs:
        records = runs_table.resolve_runs(list(names), root)
        comparison = runs_table.compare(records)
        picture = runs_table.plot_curves(records, plot or "runs-compare.png")
        if as_json:
            _print_json({**comparison.to_dict(), "plot": str(picture) if picture else None})
            return
        click.echo(runs_table.format_comparison(comparison, color=sys.stdout.isatty()))
        click.echo(f"curves: {picture}" if picture else "curves: none logged yet")
        return
    if len(names) > 1:
        raise ZooError(f"zoo runs takes one PATTERN (got {len(names)}); use --compare to compare runs")
    pattern = names[0] if names else "*"
    rows = runs_table.list_runs(root, pattern, exports, sort_by)
    if as_json:
        _print_json([row.to_dict() for row in rows])
    elif rows:
        click.echo(runs_table.format_table(rows))
    else:
        click.echo(f"no runs under {root}" + (f" match {pattern!r}" if pattern != "*" else ""), err=True)


@cli.command()
@click.argument("target", required=False, type=click.Path())
@click.option("--out", type=click.Path(), help="HTML file to write (default: <name>.html, leaderboard.html).")
@click.option("--leaderboard", "board", is_flag=True, help="One sortable table of all runs and bundles instead.")
@click.option("--root", default="runs", show_default=True, type=click.Path(), help="--leaderboard: the runs.")
@click.option("--exports", default="exports", show_default=True, type=click.Path(), help="Folder of bundles.")
@click.option("--csv", "csv_out", type=click.Path(), help="--leaderboard: also write the table as CSV.")
def report(target: str | None, out: str | None, board: bool, root: str, exports: str, csv_out: str | None) -> None:
    """One self-contained HTML page about a run folder or a bundle (curves, pictures, parity, card)."""
    if board:
        from zoo.reports.leaderboard import write_leaderboard

        if target:
            raise ZooError("--leaderboard covers every run under --root; do not name a run")
        table = write_leaderboard(out or "leaderboard.html", root, exports, csv_out)
        click.echo(f"leaderboard: {out or 'leaderboard.html'} ({len(table.rows)} rows)"
                   + (f", csv: {csv_out}" if csv_out else ""))
        return
    if not target:
        raise ZooError("name a run folder or a bundle (zoo report RUN_DIR), or pass --leaderboard")
    from zoo.reports.report import write_report

    click.echo(f"report: {write_report(target, out, exports)}")


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--samples", default=1000, show_default=True, type=int, help="Training and held-out samples (each).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for choosing the samples.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def audit(run_dir: str, samples: int, seed: int, as_json: bool) -> None:
    """Membership-inference audit of a classifier run (loss threshold): AUC, TPR at 1 % / 10 % FPR; the results go
    to audit.json in the run, and from there onto the card of later exports (docs/privacy.md)."""
    from zoo.audit import audit_run, format_result

    result = audit_run(run_dir, samples=samples, seed=seed)
    _print_json(result.to_dict()) if as_json else click.echo(format_result(result))


def _add_core_commands() -> None:
    """Commands that live in modules of their own (their imports stay inside the commands)."""
    from zoo.explain.command import explain_command

    cli.add_command(explain_command)


_add_core_commands()


_plugin_commands_added = False


def _add_plugin_commands() -> None:
    """Let plugins add commands (once a process); a plugin that fails or clashes here is reported and skipped."""
    global _plugin_commands_added
    if _plugin_commands_added:
        return
    _plugin_commands_added = True
    from zoo.registry import add_commands

    add_commands(cli)


#: Allocations between young-generation collections (CPython's default is 700).
GC_GENERATION0 = 10_000


def collect_less_often() -> None:
    """Make the cyclic garbage collector run less often in this short-lived process.

    With CPython's default thresholds a full collection comes every ~70,000 net allocations, and each
    one walks every object the imports made (millions, once torch and its exporter are loaded): it was
    2.2 of 9.3 s of a ``zoo export cnn``. Fourteen times fewer collections cost nothing measurable in
    peak memory (tensors are freed by reference counting, not by the collector). Python scripts that
    call the API keep their own settings: only the command line changes them.
    """
    import gc

    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_GENERATION0, middle, old)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = sys.argv[1:] if argv is None else argv
    collect_less_often()
    if "--no-plugins" in args:
        os.environ["ZOO_LOAD_PLUGINS"] = ""
    try:
        _add_plugin_commands()
    except ZooError as exc:  # ZOO_STRICT_PLUGINS=1 and a broken plugin
        if "--debug" in args:
            raise
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    from zoo import faults

    faults.watch_interrupts()
    try:
        cli.main(args=args, prog_name="zoo")
    except SystemExit as exc:
        faults.record_exit(exc.code)
        raise
    faults.record_exit(0)


if __name__ == "__main__":
    main()
