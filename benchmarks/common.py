"""Helpers shared by the whole-process benchmarks: timing a command, paired runs, the header of a result."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def zoo_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "zoo", *args]


def timed(command: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the process and its children) of one whole process.

    On a shared machine the CPU time leaves out the time other processes took; raises if the command fails.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(list(command), capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def paired(a: Sequence[str], b: Sequence[str], pairs: int, env: dict[str, str] | None = None
           ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """``pairs`` runs of each command back to back, alternating which goes first (no order bias)."""
    times_a, times_b = [], []
    for index in range(pairs):
        if index % 2 == 0:
            times_a.append(timed(a, env))
            times_b.append(timed(b, env))
        else:
            times_b.append(timed(b, env))
            times_a.append(timed(a, env))
        # each pair as it comes: a run cut short still leaves its finished pairs behind
        print(f"  pair {index + 1}: wall {times_a[-1][0]:.2f} s / {times_b[-1][0]:.2f} s, "
              f"CPU {times_a[-1][1]:.2f} s / {times_b[-1][1]:.2f} s", flush=True)
    return times_a, times_b


def ratio_line(label: str, a: list[tuple[float, float]], b: list[tuple[float, float]]) -> str:
    """Per clock (wall, CPU): median seconds of each side and the median, min and max of the per-pair ratio a/b."""
    lines = [f"{label} ({len(a)} pairs):"]
    for index, clock in enumerate(("wall", "CPU")):
        x, y = [t[index] for t in a], [t[index] for t in b]
        ratios = [p / q for p, q in zip(x, y, strict=True)]
        lines.append(f"  {clock:>4}: {statistics.median(x):.2f} s vs {statistics.median(y):.2f} s, ratio median "
                     f"{statistics.median(ratios):.3f}x (min {min(ratios):.3f}, max {max(ratios):.3f})")
    return "\n".join(lines)


def header(title: str) -> str:
    """Date, machine and load: the first lines of every result file."""
    from zoo.timing import machine_load

    return (f"# {title}\n# date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}; machine: {platform.node()} "
            f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}); {machine_load().describe()}")
