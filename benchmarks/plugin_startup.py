"""How long `zoo list` takes with the example plugin installed, against the built-ins alone.

Installs examples/zoo-example-plugin with pip into a temporary folder (nothing in the environment
changes), then times fresh `python -m zoo list` processes, alternating the three variants round by
round so they are measured side by side: the interpreter alone (`python -c pass`), `zoo --no-plugins
list`, and `zoo list` with the example. Reports medians and the example's cost as a ratio.

    python benchmarks/plugin_startup.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def install_example(work: Path) -> Path:
    """pip-install a copy of the example (so no build files land in the repository); returns the site."""
    source, site = work / "source", work / "site"
    shutil.copytree(ROOT / "examples" / "zoo-example-plugin", source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(source)], check=True, capture_output=True)
    return site


def seconds(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as tmp:
        site = install_example(Path(tmp))
        env = {**os.environ, "PYTHONPATH": str(site)}
        for var in ("ZOO_LOAD_PLUGINS", "ZOO_BLOCK_PLUGINS", "ZOO_TRACE_PLUGINS"):
            env.pop(var, None)
        listed = subprocess.run([sys.executable, "-m", "zoo", "list"], capture_output=True, text=True, env=env)
        assert "vit-mini" in listed.stdout, "the example plugin did not load"
        variants = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "zoo --no-plugins list": [sys.executable, "-m", "zoo", "--no-plugins", "list"],
            "zoo list (+ example)": [sys.executable, "-m", "zoo", "list"],
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, args in variants.items():
                times[name].append(seconds(args, env))
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"rounds={rounds} python={sys.version.split()[0]} cpus={os.cpu_count()}")
    for name, median in medians.items():
        print(f"{name:24} median {median * 1000:7.1f} ms   max {max(times[name]) * 1000:7.1f} ms")
    ratio = medians["zoo list (+ example)"] / medians["zoo --no-plugins list"]
    print(f"example plugin's cost: {ratio:.2f}x the built-ins-only listing")
    verdict = "under" if medians["zoo list (+ example)"] < 0.5 else "OVER"
    print(f"zoo list with the example: {verdict} half a second")


if __name__ == "__main__":
    main()
