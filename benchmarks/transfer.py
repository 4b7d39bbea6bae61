"""Does fine-tuning from zoo's own weights beat training from scratch? A transfer task made from the embedded digits.

resnet18 (``--arg stem=small``, grey 16×16) is first trained on the digits 0–4. Then the digits 5–9 (relabelled
0–4) are learnt twice at the same step budget: from those weights (``--init``, the head starting fresh is not needed
since both tasks have five classes, so the whole network is fine-tuned) and from a random start. Both see the same
split, order, optimizer and steps; the validation accuracy after each epoch is printed side by side.

    python benchmarks/transfer.py [--pretrain-epochs 4] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, header, zoo_command

RESULT = ROOT / "benchmarks" / "results" / "transfer.txt"
COMMON = ["--arg", "stem=small", "--image-size", "16x16", "--optimizer", "adamw", "--lr", "1e-3",
          "--batch-size", "64", "--seed", "0", "--deterministic"]


def digits_split(folder: Path) -> tuple[Path, Path]:
    """Two npz files: the digits 0–4, and 5–9 relabelled 0–4 (images as the digits' 0–16 values, scaled to 0–255)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    first, second = digits.target < 5, digits.target >= 5
    paths = folder / "digits-0-4.npz", folder / "digits-5-9.npz"
    np.savez(paths[0], images=images[first], labels=digits.target[first], class_names=np.array(list("01234")))
    np.savez(paths[1], images=images[second], labels=digits.target[second] - 5, class_names=np.array(list("56789")))
    return paths


def train(data: Path, out: Path, epochs: int, *extra: str) -> dict:
    done = subprocess.run(zoo_command("train", "resnet18", "--data", f"npz:{data}", "--epochs", str(epochs),
                                      "--out", str(out), "--json", *COMMON, *extra),
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout)


def curve(run_dir: str) -> list[float]:
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["val_accuracy"] for line in lines]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-epochs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        first, second = digits_split(work)
        source = train(first, work / "runs", args.pretrain_epochs)
        weights = Path(source["run_dir"]) / "model.safetensors"
        tuned = train(second, work / "runs", args.epochs, "--init", str(weights))
        scratch = train(second, work / "runs", args.epochs)
        tuned_curve, scratch_curve = curve(tuned["run_dir"]), curve(scratch["run_dir"])
    lines = [header("Transfer: resnet18 fine-tuned from zoo's own weights vs from scratch, same step budget"),
             f"# pretrained on digits 0-4 for {args.pretrain_epochs} epochs: val accuracy "
             f"{source['metrics']['val_accuracy']:.4f}; then digits 5-9 for {args.epochs} epochs "
             f"({tuned['steps']} steps each); options: {' '.join(COMMON)}",
             "epoch  fine-tuned  scratch"]
    lines += [f"{epoch:5d}  {a:10.4f}  {b:7.4f}" for epoch, (a, b) in
              enumerate(zip(tuned_curve, scratch_curve, strict=True), 1)]
    lines.append(f"final: fine-tuned {tuned_curve[-1]:.4f} vs scratch {scratch_curve[-1]:.4f} "
                 f"({'fine-tuning wins' if tuned_curve[-1] > scratch_curve[-1] else 'scratch wins or ties'})")
    text = "\n".join(lines) + "\n"
    RESULT.write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
