"""The bundle's model card (``card.md``): data, preprocessing, metrics, graphs and their roles, variants, parity."""

from __future__ import annotations

import json
from typing import Any

from zoo.bundles.graph_checks import format_table
from zoo.bundles.manifest import GraphEntry, ParityReport
from zoo.bundles.privacy_card import privacy_text
from zoo.bundles.variant_card import variant_text
from zoo.data.kinds import describe_samples, describe_targets
from zoo.errors import ZooError
from zoo.run_layout import BEST, CHECKPOINTS, METRICS, SUMMARY, WEIGHTS


def card_text(run: Any, graphs: dict[str, GraphEntry], parity: ParityReport | None, speed: dict[str, Any]) -> str:
    """The card of a bundle exported from ``run``, with its typed graph entries and parity report."""
    summary = _summary(run)
    info = run.data_info
    metrics = "\n".join(f"- {k}: {v:.4g}" for k, v in summary.get("metrics", {}).items()
                         if isinstance(v, (int, float))) or ("none: the run stopped before its first validation "
                                                             f"({_stopped(summary)})")
    parity_text = format_table(parity.to_dict()) if parity else "not verified (exported with --no-verify)"
    graph_lines = []
    for e in graphs.values():
        io = f"inputs {e.input_names} → outputs {e.output_names}"
        how = e.method or ("optimized: " + e.optimized if e.optimized else "as exported")
        role = f"role {e.role}" if e.role else "no role"
        graph_lines.append(f"- `{e.file}` ({e.variant}; {role}; {how}): {io}; tolerance atol {e.atol:g} / "
                           f"rtol {e.rtol:g}; {len(e.test_sets)} test sets")
    return f"""# {run.spec.name} ({run.spec.family})

{run.spec.summary}. From plugin `{run.spec.plugin}`, run `{run.run_dir.name}`.

## Intended use
Inference on inputs preprocessed exactly as below; each graph takes a batch of any size.

## Data
Trained on `{info.name}`: {describe_samples(info)}; targets: {describe_targets(info)}; {_trained(run, summary)}.

## Weights
{_weights(run, summary)}

## Preprocessing
{_preprocessing(info)}{_normalization_source(run.config)}
The same values are in every graph's `metadata_props`.

## Metrics (validation, last epoch)
{metrics}

## Graphs
{chr(10).join(graph_lines)}

Each graph folder holds `test_data_set_N/input_K.pb` and `output_K.pb` (ONNX TensorProto, the ONNX model-zoo
layout): random inputs at batch 1 and 16 and real validation samples. An fp32 graph's expected outputs are the
PyTorch model's; a variant's are its own (ONNX Runtime, CPU), so that any harness can hold every set to the
declared tolerance, while its quality gate (below) compares it with fp32 PyTorch. `zoo verify` checks them
without PyTorch.
A graph's role (`zoo_role` in its metadata) says what it is: `zoo predict` uses a classifier, `zoo sample`
a sampler or decoder.

{variant_text(graphs, parity, speed)}
{_starting_weights(run.config)}{privacy_text(summary, run.run_dir)}## Parity against PyTorch
```
{parity_text}
```

## Other runtimes
{_runtime_text()}

## Limits
Trained on a small demonstration dataset; check accuracy on your own data before deploying.
"""


def _epochs_done(run: Any) -> int:
    """Epochs the run completed: the last epoch its metrics log recorded (0 when none ended)."""
    done = 0
    try:
        for line in (run.run_dir / METRICS).read_text().splitlines():
            row = json.loads(line) if line.strip() else {}
            if isinstance(row, dict) and isinstance(row.get("epoch"), int):
                done = max(done, row["epoch"])
    except (OSError, ValueError):
        pass
    return done


def _stopped(summary: dict[str, Any]) -> str:
    return {"max_steps": "--max-steps", "early_stop": "--early-stop", "interrupt": "an interrupt"}.get(
        str(summary.get("stopped")), str(summary.get("stopped")))


def _trained(run: Any, summary: dict[str, Any]) -> str:
    """How long it trained: "12 epochs", or "1 step (0 of 12 epochs; stopped by --max-steps)"."""
    planned, steps = summary.get("epochs"), summary.get("steps")
    if summary.get("stopped", "completed") == "completed":
        return f"{planned} epochs ({steps} steps)"
    return f"{steps} step(s) ({_epochs_done(run)} of {planned} epochs; stopped by {_stopped(summary)})"


