"""Deployable bundles: test vectors, a second runtime, verification without torch, variants, bad bundles."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from zoo.bundles import export_run
from zoo.bundles.graph_checks import BATCH_SIZES, torch_outputs
from zoo.bundles.parity import compare
from zoo.bundles.vectors import data_set_folders, read_test_set
from zoo.cli import cli
from zoo.digest import file_sha256 as sha256
from zoo.ort import CUDA, usable_providers

from .helpers import assert_one_line_error, briefly_trained_models, outside_harness

MODELS = briefly_trained_models()
_exported: dict[str, Any] = {}


@pytest.fixture(scope="module")
def bundle_of(train_briefly, tmp_path_factory: pytest.TempPathFactory):
    """Export each model's briefly trained run once for this module."""

    def get(name: str) -> Any:
        if name not in _exported:
            _exported[name] = export_run(train_briefly(name).run_dir, out=tmp_path_factory.mktemp("bundles"),
                                         providers=["cpu"])
        return _exported[name]

    return get


def invoke(*args: Any):
    return CliRunner().invoke(cli, [str(a) for a in args])




def resign(bundle: Path) -> None:
    """Recompute the manifest's hashes, as a buggy or malicious exporter would after changing a file."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"] = {p.relative_to(bundle).as_posix(): sha256(p) for p in sorted(bundle.rglob("*"))
                         if p.is_file() and p.name != "manifest.json"}
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def private_copy(bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle, tmp_path / bundle.name))


@pytest.mark.parametrize("name", MODELS)
def test_every_graph_matches_pytorch_under_the_onnx_reference_implementation(name: str, bundle_of,
                                                                              train_briefly) -> None:
    """A second, independent runtime: onnx.reference against PyTorch at batch 1 and a larger batch."""
    from onnx.reference import ReferenceEvaluator

    from zoo.runs import load_run

    result = bundle_of(name)
    run = load_run(train_briefly(name).run_dir)
    for graph in run.family.graphs(run.model, run.data_info):
        entry = result.manifest["graphs"][graph.name]
        evaluator = ReferenceEvaluator(str(result.bundle_dir / entry["file"]))
        rng = np.random.default_rng(7)
        for batch in BATCH_SIZES:
            inputs = graph.random_inputs(batch, rng)
            expected = torch_outputs(graph.module, inputs)
            actual = evaluator.run(list(graph.output_names), dict(zip(graph.input_names, inputs, strict=True)))
            for out_name, ref, got in zip(graph.output_names, expected, actual, strict=True):
                check = compare(ref, got, atol=1e-5, rtol=1e-5)
                assert check["passed"], (graph.name, out_name, batch, check)


@pytest.mark.parametrize("name", MODELS)
def test_test_vectors_are_in_the_model_zoo_layout(name: str, bundle_of) -> None:
    import onnx

    result = bundle_of(name)
    for graph_name, entry in result.manifest["graphs"].items():
        graph_dir = result.bundle_dir / graph_name
        assert (graph_dir / "model.onnx").is_file()
        folders = data_set_folders(graph_dir)
        assert [f.name for f in folders] == [f"test_data_set_{i}" for i in range(len(entry["test_sets"]))]
        batches = set()
        for folder in folders:
            inputs, outputs = read_test_set(folder)
            assert len(inputs) == len(entry["inputs"]) and len(outputs) == len(entry["outputs"])
            for kind, values in (("input", entry["inputs"]), ("output", entry["outputs"])):
                for index, value in enumerate(values):
                    proto = onnx.load_tensor(str(folder / f"{kind}_{index}.pb"))
                    assert proto.name == value["name"]
            batches.add(len(inputs[0]))
        assert 1 in batches and max(batches) > 1


@pytest.mark.parametrize("name", MODELS)
def test_a_copied_bundle_verifies_without_torch(name: str, bundle_of, tmp_path: Path) -> None:
    """Only the bundle, onnx and ONNX Runtime: first with torch impossible to import, then (`--bundle-only`)
    checking that nothing on the way imports it."""
    copy = private_copy(bundle_of(name).bundle_dir, tmp_path)
    env = {**os.environ, "ZOO_LOAD_PLUGINS": ""}
    hidden = ("import sys; sys.modules['torch'] = None; from zoo.cli import main; "
              f"main(['verify', {str(copy)!r}, '--json'])")
    done = subprocess.run([sys.executable, "-c", hidden], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["passed"] and "torch is not installed" in report["pytorch_skipped"]
    manifest = json.loads((copy / "manifest.json").read_text())
    for graph_name, graph in report["graphs"].items():
        cpu = graph["CPUExecutionProvider"]
        entry = manifest["graphs"][graph_name]
        assert (cpu["atol"], cpu["rtol"]) == (entry["atol"], entry["rtol"]), "held to the exported tolerance"
        assert all(c["inputs"].startswith("test_data_set_") for c in cpu["checks"])

    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "zoo", "verify", str(copy), "--bundle-only"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0 and "parity: PASSED" in done.stdout, done.stdout + done.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert not {m for m in imported if m == "torch" or m.startswith("torch.")}, "bundle-only verify imported torch"


def test_int8_fp16_and_optimized_variants(train_briefly, tmp_path: Path) -> None:
    result = export_run(train_briefly("cnn").run_dir, out=tmp_path, providers=["cpu"], quantize="int8", fp16=True,
                        optimize=True, measure_variants=True)
    graphs = result.manifest["graphs"]
    assert set(graphs) == {"model", "model.int8", "model.fp16"}
    assert graphs["model"]["optimized"] == "onnxruntime-basic" and graphs["model"]["atol"] == 1e-5
    assert graphs["model.int8"]["method"].startswith("static QDQ")
    assert any(n["dtype"] == "float32" for n in graphs["model.fp16"]["inputs"]), "fp16 keeps fp32 inputs"
    for name in ("model.int8", "model.fp16"):
        cpu = result.parity["graphs"][name]["CPUExecutionProvider"]
        assert cpu["passed"] and cpu["accuracy_drop"] <= 0.01, cpu
    card = (result.bundle_dir / "card.md").read_text()
    assert "model.int8" in card and "drop" in card and "× the fp32 speed" in card
    assert "Tolerance: atol" in card and "largest fp32 output" in card
    alone = invoke("verify", result.bundle_dir, "--bundle-only")
    assert alone.exit_code == 0, alone.output


@pytest.mark.parametrize("name", MODELS)
def test_every_model_exports_int8_and_fp16_variants_within_their_tolerances(name: str, train_briefly,
                                                                            tmp_path: Path) -> None:
    """Every graph of every model quantizes and converts, and each variant passes its own tolerance on the CPU
    (a GAN discriminator calibrated on random images instead of real ones did not)."""
    result = export_run(train_briefly(name).run_dir, out=tmp_path, providers=["cpu"], quantize="int8", fp16=True)
    fp32 = [g for g, entry in result.manifest["graphs"].items() if entry["variant"] == "fp32"]
    assert set(result.manifest["graphs"]) == {f"{g}{suffix}" for g in fp32 for suffix in ("", ".int8", ".fp16")}
    failed = [g for g, providers in result.parity["graphs"].items() if not providers["CPUExecutionProvider"]["passed"]]
    assert result.parity["passed"], failed
    # every variant's stored vectors pass their declared tolerance under a harness that knows nothing of zoo
    assert outside_harness(result.bundle_dir) == []
    # ONNX Runtime's CPU provider computes most fp16 operators in fp32; onnx's reference evaluator rounds every
    # activation to float16 as fp16 hardware does, and the fp16 tolerance must hold there too.
    from zoo.bundles.manifest import Bundle
    from zoo.bundles.runtime_checks import check_runtimes
    from zoo.bundles.verification import vector_check

    bundle = Bundle.open(result.bundle_dir)
    checks = [vector_check(bundle, entry) for entry in bundle.manifest.graphs.values() if entry.variant == "fp16"]
    rows = check_runtimes(checks, ["reference"])
    assert rows and all(r.status == "passed" for r in rows), [(r.graph, r.max_abs_diff, r.reason) for r in rows]


def test_external_data_stays_in_one_relative_file(train_briefly, tmp_path: Path) -> None:
    import onnx

    result = export_run(train_briefly("cnn").run_dir, out=tmp_path / "ex", providers=["cpu"], external_data=True)
    entry = result.manifest["graphs"]["model"]
    assert entry["external_data"] == ["model/model.onnx.data"]
    assert "model/model.onnx.data" in result.manifest["files"]
    assert invoke("verify", result.bundle_dir, "--bundle-only").exit_code == 0

    # point the weights outside the bundle (and re-sign): refused before ONNX Runtime reads anything
    bundle = private_copy(result.bundle_dir, tmp_path)
    path = bundle / "model" / "model.onnx"
    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
        for item in tensor.external_data:
            if item.key == "location":
                item.value = "../../outside.data"
    onnx.save(model, str(path))
    shutil.copy(bundle / "model" / "model.onnx.data", tmp_path / "outside.data")
    resign(bundle)
    assert_one_line_error(invoke("verify", bundle), "outside the bundle")


def test_tampered_test_vector_is_refused(bundle_of, tmp_path: Path) -> None:
    bundle = private_copy(bundle_of("cnn").bundle_dir, tmp_path)
    (bundle / "model" / "test_data_set_0" / "output_0.pb").write_bytes(b"garbage")
    assert_one_line_error(invoke("verify", bundle), "test_data_set_0/output_0.pb does not match its manifest hash")


def test_graph_failing_the_checker_is_refused(bundle_of, tmp_path: Path) -> None:
    import onnx

    bundle = private_copy(bundle_of("cnn").bundle_dir, tmp_path)
    path = bundle / "model" / "model.onnx"
    model = onnx.load(str(path))
    model.graph.node[0].input[0] = "no_such_tensor"
    onnx.save(model, str(path))
    resign(bundle)
    assert_one_line_error(invoke("verify", bundle), "fails the ONNX checker")


def test_opset_onnx_runtime_cannot_run(bundle_of, tmp_path: Path) -> None:
    import onnx

    bundle = private_copy(bundle_of("cnn").bundle_dir, tmp_path)
    path = bundle / "model" / "model.onnx"
    model = onnx.load(str(path))
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = onnx.defs.onnx_opset_version()  # newest the onnx package knows; newer than ORT's
    onnx.save(model, str(path))
    resign(bundle)
    assert_one_line_error(invoke("verify", bundle, "--bundle-only"), "opset", "--opset")


def test_quantize_on_a_graph_without_conv_or_matmul(train_briefly, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from zoo_cnn.family import ClassifierFamily

    original = ClassifierFamily.graphs

    def relu_only(self, model, data):  # type: ignore[no-untyped-def]
        graphs = original(self, model, data)
        for graph in graphs:
            graph.module = torch.nn.ReLU()
            graph.class_output, graph.role, graph.role_info = None, None, {}  # no longer a classifier
        return graphs

    monkeypatch.setattr(ClassifierFamily, "graphs", relu_only)
    out = tmp_path / "ex"
    result = invoke("export", train_briefly("cnn").run_dir, "--out", out, "--quantize", "int8")
    assert result.output.strip().splitlines()[-1].startswith("Error: graph 'model' has no Conv, MatMul or Gemm")
    assert result.exit_code == 2
    assert list(out.iterdir()) == [], "a failed export leaves nothing behind"


def test_require_cuda(bundle_of) -> None:
    usable, skipped = usable_providers()
    result = invoke("verify", bundle_of("cnn").bundle_dir, "--require", "cuda", "--bundle-only", "--json")
    if CUDA in usable:
        report = json.loads(result.output)
        cuda = report["graphs"]["model"][CUDA]
        assert result.exit_code == 0 and cuda["session"]["providers_in_use"][0] == CUDA
        assert cuda["session"]["cuda_use_tf32"] == "0" and cuda["atol"] >= 1e-4
    else:
        assert_one_line_error(result, "cuda is required but cannot run here", skipped[CUDA][:40])


def test_bench_reports_latency_percentiles_and_throughput(bundle_of) -> None:
    result = invoke("bench", bundle_of("cnn").bundle_dir, "--runs", "5", "--warmup", "1", "--batch-sizes", "1,4",
                    "--providers", "cpu", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    engines = {(r["engine"], r["provider"], r["batch"]) for r in report["rows"]}
    assert {("onnxruntime", "cpu", 1), ("onnxruntime", "cpu", 4), ("pytorch eager", "cpu", 4)} <= engines
    for row in report["rows"]:
        assert 0 < row["p10_ms"] <= row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] and row["throughput_per_s"] > 0
        assert row["interleaved"] is True, "CPU engines are timed call by call, in turn"
    assert report["runs"] == 5 and report["threads"] == 2 and "interleaved" in report["method"]
    for load in (report["load_start"], report["load_end"]):
        assert load["load_1m"] >= 0 and load["cores"] >= 1 and isinstance(load["loaded"], bool)
    ratios = {(r["graph"], r["batch"]): r["ort_speedup"] for r in report["ratios"]}
    assert set(ratios) == {("model", 1), ("model", 4)}
    assert all(0 < r["p10"] <= r["median"] <= r["p90"] for r in ratios.values())
    table = invoke("bench", bundle_of("cnn").bundle_dir, "--runs", "2", "--warmup", "0", "--batch-sizes", "2",
                   "--no-torch")
    assert table.exit_code == 0 and "| model | onnxruntime | cpu | 2 |" in table.output
    assert_one_line_error(invoke("bench", bundle_of("cnn").bundle_dir, "--batch-sizes", "x"), "--batch-sizes")


def test_int8_is_dynamic_for_matmul_graphs_and_calibrates_on_random_inputs_when_no_data_is_declared(
    train_briefly, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from zoo_cnn.family import ClassifierFamily

    original = ClassifierFamily.graphs

    def linear_only(self, model, data):  # type: ignore[no-untyped-def]
        graphs = original(self, model, data)
        for graph in graphs:
            graph.module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
            graph.class_output = None
        return graphs

    run_dir = train_briefly("cnn").run_dir
    monkeypatch.setattr(ClassifierFamily, "graphs", linear_only)
    dynamic = export_run(run_dir, out=tmp_path / "a", providers=["cpu"], quantize="int8")
    assert dynamic.manifest["graphs"]["model.int8"]["method"].startswith("dynamic")
    assert dynamic.parity["passed"]

    def no_calibration_data(self, model, data):  # type: ignore[no-untyped-def]
        graphs = original(self, model, data)
        for graph in graphs:
            graph.calibration_inputs = None
        return graphs

    monkeypatch.setattr(ClassifierFamily, "graphs", no_calibration_data)
    static = export_run(run_dir, out=tmp_path / "b", verify=False, quantize="int8")
    assert "calibrated on the graph's random inputs" in static.manifest["graphs"]["model.int8"]["method"]


def test_the_child_process_path_gives_the_same_outputs_as_in_process(bundle_of) -> None:
    """GPU checks run in a child process; exercise that path here with the CPU provider."""
    from zoo import ort

    bundle = bundle_of("cnn").bundle_dir
    path = bundle / "model" / "model.onnx"
    inputs, _ = read_test_set(bundle / "model" / "test_data_set_1")
    feeds = [{"input": inputs[0]}, {"input": inputs[0][:1]}]
    here, facts = ort.run_graph(path, ort.CPU, feeds)
    child, child_facts = ort._run_in_child(path, ort.CPU, feeds, None)
    assert child_facts["providers_in_use"] == facts["providers_in_use"] == [ort.CPU]
    for a, b in zip(here, child, strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    timed = ort._child(path, ort.CPU, feeds[:1], None, {"warmup": 1, "runs": 3, "threads": 1})
    assert len(timed["timings"]) == 3 and all(t > 0 for t in timed["timings"])


def test_torch_outputs_leaves_the_callers_state_as_it_was() -> None:
    """TF32 flags, train mode and the module's device are restored after a reference is computed."""
    import torch

    module = torch.nn.Linear(3, 2).train()
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        torch_outputs(module, (np.ones((1, 3), np.float32),))
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
    assert module.training and module.weight.device.type == "cpu"


