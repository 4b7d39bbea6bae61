"""How well ``zoo explain``'s attributions pass their checks on a trained model (the cnn by default; a keyword
spotter or a regressor with ``--model``): per method, over validation samples,
the IG completeness error against its tolerance (and Captum's convergence delta), and the rank correlation of the
parameter-randomisation check (trained model against its copy with the top half of its layers re-initialised).

Writes ``benchmarks/results/explain_checks.md`` (``explain_checks-<model>.md`` for another model). Bounded: one
training of the model on its default data (``--epochs`` to shorten it; or ``--run``) and attributions of
``--samples`` validation samples per method.

    python benchmarks/explain_checks.py [--model cnn] [--epochs N] [--run RUN_DIR] [--samples 32]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import header


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn", help="The model to train on its default data (default: cnn).")
    parser.add_argument("--epochs", type=int, help="Train this many epochs (default: the model's own).")
    parser.add_argument("--run", help="A trained run (default: train --model).")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--out", help="Default: benchmarks/results/explain_checks[-MODEL].md.")
    args = parser.parse_args()
    stem = "explain_checks" if args.model == "cnn" else f"explain_checks-{args.model}"
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"{stem}.md"

    import zoo
    from zoo.explain.explainer import explain
    from zoo.explain.source import open_subject

    with tempfile.TemporaryDirectory() as tmp:
        epochs = {} if args.epochs is None else {"epochs": args.epochs}
        run_dir = Path(args.run) if args.run else zoo.train(args.model, out=Path(tmp), progress=False,
                                                            **epochs).run_dir
        subject = open_subject(run_dir)
        inputs = [f"val:{i}" for i in range(args.samples)]
        dataset = subject.run.config.get("dataset", "?")
        explained = "every output" if subject.space is not None and not subject.space.classes else "the predicted class"
        lines = [header(f"zoo explain: the checks on a trained {subject.run.spec.name} ({dataset})"),
                 f"# run: {subject.name} ({subject.run.config.get('options', {}).get('epochs') or 'default'} epochs); "
                 f"{args.samples} validation samples ({subject.kind}); each explains {explained}",
                 "", "| method | completeness passed | max error / allowed | max abs Captum delta | randomisation "
                 "passed | Spearman ρ median (min, max) |", "| --- " * 6 + "|"]
        methods = ("ig", "saliency", "occlusion") + (("gradcam",) if subject.kind == "image" else ())
        for method in methods:
            results = explain(subject, inputs, method=method, sanity=True)
            complete = [c for r in results for c in r.checks if c.name == "completeness"]
            sanity = [c for r in results for c in r.checks if c.name == "randomisation"]
            rhos = [c.value for c in sanity]
            deltas = [abs(float(c.detail.rsplit("delta", 1)[1])) for c in complete] if complete else []
            ratio = f"{max(c.value / c.threshold for c in complete):.3f}" if complete else "-"
            delta = f"{max(deltas):.2e}" if deltas else "-"
            lines.append(f"| {method} | {_share(complete)} | {ratio} | {delta} | {_share(sanity)} | "
                         f"{statistics.median(rhos):+.3f} ({min(rhos):+.3f}, {max(rhos):+.3f}) |")
    lines.append("\nRandomisation passes when ρ < 0.5 (zoo/explain/checks.py); completeness when the error is at most "
                 "1e-3 + 0.05 × |f(input) − f(baseline)| (ratio ≤ 1).")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _share(checks: list) -> str:
    return f"{sum(c.passed for c in checks)}/{len(checks)}" if checks else "-"


if __name__ == "__main__":
    main()
