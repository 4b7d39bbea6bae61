"""How well ``zoo explain``'s attributions pass their checks on a trained cnn: per method, over validation samples,
the IG completeness error against its tolerance (and Captum's convergence delta), and the rank correlation of the
parameter-randomisation check (trained model against its copy with the top half of its layers re-initialised).

Writes ``benchmarks/results/explain_checks.md``. Bounded: one default cnn training on the digits (or ``--run``) and
attributions of ``--samples`` validation images per method.

    python benchmarks/explain_checks.py [--run RUN_DIR] [--samples 32]
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
    parser.add_argument("--run", help="A trained classifier run (default: train the cnn on the digits).")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "explain_checks.md"))
    args = parser.parse_args()

    import zoo
    from zoo.explain.explainer import explain
    from zoo.explain.source import open_subject

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(args.run) if args.run else zoo.train("cnn", out=Path(tmp), progress=False).run_dir
        subject = open_subject(run_dir)
        inputs = [f"val:{i}" for i in range(args.samples)]
        lines = [header("zoo explain: the checks on a trained cnn (digits)"),
                 f"# run: {subject.name}; {args.samples} validation images; each explains the predicted class",
                 "", "| method | completeness passed | max error / allowed | max abs Captum delta | randomisation "
                 "passed | Spearman ρ median (min, max) |", "| --- " * 6 + "|"]
        for method in ("ig", "saliency", "occlusion", "gradcam"):
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
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _share(checks: list) -> str:
    return f"{sum(c.passed for c in checks)}/{len(checks)}" if checks else "-"


if __name__ == "__main__":
    main()
