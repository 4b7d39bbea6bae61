"""A graph output with no elements (an empty batch of real samples) still fits in the parity table."""

from __future__ import annotations

import numpy as np

from zoo.bundles import format_table
from zoo.bundles.parity import compare


def test_format_table_takes_a_zero_element_comparison() -> None:
    empty = np.zeros((0, 10), np.float32)
    check = {"inputs": "real samples", "output": "logits", **compare(empty, empty, atol=1e-5, rtol=1e-5)}
    assert check["passed"] and check["elements"] == 0
    report = {"passed": True,
              "graphs": {"model": {"CPUExecutionProvider": {"atol": 1e-5, "rtol": 1e-5, "checks": [check]}}}}
    table = format_table(report)
    assert "real samples" in table and "ok" in table
