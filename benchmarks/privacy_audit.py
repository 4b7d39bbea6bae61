"""What DP-SGD buys: the cnn on the digits trained without and with ``--dp-epsilon``, each attacked by ``zoo audit``.

Writes a Markdown table: validation accuracy, ε, δ and the loss-threshold membership-inference attack's AUC (with its
chance spread) and TPR at 0.1 % / 1 % / 10 % FPR per run. Two settings:

- the whole training split, the cnn's default 12 epochs (``benchmarks/results/privacy_audit_full.md``): the plain
  cnn generalises, and the attack learns nothing from either run;
- ``--train-samples 100 --epochs 120`` (``benchmarks/results/privacy_audit.md``): a small set trained on for long,
  no augmentation, which the plain cnn memorises; the DP run at the same ε, on the same samples for as long.

Bounded: two trainings on the embedded digits (minutes each on an idle 2-core machine); accuracy and AUC do not depend
on the machine's load, the seconds do.

    python benchmarks/privacy_audit.py [--train-samples 100 --epochs 120] [--epsilon 8] [--dp-lr LR] [--seed 0]
                                       [--out FILE] [--runs RUN,RUN...] [--note TEXT]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import header

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilon", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-samples", type=int, help="Train both runs on this many samples (a memorising set).")
    parser.add_argument("--epochs", type=int, help="Epochs of both runs (default: the cnn's 12).")
    parser.add_argument("--dp-lr", type=float, help="Learning rate of the DP run (default: the family's DP choice).")
    parser.add_argument("--out", help="Result file (default: results/privacy_audit.md with --train-samples, else "
                                      "results/privacy_audit_full.md).")
    parser.add_argument("--runs", help="Audit these finished runs (comma-separated) instead of training two.")
    parser.add_argument("--note", help="A line to add under the table (how --runs were trained, say).")
    args = parser.parse_args()
    out = Path(args.out) if args.out else RESULTS / ("privacy_audit.md" if args.train_samples
                                                     else "privacy_audit_full.md")

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
                extra = {"lr": args.dp_lr} if dp is not None and args.dp_lr else {}
                run = zoo.train("cnn", seed=args.seed, dp_epsilon=dp, train_samples=args.train_samples,
                                epochs=args.epochs, out=Path(tmp), progress=False, **extra)
                dirs.append(run.run_dir)
                times.append(time.perf_counter() - started)
        for run_dir, seconds in zip(dirs, times, strict=True):
            rows.append(_row(run_dir, audit_run(run_dir, seed=args.seed, write=False), seconds))
    setting = (f"{args.train_samples} training samples, {args.epochs or 12} epochs, no augmentation"
               if args.train_samples else f"the whole training split, {args.epochs or 12} epochs")
    lines = [header(f"Membership inference against the cnn on digits ({setting}), without and with DP-SGD"),
             "# loss-threshold attack (zoo audit): members = the samples a run trained on, non-members = validation "
             "samples and the training-split samples it left out", "",
             "| run | batch | lr | val accuracy | ε | δ | noise σ | attack AUC ± chance | TPR @ 0.1 % FPR "
             "| TPR @ 1 % FPR | TPR @ 10 % FPR | mean loss members / non-members | seconds |", "| --- " * 13 + "|"]
    lines += [row for row, _ in rows]
    audit = rows[0][1]
    lines.append(f"\n{audit.members} members and {audit.non_members} non-members per run (seed {args.seed}); "
                 "± is the AUC's standard deviation if the attacker learnt nothing.")
    if args.note:
        lines.append(args.note)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _row(run_dir: Path, audit: Any, seconds: float) -> tuple[str, Any]:
    summary = json.loads((run_dir / "summary.json").read_text())
    hp = json.loads((run_dir / "config.json").read_text())["hyperparameters"]
    spent = summary.get("privacy") or {}
    cells = ["DP-SGD" if spent else "plain", hp["batch_size"], f"{hp['lr']:g}",
             f"{100 * summary['metrics']['val_accuracy']:.2f} %", _f(spent.get("epsilon"), ".3f"),
             _f(spent.get("delta"), "g"), _f(spent.get("noise_multiplier"), ".4f"),
             f"{audit.auc:.4f} ± {audit.auc_null_std:.4f}", f"{audit.tpr_at_fpr_01pct:.4f}",
             f"{audit.tpr_at_fpr_1pct:.4f}", f"{audit.tpr_at_fpr_10pct:.4f}",
             f"{audit.member_loss:.4f} / {audit.non_member_loss:.4f}", "-" if seconds != seconds else f"{seconds:.0f}"]
    return "| " + " | ".join(str(c) for c in cells) + " |", audit


def _f(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


if __name__ == "__main__":
    main()