def _weights(run: Any, summary: dict[str, Any]) -> str:
    """Which weights the graphs hold (the run's final ones) and where the best epoch was."""
    digest = f", sha256 `{run.weights_sha256}`" if getattr(run, "weights_sha256", "") else ""
    text = (f"The run's final weights (`{WEIGHTS}`{digest}), after step {summary.get('steps')} and epoch "
            f"{_epochs_done(run)}.")
    best, monitor = summary.get("best"), summary.get("monitor")
    if isinstance(best, dict) and monitor in best:
        value = best[monitor]
        shown = f"{value:.4g}" if isinstance(value, (int, float)) else str(value)
        text += (f" The best {monitor} ({shown}) was at epoch {best.get('epoch')} "
                 f"(`{CHECKPOINTS}/{BEST}` in the run; not what is exported).")
    return text


def _summary(run: Any) -> dict[str, Any]:
    path = run.run_dir / SUMMARY
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ZooError(f"run summary {path} is missing") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ZooError(f"run summary {path} is corrupted ({exc}); restore it or train again") from exc


def _preprocessing(info: Any) -> str:
    """How raw samples become model input, in words, by the data's kind."""
    if info.kind == "features" and info.features is not None:
        f = info.features
        return (f"Model input = (x[i] − mean[i]) / std[i] per feature column, in this order: {', '.join(f.names)}; "
                f"mean = {f.mean}, std = {f.std} (N×{f.count}).")
    if info.kind == "audio" and info.audio is not None:
        return (f"Model input = mono waveforms, float32 in [-1, 1], {info.audio.num_samples} samples at "
                f"{info.audio.sample_rate} Hz (N×{info.audio.num_samples}).")
    if info.kind != "image":
        return f"Model input = {describe_samples(info)}, as the family prepared them."
    crop = getattr(info, "crop", None)
    geometry = (f"\nImages are not squashed to {info.height}×{info.width}: {crop.describe()}; `zoo predict` and the "
                "deployed graphs do the same." if crop else "")
    return (f"Model input = (pixel × {info.scale:g} − mean[c]) / std[c], mean = {info.mean}, std = {info.std}, "
            f"channels\nfirst (N×C×H×W). Raw pixels: {_pixel_unit(info)}.{geometry}")


def _normalization_source(config: dict[str, Any]) -> str:
    """Where a fixed mean/std came from (``--normalize``, or the starting weights' own); "" for the data's."""
    fixed = (config.get("data_options") or {}).get("normalize")
    if not isinstance(fixed, dict):
        return ""
    source = str(fixed.get("source", "given"))
    words = {"imagenet": "ImageNet's (--normalize imagenet)", "given": "given with --normalize"}
    where = words.get(source, source.replace("weights: ", "the starting weights' own, from ") if
                      source.startswith("weights: ") else source)
    return f"\nMean and std are {where}, not the training data's statistics."


def _pixel_unit(info: Any) -> str:
    """What the raw pixel values mean (which value is white), as the graphs' ``pixel_unit`` metadata says."""
    from zoo.data.units import unit_metadata, white_value

    return unit_metadata(white_value(info.pixel_max, info.scale))["meaning"]


def _runtime_text() -> str:
    """The card's section on runtimes other than ONNX Runtime: what each needs, how to check and deploy."""
    from zoo.bundles.runtime_checks import REQUIREMENTS

    lines = [f"- {name}: {need}" for name, need in REQUIREMENTS.items()]
    return "\n".join([*lines, "`zoo verify BUNDLE --runtimes all` checks them here; `zoo deploy BUNDLE --target "
                       "node|web|python` writes a ready-to-run folder."])


def _starting_weights(config: dict[str, Any]) -> str:
    """The card's lines on where the weights started (``zoo train --init``); "" when trained from scratch."""
    init = config.get("init")
    if not init:
        return ""
    frozen = " with the backbone frozen (linear probe)" if config.get("options", {}).get("freeze_backbone") else ""
    head = f"; the head `{init['head']}` started fresh" if init.get("head") else ""
    return (f"## Starting weights\nFine-tuned{frozen} from `{init['origin']}` (sha256 `{init['sha256']}`, "
            f"{init['tensors']} tensors{head}).\n\n")

