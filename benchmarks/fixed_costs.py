"""Fixed costs of whole commands against what a user would write by hand, as whole processes, paired.

- ``zoo export`` (all verification kept) against ``benchmarks/scripts/bare_export.py`` (the public
  ``torch.onnx.export`` over the same graphs, nothing checked), for a two-graph bundle (gan, vae) and a
  one-graph one (cnn). Targets: two graphs ≤ 1.0×, one graph ≤ 1.05×.
- ``zoo train cnn`` (defaults) against ``benchmarks/scripts/hand_train.py``. Target ≤ 1.05×. Then one
  ``zoo train cnn`` under cProfile, with the time of each thing it does that the script does not
  (``EXTRAS``: plugin discovery, the first-batch check, per-epoch checkpoints, the loss curve...).

Each pair runs back to back, alternating which goes first; the ratio is the median over the pairs,
with its min and max. The machine's load is printed at the start and the end: on a shared machine
the absolute times drift, the paired ratios much less.

    python benchmarks/fixed_costs.py [--pairs 5] [--skip-train] [--models gan,vae,cnn]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, header, paired, ratio_line, zoo_command


def train_quickly(model: str, out: Path, env: dict[str, str]) -> Path:
    """A one-epoch run of ``model`` to export (not timed)."""
    subprocess.run(zoo_command("train", model, "--epochs", "1", "--out", str(out)), check=True, env=env, cwd=ROOT,
                   capture_output=True)
    return next(out.glob(f"{model}-*"))


def compare_exports(model: str, work: Path, env: dict[str, str], pairs: int) -> None:
    run = train_quickly(model, work / f"runs-{model}", env)
    zoo = zoo_command("export", str(run), "--out", str(work / "zoo-exports"), "--force")
    bare = [sys.executable, str(ROOT / "benchmarks/scripts/bare_export.py"), str(run), str(work / "bare")]
    a, b = paired(zoo, bare, pairs, env)
    print(ratio_line(f"export {model}: zoo export / bare torch.onnx.export script", a, b), flush=True)


def compare_training(work: Path, env: dict[str, str], pairs: int) -> None:
    from zoo.cache import cached_arrays

    os.environ["ZOO_CACHE_DIR"] = env["ZOO_CACHE_DIR"]
    sys.path.insert(0, str(ROOT / "plugins"))
    from zoo_digits.loader import CACHE_NAME, _from_sklearn, sklearn_version

    cached_arrays(CACHE_NAME, f"scikit-learn {sklearn_version()}", _from_sklearn)  # both sides read these arrays
    digits = Path(env["ZOO_CACHE_DIR"]) / f"{CACHE_NAME}.npz"
    zoo = zoo_command("train", "cnn", "--out", str(work / "zoo-runs"))
    hand = [sys.executable, str(ROOT / "benchmarks/scripts/hand_train.py"), str(digits), str(work / "hand")]
    a, b = paired(zoo, hand, pairs, env)
    print(ratio_line("train cnn (defaults): zoo train / hand-written script", a, b), flush=True)
    print_extras(work, env)


#: What a default ``zoo train`` does that ``hand_train.py`` does not: (module, function, why it is kept).
EXTRAS = [
    ("zoo/__init__.py", "<module>", "zoo's own modules"),
    ("zoo/cli.py", "<module>", "the command line (click)"),
    ("zoo/plugins.py", "load_plugins", "plugin discovery: the model's name is resolved through the plugins"),
    ("zoo/engine/persistence.py", "write_config", "config.json and run.toml: what resume and export read"),
    ("zoo/engine/assembly.py", "check_first_batch", "first-batch check: a wrong class count or data "
                                                        "fails in one line before training"),
    ("zoo/engine/persistence.py", "save_checkpoint", "a checkpoint every epoch: exact resume after a kill"),
    ("zoo/plots.py", "write_loss_curve", "loss_curve.png, for every run of every family"),
]


def print_extras(work: Path, env: dict[str, str]) -> None:
    """One ``zoo train cnn`` under cProfile: the seconds of each of ``EXTRAS`` (inflated by the profiler)."""
    import pstats

    profile = work / "train.prof"
    command = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "zoo", "train", "cnn",
               "--out", str(work / "profiled-runs")]
    subprocess.run(command, check=True, env=env, cwd=ROOT, capture_output=True)
    stats = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    total = max(entry[3] for entry in stats.values())
    print(f"what zoo train cnn does beyond the script (one run under cProfile, {total:.2f} s in all):")
    extra = 0.0
    for module, function, why in EXTRAS:
        seconds = sum(entry[3] for (path, _, name), entry in stats.items()
                      if path.endswith(module) and name == function)
        extra += seconds
        print(f"  {seconds:6.3f} s  {module}:{function}  ({why})")
    print(f"  {extra:6.3f} s  in all", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--models", default="gan,vae,cnn", help="Models whose export is compared ('' for none).")
    parser.add_argument("--skip-train", action="store_true", help="Leave out the zoo train comparison.")
    parser.add_argument("--train-first", action="store_true", help="Compare training before the exports.")
    args = parser.parse_args()
    print(header("benchmarks/fixed_costs.py: whole processes, paired, zoo / hand-written"))
    print(f"pairs={args.pairs}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {**os.environ, "ZOO_CACHE_DIR": str(work / "cache")}
        steps = [lambda m=m: compare_exports(m, work, env, args.pairs) for m in args.models.split(",") if m]
        if not args.skip_train:
            training = lambda: compare_training(work, env, args.pairs)  # noqa: E731
            steps.insert(0 if args.train_first else len(steps), training)
        for step in steps:
            step()
    from zoo.timing import machine_load

    print(f"# at end: {machine_load().describe()}")


if __name__ == "__main__":
    main()