def test_the_recorded_weights_hash_is_that_of_the_weights_exported(train_briefly, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A resume rewriting model.safetensors while an export runs: the manifest's hash is of the bytes the graphs
    were made from (it was the file's hash at the end, over the earlier weights)."""
    import hashlib

    import zoo.bundles.bundle as bundle

    run = Path(shutil.copytree(train_briefly("cnn").run_dir, tmp_path / "run"))
    exported = hashlib.sha256((run / "model.safetensors").read_bytes()).hexdigest()
    real = bundle.torch_cases

    def meanwhile(*args: Any, **kwargs: Any) -> Any:
        (run / "model.safetensors").write_bytes((run / "model.safetensors").read_bytes() + b" ")  # rewritten
        return real(*args, **kwargs)

    monkeypatch.setattr(bundle, "torch_cases", meanwhile)
    result = export_run(run, out=tmp_path / "ex", providers=["cpu"], verify=False)
    assert result.manifest["run"]["weights_sha256"] == exported


def test_the_card_of_a_run_stopped_by_max_steps_says_how_far_it_got(tmp_path: Path) -> None:
    """Issue 25: a card of a run stopped by --max-steps 1 said "30 epochs" with an empty metrics section."""
    import zoo

    run = zoo.train("cnn", smoke=True, max_steps=1, progress=False, out=tmp_path / "runs").run_dir
    planned = json.loads((run / "summary.json").read_text())["epochs"]
    result = export_run(run, out=tmp_path / "exports", verify=False)
    card = (Path(result.bundle_dir) / "card.md").read_text()
    assert f"1 step(s) (0 of {planned} epochs; stopped by --max-steps)" in card
    metrics = card.split("## Metrics (validation, last epoch)\n", 1)[1].split("\n## ", 1)[0]
    assert metrics.strip() == "none: the run stopped before its first validation (--max-steps)"
    assert f"{planned} epochs (" not in card
