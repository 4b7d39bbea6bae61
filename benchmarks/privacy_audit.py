"""What DP-SGD buys: the cnn on the digits trained without and with ``--dp-epsilon``, each attacked by ``zoo audit``.

Writes ``benchmarks/results/privacy_audit.md``: validation accuracy, ε, δ and the loss-threshold membership-inference
attack's AUC and TPR at 1 % / 10 % FPR per run. Bounded: two default-length trainings (12 epochs each) on the
embedded digits; accuracy and AUC do not depend on the machine's load, the seconds do.

    python benchmarks/privacy_audit.py [--epsilon 8] [--seed 0] [--out benchmarks/results/privacy_audit.md]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import header


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilon", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "privacy_audit.md"))
    parser.add_argument("--runs", help="Audit these two finished runs (plain, DP) instead of training them.")
    args = parser.parse_args()

    import zoo
    from zoo.audit import audit_run

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.runs:
            dirs = [Path(p) for p in args.runs.split(",")]
            times = [float("nan")] * len(dirs)
        else:
            dirs, times = [], []
            for dp in (None, args.epsilon):
                started = time.perf_counter()
                run = zoo.train("cnn", seed=args.seed, dp_epsilon=dp, out=Path(tmp), progress=False)
                dirs.append(run.run_dir)
                times.append(time.perf_counter() - started)
        for run_dir, seconds in zip(dirs, times, strict=True):
            import json

            summary = json.loads((run_dir / "summary.json").read_text())
            config = json.loads((run_dir / "config.json").read_text())
            audit = audit_run(run_dir, seed=args.seed, write=False)
            spent = summary.get("privacy")
            hp = config["hyperparameters"]
            rows.append((
                "DP-SGD" if spent else "plain", hp["batch_size"], hp["lr"],
                summary["metrics"]["val_accuracy"], spent["epsilon"] if spent else None,
                spent["delta"] if spent else None, spent["noise_multiplier"] if spent else None, audit, seconds))
    lines = [header("Membership inference against the cnn on digits, without and with DP-SGD"),
             "# loss-threshold attack (zoo audit): members = training samples, non-members = validation samples",
             "", "| run | batch | lr | val accuracy | ε | δ | noise σ | attack AUC | TPR @ 1 % FPR | TPR @ 10 % FPR "
             "| mean loss train / held out | seconds |", "| --- " * 12 + "|"]
    for name, batch, lr, accuracy, eps, delta, sigma, audit, seconds in rows:
        lines.append(f"| {name} | {batch} | {lr:g} | {100 * accuracy:.2f} % | {_f(eps, '.3f')} | {_f(delta, 'g')} | "
                     f"{_f(sigma, '.4f')} | {audit.auc:.4f} ± {audit.auc_null_std:.4f} | {audit.tpr_at_fpr_1pct:.4f} | "
                     f"{audit.tpr_at_fpr_10pct:.4f} | {audit.member_loss:.4f} / {audit.non_member_loss:.4f} | "
                     f"{seconds:.0f} |")
    lines.append(f"\n{rows[0][7].members} members and {rows[0][7].non_members} non-members per run (seed {args.seed}).")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _f(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


if __name__ == "__main__":
    main()
