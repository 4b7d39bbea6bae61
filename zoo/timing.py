"""The one timing method of zoo: engines interleaved call by call, fixed threads, spreads and machine load.

``zoo bench`` and ``benchmarks/onnx_vs_eager.py`` both time through :func:`interleaved`, so their
figures are measured the same way: every round calls each engine once, in turn, so a burst of load
from elsewhere hits all of them alike and ratios stay meaningful on a shared machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: A machine whose one-minute load average exceeds this share of its cores is reported as loaded.
LOADED_SHARE = 0.5


def interleaved(calls: dict[str, Callable[[], Any]], *, warmup: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each engine: ``warmup`` untimed rounds, then ``rounds`` timed ones, engines in turn."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return times


def spread(seconds: list[float]) -> dict[str, float]:
    """Percentiles of a list of timings, in milliseconds (p10 and p90 are the spread shown beside p50)."""
    ms = 1e3 * np.asarray(seconds)
    return {f"p{q}_ms": float(np.percentile(ms, q)) for q in (10, 50, 90, 99)}


def ratio_spread(numerator: list[float], denominator: list[float]) -> dict[str, float]:
    """The per-round ratio ``numerator / denominator`` (rounds are paired): median, p10 and p90."""
    ratios = np.asarray(numerator) / np.asarray(denominator)
    return {"median": float(np.median(ratios)), "p10": float(np.percentile(ratios, 10)),
            "p90": float(np.percentile(ratios, 90))}


@dataclass
class Load:
    """One-minute load average against the cores this process may use."""

    load_1m: float
    cores: int
    loaded: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        state = "LOADED: other work competes, absolute times are pessimistic" if self.loaded else "not loaded"
        return f"load average {self.load_1m:.2f} on {self.cores} cores ({state})"


def machine_load() -> Load:
    """The machine's load now (load average 0 where the platform has none)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return Load(round(load, 2), cores, load > LOADED_SHARE * cores)
