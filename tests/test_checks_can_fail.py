"""Checks that must be able to fail: a variant judged on nothing, the accuracy gate on few samples, a runtime
that ran no graph, a variant that fails its gate (the fp32 bundle is still published)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from zoo.bundles.graph_checks import Case, GraphCheck, accuracy_gate, against_fp32, judge
from zoo.bundles.runtime_checks import RuntimeCheck, format_runtimes, runtimes_passed
from zoo.cli import cli

from .helpers import outside_harness


def variant_check(cases: list[Case]) -> GraphCheck:
    return GraphCheck("generator.int8", Path("unused.onnx"), ["noise"], ["image"], 0.5, 0.1, None, 0.01, cases)


def random_case(name: str, value: float) -> Case:
    return Case(name, [np.zeros((2, 4), np.float32)], [np.full((2, 3), value, np.float32)])


def test_a_variant_without_real_samples_is_judged_on_its_random_inputs() -> None:
    """A generator's int8 graph has random inputs only: outputs off by 1e6 must fail (they passed before)."""
    cases = against_fp32([random_case("random-batch1", 0.0), random_case("random-batch16", 0.0)])
    check = variant_check(cases)
    wrong = [[np.full((2, 3), 1e6, np.float32)] for _ in cases]
    assert not judge(check, wrong, atol=0.5, rtol=0.1)["passed"]
    right = [[np.full((2, 3), 0.2, np.float32)] for _ in cases]
    assert judge(check, right, atol=0.5, rtol=0.1)["passed"]


def test_a_variant_with_real_samples_is_judged_there_only() -> None:
    cases = against_fp32([random_case("random-batch1", 0.0), random_case("real-batch2", 0.0)])
    assert [c.judged for c in cases] == [False, True]
    result = judge(variant_check(cases), [[np.full((2, 3), 9.0, np.float32)], [np.zeros((2, 3), np.float32)]],
                   atol=0.5, rtol=0.1)
    assert result["passed"] and [r["judged"] for r in result["checks"]] == [False, True]


def test_a_check_that_judged_nothing_fails() -> None:
    cases = [random_case("random-batch1", 0.0)]
    cases[0].judged = False
    result = judge(variant_check(cases), [[np.zeros((2, 3), np.float32)]], atol=0.5, rtol=0.1)
    assert not result["passed"] and "no input set was judged" in result["not_judged"]


def one_hot(classes: list[int], width: int = 10) -> np.ndarray:
    return np.eye(width, dtype=np.float32)[classes]


def test_the_accuracy_gate_tells_one_flip_in_eight_from_a_real_loss() -> None:
    labels = np.arange(8) % 10
    flipped = labels.copy()
    flipped[0] = 5  # one of 8 wrong: 12.5 points, but no evidence of a loss
    gate = accuracy_gate(one_hot(list(labels)), one_hot(list(flipped)), labels, 0.01)
    assert gate["accuracy_drop"] == pytest.approx(0.125) and gate["accuracy_passed"]
    labels = np.arange(1000) % 10
    worse = labels.copy()
    worse[:50] = (worse[:50] + 1) % 10  # 50 of 1,000 lost, none gained: 5 points, far beyond chance
    gate = accuracy_gate(one_hot(list(labels)), one_hot(list(worse)), labels, 0.01)
    assert not gate["accuracy_passed"] and gate["accuracy_lost"] == 50 and gate["accuracy_samples"] == 1000
    worse[6:] = labels[6:]  # 6 lost of 1,000 (0.6 points): within the allowed point
    assert accuracy_gate(one_hot(list(labels)), one_hot(list(worse)), labels, 0.01)["accuracy_passed"]


def rows(*statuses: tuple[str, str]) -> list[RuntimeCheck]:
    return [RuntimeCheck(runtime, f"g{i}", status, None if status == "unsupported" else 0.0,
                         "no such operator" if status == "unsupported" else "")
            for i, (runtime, status) in enumerate(statuses)]


def test_a_runtime_that_ran_no_graph_never_reads_as_passed() -> None:
    table = rows(("onnxruntime", "passed"), ("tract", "unsupported"), ("tract", "unsupported"))
    text = format_runtimes(table)
    assert "tract: not run: unsupported" in text and "onnxruntime: passed on 1 of 1" in text
    assert runtimes_passed(table)  # `--runtimes all`: tract's limitation is named, not a failure
    assert not runtimes_passed(table, ["tract"])  # asked for by name: it judged nothing, so no
    assert "runtimes: FAILED" in format_runtimes(table, ["onnxruntime", "tract"])
    assert not runtimes_passed(rows(("reference", "failed")))
    assert runtimes_passed(rows(("onnxruntime", "passed"), ("openvino-default", "failed")))  # shown, not judged


def test_a_variant_failing_its_gate_is_dropped_and_the_fp32_bundle_published(
        train_briefly: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zoo.bundles.variants as variants

    original = variants.variant_tolerance
    monkeypatch.setattr(variants, "variant_tolerance",
                        lambda v, e: (0.0, 0.0) if v == "int8" else original(v, e))  # int8 cannot meet it
    out = tmp_path / "ex"
    result = CliRunner().invoke(cli, ["export", str(train_briefly("cnn").run_dir), "--out", str(out), "--quantize",
                                      "int8", "--fp16", "--providers", "cpu"])
    assert result.exit_code == 0, result.output
    assert "variant model.int8 failed its gate and was left out" in result.stderr
    bundle = next(out.iterdir())
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert set(manifest["graphs"]) == {"model", "model.fp16"} and not (bundle / "model.int8").exists()
    assert manifest["parity_passed"] is True
    assert "model.int8" in json.loads((bundle / "parity.json").read_text())["dropped_variants"]
    assert "`model.int8` failed its gate and is not in this bundle" in (bundle / "card.md").read_text()
    assert outside_harness(bundle) == []
    monkeypatch.undo()
    assert CliRunner().invoke(cli, ["verify", str(bundle), "--bundle-only"]).exit_code == 0
