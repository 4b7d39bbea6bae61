"""The audio family's training target: `kws-res` on the embedded spoken digits, validation accuracy on voices
never heard in training, and the wall-clock time, with the machine's load at start and end.

    python benchmarks/audio_kws.py [--epochs N] [--run RUN_DIR]

Trains `zoo train kws-res --epochs N --schedule cosine` (default 15, the model's own), or reads a finished or
stopped run given with --run, and writes benchmarks/results/audio_kws.txt: the accuracy per epoch, the best,
the seconds, and the load (this machine is shared: a loaded machine gives each process a fraction of a core).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import header, zoo_command

RESULTS = Path(__file__).resolve().parent / "results" / "audio_kws.txt"
TARGET = 0.95


def train(epochs: int, out: Path) -> tuple[Path, float]:
    """A fresh run; its folder and the seconds it took."""
    started = time.perf_counter()
    done = subprocess.run(zoo_command("train", "kws-res", "--epochs", str(epochs), "--schedule", "cosine", "--out",
                                      str(out), "--json"), capture_output=True, text=True, check=True)
    return Path(json.loads(done.stdout)["run_dir"]), time.perf_counter() - started


def describe(run: Path, seconds: float | None) -> list[str]:
    """One line per epoch, then the best and the verdict."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    lines = [f"run: {run.name} ({json.loads((run / 'config.json').read_text())['dataset']}, seed "
             f"{json.loads((run / 'config.json').read_text())['seed']})"]
    for row in rows:
        lines.append(f"  epoch {row['epoch']:>2} step {row['step']:>4}: train_loss {row['train_loss']:.3f} "
                     f"val_loss {row['val_loss']:.3f} val_accuracy {100 * row['val_accuracy']:.2f}%")
    best = max((row["val_accuracy"] for row in rows), default=0.0)
    lines.append(f"best validation accuracy (held-out voices): {100 * best:.2f}% "
                 f"({'meets' if best >= TARGET else 'below'} the {100 * TARGET:.0f}% target)")
    if seconds is not None:
        lines.append(f"wall-clock: {seconds:.0f} s for {len(rows)} epoch(s)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--run", type=Path, help="describe this run instead of training one")
    parser.add_argument("--seconds", type=float, help="with --run: the wall-clock time it took")
    parser.add_argument("--note", default="", help="a line to add (how the run was made)")
    args = parser.parse_args()
    top = header("audio_kws: kws-res on spoken-digits, speaker-independent validation accuracy")
    if args.run is None:
        run, seconds = train(args.epochs, Path("runs"))
    else:
        run, seconds = args.run, args.seconds
    text = "\n".join([top, *([f"# {args.note}"] if args.note else []), *describe(run, seconds),
                      header("end").splitlines()[-1].replace("# date", "# end")])
    RESULTS.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
