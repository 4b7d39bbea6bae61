"""The role-handler API, used by a third-party plugin exactly as the built-in roles use it: a plugin that registers
its own role (with predict, deploy and gate handlers) and a family whose graph has that role trains, exports
(its int8 variant judged by the plugin's gate), predicts from CSV rows and deploys a program that checks itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli

from .helpers import assert_one_line_error

SCORER_PLUGIN = '''
import shutil

import numpy as np

from zoo.hookspecs import hookimpl
from zoo.role_handlers import DeployPlan, DeployVectors, GateResult, PredictRow, RoleHandlers
from zoo.roles import RoleSpec
from zoo.specs import FamilySpec, InputSpec, ModelSpec

PROGRAM = """
import json, sys
import numpy as np, onnxruntime as ort
table = json.load(open("vectors/vectors.json"))
def read(entry):
    return np.fromfile("vectors/" + entry["file"], dtype=entry["dtype"]).reshape(entry["shape"])
session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
feeds = {name: read(entry) for name, entry in table["inputs"].items()}
got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
ok = all(np.allclose(got[name], read(entry), atol=entry["atol"], rtol=0) for name, entry in table["outputs"].items())
print(json.dumps({"passed": bool(ok)}))
"""


class ScoreHandlers(RoleHandlers):
    def predict(self, request):
        session, info = request.session(), request.graph.role_info
        rows = []
        for path in request.inputs:
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                x = np.asarray([float(v) for v in line.split(",")], np.float32).reshape(1, 1, 8, 8)
                scores = session.run([info["output"]], {request.graph.input_names[0]: x})[0][0]
                best = int(scores.argmax())
                rows.append(PredictRow(f"{path.name}:{number}", f"digit {best}", {"digit": best}))
        return rows

    def deploy(self, request):
        shutil.copyfile(request.bundle.graph_path(request.graph), request.folder / "model.onnx")
        import onnxruntime as ort

        x = np.random.default_rng(0).standard_normal((3, 1, 8, 8)).astype(np.float32)
        session = ort.InferenceSession(str(request.folder / "model.onnx"), providers=["CPUExecutionProvider"])
        y = session.run(None, {request.graph.input_names[0]: x})[0]
        name = request.graph.role_info["output"]
        return DeployPlan(info={"role": request.graph.role, "target": request.target}, programs={"run.py": PROGRAM},
                          readme="# scores\\n", vectors=DeployVectors({request.graph.input_names[0]: x}, {name: y},
                                                                    {name: 1e-5}),
                          pip=("onnxruntime", "numpy"))

    def gate(self, evidence):
        output = evidence.role_info["output"]
        changes = [float(np.abs(case.outputs[output] - case.reference[output]).max())
                   for case in evidence.real_cases()]
        worst = max(changes, default=0.0)
        return GateResult(worst < LIMIT, "largest score change < limit", {"worst_score_change": worst})


LIMIT = 1e6


@hookimpl
def register_roles(register):
    register(RoleSpec("scores", "8x8 digit -> ten scores", ("output",), output_keys=("output",),
                      handlers="zoo_test_scorer:ScoreHandlers"))


@hookimpl
def register_families(register):
    register(FamilySpec("scorer", "digits scored by a plugin's own role", "zoo_test_scorer_family:ScorerFamily"))


@hookimpl
def register_models(register):
    register(ModelSpec(name="tiny-scorer", family="scorer", summary="a test model",
                       builder="zoo_cnn.models:ArticleCNN", input=InputSpec(1, 8, 8)))
'''

SCORER_FAMILY = '''
from dataclasses import replace

from zoo_cnn.family import ClassifierFamily


class ScorerFamily(ClassifierFamily):
    def graphs(self, model, data):
        return [replace(spec, role="scorer:scores", role_info={"output": "logits"}, class_output=None)
                for spec in super().graphs(model, data)]
'''


@pytest.fixture
def scorer(make_plugin: Callable[..., Path], tmp_path: Path) -> tuple[Path, Path, Any]:
    """The plugin installed; a briefly trained run of its model (the folder), exported with an int8 variant."""
    site = make_plugin("scorer", SCORER_PLUGIN)
    (site / "zoo_test_scorer_family.py").write_text(SCORER_FAMILY)
    run = zoo.train("tiny-scorer", epochs=1, batch_size=256, out=tmp_path / "runs", progress=False)
    return site, run.run_dir, zoo.export(run.run_dir, out=tmp_path / "exports", providers=["cpu"], quantize="int8")


def test_a_plugin_role_reaches_predict_deploy_and_the_variant_gate(scorer: tuple[Path, Path, Any],
                                                                    tmp_path: Path) -> None:
    site, _, result = scorer
    bundle = result.bundle_dir
    graphs = result.manifest["graphs"]
    assert graphs["model"]["metadata"]["zoo_role"] == "scorer:scores", "the role is stamped with its plugin"
    gate = result.parity["graphs"]["model.int8"]["CPUExecutionProvider"]["gate"]
    assert gate["rule"] == "largest score change < limit" and gate["passed"] and gate["role"] == "scorer:scores"
    assert "worst_score_change" in gate["metrics"]

    rows = tmp_path / "rows.csv"
    x = np.random.default_rng(1).standard_normal((2, 64))
    rows.write_text("\n".join(",".join(f"{v:.4f}" for v in row) for row in x) + "\n")
    out = CliRunner().invoke(cli, ["predict", str(bundle), str(rows), "--json"])
    assert out.exit_code == 0, out.output
    predicted = json.loads(out.output)
    assert [r["input"] for r in predicted] == ["rows.csv:1", "rows.csv:2"]
    assert all(r["summary"] == f"digit {r['digit']}" for r in predicted)
    table = CliRunner().invoke(cli, ["predict", str(bundle), str(rows)])
    assert table.output.splitlines()[0] == f"rows.csv:1: digit {predicted[0]['digit']}"

    folder = tmp_path / "deployed"
    out = CliRunner().invoke(cli, ["deploy", str(bundle), "--target", "python", "--out", str(folder)])
    assert out.exit_code == 0, out.output
    assert json.loads((folder / "deploy.json").read_text()) == {"role": "scorer:scores", "target": "python",
                                                                "zoo_deploy": 1}
    assert (folder / "requirements.txt").read_text() == "onnxruntime\nnumpy\n"
    check = subprocess.run([sys.executable, "run.py"], cwd=folder, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": ""})
    assert check.returncode == 0 and json.loads(check.stdout) == {"passed": True}, check.stderr

    # zoo predict and zoo deploy import neither torch nor the plugin's family (only its handlers)
    env = {**os.environ, "PYTHONPATH": str(site)}
    for args in (["predict", str(bundle), str(rows)],
                 ["deploy", str(bundle), "--target", "node", "--out", str(tmp_path / "node")]):
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "zoo", *args], capture_output=True,
                              text=True, env=env, timeout=300)
        imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
        assert done.returncode == 0, done.stderr[-2000:]
        assert "torch" not in imported and "zoo_test_scorer_family" not in imported, args


def test_a_variant_failing_a_plugin_gate_is_left_out_and_verify_fails(scorer: tuple[Path, Path, Any], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import zoo_test_scorer

    _, run_dir, result = scorer
    monkeypatch.setattr(zoo_test_scorer, "LIMIT", -1.0)
    # the variant fails its role's gate: it is left out and said so, the passing fp32 graph is still published
    again = zoo.export(run_dir, out=tmp_path / "again", providers=["cpu"], quantize="int8")
    assert set(again.manifest["graphs"]) == {"model"} and not (again.bundle_dir / "model.int8").exists()
    dropped = again.parity["dropped_variants"]["model.int8"]
    assert dropped["results"]["CPUExecutionProvider"]["gate"]["passed"] is False
    report = CliRunner().invoke(cli, ["verify", str(result.bundle_dir), "--bundle-only"])
    assert report.exit_code == 1 and "largest score change < limit" in report.output and "FAIL" in report.output


def test_predict_and_deploy_refuse_a_bundle_whose_role_they_cannot_handle(scorer: tuple[Path, Path, Any],
                                                                          tmp_path: Path) -> None:
    import shutil

    bundle = scorer[2].bundle_dir
    manifest = json.loads((bundle / "manifest.json").read_text())
    other = Path(shutil.copytree(bundle, tmp_path / "other"))
    for graph in manifest["graphs"].values():
        graph["metadata"]["zoo_role"] = "encoder"
    (other / "manifest.json").write_text(json.dumps(manifest))
    out = CliRunner().invoke(cli, ["predict", str(other), str(tmp_path / "rows.csv")])
    assert_one_line_error(out, "holds no graph `zoo predict` can use", "graph roles: encoder",
                          "handles the roles classifier")
    out = CliRunner().invoke(cli, ["deploy", str(other), "--target", "node", "--out", str(tmp_path / "d")])
    assert_one_line_error(out, "holds no graph `zoo deploy` can use", "handles the roles classifier", "scores")
    assert not (tmp_path / "d").exists(), "nothing is written for a bundle that cannot be deployed"


def test_class_rows_are_the_softmax_of_each_row_with_the_top_classes() -> None:
    from zoo.role_handlers import class_rows

    logits = np.array([[0.0, 2.0, 1.0], [5.0, 5.0, -1.0]], np.float32)
    rows = class_rows(["a.wav", Path("b.wav")], logits, ["no", "yes", "up"], top=2, key="file")
    first, second = (row.to_dict() for row in rows)
    expected = np.exp(logits[0].astype(np.float64)) / np.exp(logits[0].astype(np.float64)).sum()
    assert first["file"] == first["input"] == "a.wav" and first["class"] == "yes" and first["index"] == 1
    assert list(first["probabilities"].values()) == pytest.approx(expected.tolist(), rel=1e-12)
    assert first["summary"] == f"yes  (yes {expected[1]:.3f}, up {expected[2]:.3f})"
    assert second["class"] == "no" and second["summary"].startswith("no  (no 0.499, yes 0.499)")  # ties: first
    with pytest.raises(ValueError):  # a logits row per input, no fewer
        class_rows(["a.wav"], logits, ["no", "yes", "up"])
