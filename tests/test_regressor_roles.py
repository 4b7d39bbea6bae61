"""The regressor role through the role-handler API: ``zoo predict BUNDLE rows.csv``, ``zoo deploy`` to python,
real node and headless Chromium (each agreeing with ``zoo predict``), and the int8/fp16 gate by error growth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli

from .helpers import assert_one_line_error
from .test_deploy import _deploy, _page_result, chromium, node_modules, serve  # noqa: F401 - shared fixtures

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
ROWS = ("age,sex,bmi,bp,s1,s2,s3,s4,s5,s6,y\n59,2,32.1,101,157,93.2,38,4,4.8598,87,151\n"
        "48,1,21.6,87,183,103.2,70,3,3.8918,69,75\n")


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("regressor-roles")
    run = zoo.train("tab-mlp", epochs=3, out=out / "runs", progress=False)
    return zoo.export(run.run_dir, out=out / "exports", providers=["cpu"], quantize="int8", fp16=True)


@pytest.fixture
def rows(tmp_path: Path) -> Path:
    path = tmp_path / "rows.csv"
    path.write_text(ROWS)
    return path


def _predicted(bundle: Any, rows: Path) -> list[dict[str, Any]]:
    out = invoke("predict", bundle.bundle_dir, rows, "--json")
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


def test_int8_and_fp16_are_judged_by_error_growth(bundle: Any) -> None:
    for variant in ("model.int8", "model.fp16"):
        gate = bundle.parity["graphs"][variant]["CPUExecutionProvider"]["gate"]
        assert gate["role"] == "tabular:regressor" and gate["passed"]
        assert "RMSE on real rows grows by at most 5 %" in gate["rule"]
        assert gate["metrics"]["reference_rmse"] > 1.0 and abs(gate["metrics"]["error_growth"]) < 0.05


def test_the_gate_fails_a_variant_whose_error_grows() -> None:
    from zoo_tabular.roles import RegressorHandlers

    from zoo.role_handlers import GateCase, GateEvidence

    truth = np.linspace(0, 100, 50, dtype=np.float32)[:, None]
    case = GateCase("real-batch50", {}, {"values": truth + 1}, {"values": truth + 10}, labels=truth)
    evidence = GateEvidence("model", "int8", {"output": "values"}, {}, (case,))
    result = RegressorHandlers().gate(evidence)
    assert not result.passed and result.metrics["error_growth"] == pytest.approx(9.0)


def test_predict_reads_csv_rows_by_column_name(bundle: Any, rows: Path, tmp_path: Path) -> None:
    predicted = _predicted(bundle, rows)
    assert [p["input"] for p in predicted] == ["rows.csv:1", "rows.csv:2"]
    assert all(0 < p["progression"] < 400 for p in predicted), "values in the target's own units"
    shuffled = tmp_path / "shuffled.csv"  # the same rows, columns in another order: the same values
    header = ["y", *reversed(FEATURES)]
    lines = [dict(zip(ROWS.splitlines()[0].split(","), line.split(","), strict=True))
             for line in ROWS.splitlines()[1:]]
    shuffled.write_text(",".join(header) + "\n" + "".join(",".join(d[h] for h in header) + "\n" for d in lines))
    again = _predicted(bundle, shuffled)
    assert [p["progression"] for p in again] == pytest.approx([p["progression"] for p in predicted])
    text = invoke("predict", bundle.bundle_dir, rows)
    assert text.output.splitlines()[0].startswith("rows.csv:1: progression=")
    broken = tmp_path / "broken.csv"
    broken.write_text("age,sex\n1,2\n")
    assert_one_line_error(invoke("predict", bundle.bundle_dir, broken), "needs feature column(s)", "'bmi'")


def test_deploy_python_checks_itself_and_agrees_with_zoo_predict(bundle: Any, rows: Path, tmp_path: Path) -> None:
    folder = tmp_path / "python"
    out = invoke("deploy", bundle.bundle_dir, "--target", "python", "--out", folder)
    assert out.exit_code == 0, out.output
    check = subprocess.run([sys.executable, "run.py", "--check"], cwd=folder, capture_output=True, text=True,
                           timeout=120)
    assert check.returncode == 0 and json.loads(check.stdout)["passed"], check.stdout + check.stderr
    run = subprocess.run([sys.executable, "run.py", str(rows)], cwd=folder, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    got = [p["progression"] for p in json.loads(run.stdout)]
    assert got == pytest.approx([p["progression"] for p in _predicted(bundle, rows)], rel=1e-5)


def test_deploy_node_runs_under_real_node(bundle: Any, rows: Path, tmp_path: Path,
                                          node_modules: Path) -> None:  # noqa: F811 - the shared fixture
    folder = _deploy(bundle.bundle_dir, "node", tmp_path / "node", node_modules)
    check = subprocess.run(["node", "run.js", "--check"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and json.loads(check.stdout)["passed"], check.stdout + check.stderr
    run = subprocess.run(["node", "run.js", str(rows)], cwd=folder, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    got = [p["progression"] for p in json.loads(run.stdout)]
    assert got == pytest.approx([p["progression"] for p in _predicted(bundle, rows)], rel=1e-5)


def test_deploy_web_runs_in_headless_chromium(bundle: Any, rows: Path, tmp_path: Path,
                                              node_modules: Path, chromium: str, serve: Any  # noqa: F811
                                              ) -> None:
    folder = _deploy(bundle.bundle_dir, "web", tmp_path / "web", node_modules)
    (folder / "rows.csv").write_text(rows.read_text())
    url = serve(folder)
    assert _page_result(chromium, url + "?check=1")["passed"]
    got = [p["progression"] for p in _page_result(chromium, url + "?rows=rows.csv")]
    assert got == pytest.approx([p["progression"] for p in _predicted(bundle, rows)], rel=1e-5)
