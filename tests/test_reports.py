"""`zoo runs`, `zoo report` (opened in headless Chromium) and `--log mlflow`, driven as people use them."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import zoo
from tests.helpers import assert_one_line_error
from zoo.cli import cli


def chromium_binary() -> str:
    """Debian's chromium; installed here (as root, with apt) when it is missing, as scripts/setup.sh --test does."""
    found = shutil.which("chromium")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, check=False)
        found = shutil.which("chromium")
    if found is None:
        pytest.fail("the HTML report tests need Debian's chromium: apt-get install -y chromium")
    return found


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``render(path, fragment="")``: the page's DOM after its script ran, as headless Chromium dumps it."""
    binary = chromium_binary()
    profile = tmp_path_factory.mktemp("chromium-profile")

    def render(page: Path, fragment: str = "") -> Page:
        proc = subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                               f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri() + fragment],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        dom = Page()
        dom.feed(proc.stdout)
        assert dom.body.get("data-ready") == "1", "the page's script did not run"
        return dom

    return render


class Page(HTMLParser):
    """What a test reads back from a rendered page: body attributes, headings, images, tables."""

    def __init__(self) -> None:
        super().__init__()
        self.body: dict[str, str] = {}
        self.headings: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.tables: list[dict[str, Any]] = []
        self._text: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = values
        elif tag == "h2" or tag in ("td", "th"):
            self._text = []
        elif tag == "img":
            self.images.append(values.get("src", ""))
        elif tag in ("link", "script") and (values.get("href") or values.get("src")):
            self.links.append(values.get("href") or values.get("src", ""))
        elif tag == "table":
            self.tables.append({"attrs": values, "head": [], "rows": []})
        elif tag == "tr":
            self._row = []

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2" and self._text is not None:
            self.headings.append("".join(self._text).strip())
            self._text = None
        elif tag in ("td", "th") and self._text is not None and self._row is not None:
            self._row.append("".join(self._text).strip())
            self._text = None
        elif tag == "tr" and self._row is not None and self.tables:
            table = self.tables[-1]
            if not table["head"]:
                table["head"] = self._row
            else:
                table["rows"].append(self._row)
            self._row = None

    def table_with(self, column: str) -> dict[str, Any]:
        return next(t for t in self.tables if column in t["head"])


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def copy_run(run_dir: Path, root: Path, name: str | None = None) -> Path:
    return Path(shutil.copytree(run_dir, root / (name or run_dir.name)))


@pytest.fixture(scope="module")
def cnn_runs(train_briefly: Any, export_briefly: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One trained CNN run (shared with the suite) and a copy of its bundle timed by `zoo bench --save`, plus a
    second smoke run with another lr."""
    run_dir = train_briefly("cnn").run_dir
    exports = tmp_path_factory.mktemp("report-exports")
    bundle = Path(shutil.copytree(export_briefly("cnn").bundle_dir, exports / run_dir.name))
    benched = invoke("bench", str(bundle), "--batch-sizes", "1,64", "--runs", "3", "--warmup", "1", "--no-torch",
                     "--providers", "cpu", "--save", "--json")
    assert benched.exit_code == 0, benched.output
    root = tmp_path_factory.mktemp("report-runs")
    other = zoo.train("cnn", smoke=True, lr=0.05, out=root, progress=False).run_dir
    return {"run": copy_run(run_dir, root), "other": other, "bundle": bundle, "root": root, "exports": exports}


# --- zoo runs -------------------------------------------------------------------------------------

def test_runs_lists_finished_stopped_failed_and_garbage_runs(cnn_runs: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "runs"
    finished = copy_run(cnn_runs["run"], root)
    stopped = copy_run(finished, root, "cnn-stopped")  # what an interrupted run leaves: checkpoints, no summary
    (stopped / "summary.json").unlink()
    (stopped / "model.safetensors").unlink()
    failed = root / "cnn-failed"  # died before its first checkpoint
    failed.mkdir()
    shutil.copy(finished / "config.json", failed / "config.json")
    for name, files in {"garbage-config": {"config.json": "{not json"},
                        "torn-checkpoint": {"config.json": "{}", "checkpoints/last.safetensors": "\x05"},
                        "garbage-metrics": {"config.json": "{}", "metrics.jsonl": "[1]\n{}\n"},
                        "empty": {}}.items():
        for relative, text in files.items():
            (root / name / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / name / relative).write_text(text)
        (root / name).mkdir(exist_ok=True)
    (root / "notes.txt").write_text("not a run")

    result = invoke("runs", "--root", str(root), "--exports", str(cnn_runs["exports"]), "--json")
    assert result.exit_code == 0, result.output
    rows = {row["run"]: row for row in json.loads(result.output)}
    assert set(rows) == {finished.name, "cnn-stopped", "cnn-failed", "garbage-config", "torn-checkpoint",
                         "garbage-metrics", "empty"}
    done = rows[finished.name]
    summary = json.loads((finished / "summary.json").read_text())
    assert done["status"] == "finished" and done["model"] == "cnn" and done["family"] == "classifier"
    assert done["monitor"] == "val_accuracy" and done["value"] == summary["metrics"]["val_accuracy"]
    assert done["steps"] == summary["steps"] and done["seconds"] == summary["seconds"]
    import safetensors.torch

    weights = safetensors.torch.load_file(str(finished / "model.safetensors"))
    assert done["params"] == sum(t.numel() for t in weights.values())
    assert done["exports"] == [{"bundle": str(cnn_runs["bundle"]), "verified": True}]
    assert rows["cnn-stopped"]["status"] == "stopped" and rows["cnn-stopped"]["steps"] == summary["steps"]
    assert f"zoo train --resume {stopped}" in rows["cnn-stopped"]["detail"]
    assert rows["cnn-stopped"]["params"] == done["params"] and rows["cnn-stopped"]["exports"] == []
    assert rows["cnn-failed"]["status"] == "failed"
    for broken in ("garbage-config", "torn-checkpoint", "garbage-metrics", "empty"):
        assert rows[broken]["status"] == "unreadable", rows[broken]

    table = invoke("runs", "--root", str(root), "--exports", str(cnn_runs["exports"]))
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split()[:4] == ["RUN", "MODEL", "PLUGIN", "FAMILY"]
    assert rows["cnn-stopped"]["plugin"] == "cnn"
    assert f"stopped@{summary['steps']} (resumable)" in table.output and "(verified)" in table.output
    assert any(line.startswith("garbage-config: unreadable: JSONDecodeError") for line in lines)
    only = json.loads(invoke("runs", "cnn-*", "--root", str(root), "--json").output)
    assert {row["run"] for row in only} == {finished.name, "cnn-stopped", "cnn-failed"}

    out = tmp_path / "stopped.html"  # a stopped run still gets its report; model sections say why they are missing
    assert invoke("report", str(stopped), "--out", str(out)).exit_code == 0
    page = out.read_text()
    assert "<h2>Metric curves</h2>" in page and "has no trained weights (the run did not finish)" in page
    assert_one_line_error(invoke("report", str(root / "garbage-config")), "is not a readable run folder")


def test_runs_sort_and_listing_never_import_torch(cnn_runs: dict[str, Path]) -> None:
    root = str(cnn_runs["root"])
    by_loss = json.loads(invoke("runs", "--root", root, "--sort", "val_loss", "--json").output)
    losses = [row["metrics"]["val_loss"] for row in by_loss]
    assert len(losses) == 2 and losses == sorted(losses)
    by_accuracy = json.loads(invoke("runs", "--root", root, "--sort", "val_accuracy", "--json").output)
    accuracies = [row["metrics"]["val_accuracy"] for row in by_accuracy]
    assert accuracies == sorted(accuracies, reverse=True)
    by_value = json.loads(invoke("runs", "--root", root, "--sort", "value", "--json").output)
    assert [row["value"] for row in by_value] == accuracies, "the monitored metric, best (highest accuracy) first"
    assert_one_line_error(invoke("runs", "--root", root, "--sort", "bogus"), "no run has metric 'bogus'", "val_loss")
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "zoo", "runs", "--root", root],
                          capture_output=True, text=True, check=True)
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "cnn" in proc.stdout and "torch" not in imported


def test_compare_marks_differing_options_and_plots_the_curves(cnn_runs: dict[str, Path], tmp_path: Path) -> None:
    from PIL import Image

    plot = tmp_path / "curves.png"
    args = ["runs", "--root", str(cnn_runs["root"]), "--compare", cnn_runs["run"].name, str(cnn_runs["other"]),
            "--plot", str(plot)]
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    options = {row["name"]: row for row in data["options"]}
    assert options["hyperparameters.lr"]["differs"] and options["hyperparameters.lr"]["values"][1] == 0.05
    assert options["options.smoke"]["differs"] and not options["model"]["differs"]
    assert {row["name"] for row in data["metrics"]} >= {"val_accuracy", "val_loss", "params", "status"}
    assert data["plot"] == str(plot) and Image.open(plot).size[0] > 400
    text = invoke(*args).output
    lr_line = next(line for line in text.splitlines() if "hyperparameters.lr" in line)
    model_line = next(line for line in text.splitlines() if line.split()[0:2] == ["model", "cnn"])
    assert lr_line.startswith("*") and not model_line.startswith("*")
    assert_one_line_error(invoke("runs", "--compare", "nope", "--root", str(tmp_path)), "run 'nope' not found")
    assert_one_line_error(invoke("runs", "--compare", str(cnn_runs["run"])), "at least two runs")


# --- zoo report -----------------------------------------------------------------------------------

def test_report_of_a_run_renders_every_section_in_chromium(cnn_runs: dict[str, Path], browser: Any,
                                                           tmp_path: Path) -> None:
    bundle = cnn_runs["bundle"]
    assert json.loads((bundle / "bench.json").read_text())["rows"], "zoo bench --save keeps its results"
    out = tmp_path / "run.html"
    result = invoke("report", str(cnn_runs["run"]), "--out", str(out), "--exports", str(bundle.parent))
    assert result.exit_code == 0, result.output
    page = browser(out)
    assert page.headings[:5] == ["Overview", "Options", "Metric curves", "Confusion matrix",
                                 "Worst-classified validation images"]
    assert {f"Parity: {bundle.name}", f"Speed: {bundle.name}", "Model card"} <= set(page.headings)
    logged = {k for row in map(json.loads, (cnn_runs["run"] / "metrics.jsonl").read_text().splitlines()) for k in row}
    curves = 1 + len(logged - {"epoch", "step", "train_loss", "val_loss", "skipped_steps"})  # losses share a chart
    assert "Attributions (Integrated Gradients)" in page.headings
    overlays = 8  # IG of the 4 worst-classified and 4 confident validation images (zoo/explain/report.py)
    assert len(page.images) == curves + 1 + overlays and int(page.body["data-images"]) == len(page.images), \
        "every image decodes"
    assert all(src.startswith("data:image/png;base64,") for src in page.images) and not page.links, "self-contained"
    confusion = page.table_with("true \\ predicted")
    assert len(confusion["rows"]) == 10 and sum(int(c) for row in confusion["rows"] for c in row[1:]) > 0
    parity = page.table_with("provider")
    assert parity["rows"][0][:3] == ["model", "CPU", "yes"]
    speed = page.table_with("p50 ms")
    assert {row[3] for row in speed["rows"]} == {"1", "64"}
    options = {row[0]: row[1] for row in page.table_with("option")["rows"]}
    assert options["model"] == "cnn" and options["hyperparameters.lr"] == "0.02"

    from_bundle = tmp_path / "bundle.html"
    assert invoke("report", str(bundle), "--out", str(from_bundle)).exit_code == 0
    assert "Confusion matrix" in browser(from_bundle).headings, "a bundle's report finds its run"
    assert_one_line_error(invoke("report", str(tmp_path / "nowhere")), "is not a folder")
    assert_one_line_error(invoke("report"), "name a run folder or a bundle")


@pytest.mark.parametrize(("name", "sections"), [("gan", ["Samples over epochs"]),
                                                ("vae", ["Samples over epochs", "Reconstructions over epochs"])])
def test_generative_reports_show_their_grids(name: str, sections: list[str], train_briefly: Any, browser: Any,
                                             tmp_path: Path) -> None:
    run_dir = train_briefly(name).run_dir
    out = tmp_path / f"{name}.html"
    assert invoke("report", str(run_dir), "--out", str(out), "--exports", str(tmp_path)).exit_code == 0
    page = browser(out)
    for section in sections:
        assert section in page.headings
    grids = len(list((run_dir / "samples").glob("*.png")))
    assert grids >= 1 and int(page.body["data-images"]) == len(page.images) >= 2 + grids * len(sections)


def test_a_failing_family_section_does_not_cost_the_report() -> None:
    from zoo.reports.report import family_sections
    from zoo.reports.sources import RunRecord

    missing = family_sections(RunRecord(Path("x"), "finished", config={"model": "no-such-model", "family": "f"}))
    assert len(missing) == 1 and missing[0].text.startswith("Not available: ")


def test_variants_show_accuracy_against_fp32_and_speed_from_the_saved_bench(tmp_path: Path) -> None:
    from zoo.reports.report import variant_table
    from zoo.reports.sources import read_bundle

    entry = {"file": "model/model.onnx", "variant": "fp32", "source_graph": "model",
             "inputs": [{"name": "input", "shape": ["batch", 1, 8, 8], "dtype": "float32"}],
             "outputs": [{"name": "logits", "shape": ["batch", 10], "dtype": "float32"}]}
    manifest = {"format": 2, "model": "cnn", "family": "classifier", "plugin": "zoo_cnn",
                "files": {"model/model.onnx": "0" * 64, "model.int8/model.onnx": "0" * 64},
                "graphs": {"model": entry, "model.int8": {**entry, "file": "model.int8/model.onnx", "variant": "int8",
                                                          "method": "static QDQ"}}}
    cpu = {"passed": True, "accuracy": 0.95, "reference_accuracy": 0.96, "accuracy_drop": 0.01}
    bench = {"rows": [{"graph": g, "engine": "onnxruntime", "provider": "cpu", "batch": 1, "p50_ms": ms}
                      for g, ms in (("model", 0.4), ("model.int8", 0.2))]}
    for name, data in (("manifest.json", manifest), ("bench.json", bench),
                       ("parity.json", {"passed": True, "graphs": {"model.int8": {"CPUExecutionProvider": cpu}}})):
        (tmp_path / name).write_text(json.dumps(data))
    table = variant_table(read_bundle(tmp_path))
    assert table is not None and [row[:7] for row in table.rows] == [
        ["model.int8", "int8", "static QDQ", 0.95, 0.96, 0.01, True]]
    assert table.rows[0][7:] == [0.2, 2.0], "p50 at batch 1 and the speed-up against fp32"


def test_the_parity_table_says_which_sets_were_judged(tmp_path: Path) -> None:
    """An int8 graph missing random sets by 3.75 (shown, not judged) beside atol 0.5 must not read as a pass on
    3.75: the table's maximum counts judged sets only and says how many of them there were."""
    from zoo.reports.report import parity_tables
    from zoo.reports.sources import read_bundle

    entry = {"file": "model.int8/model.onnx", "variant": "int8", "source_graph": "model",
             "inputs": [{"name": "input", "shape": ["batch", 1, 8, 8], "dtype": "float32"}],
             "outputs": [{"name": "logits", "shape": ["batch", 10], "dtype": "float32"}]}
    manifest = {"format": 2, "model": "cnn", "family": "classifier", "plugin": "zoo_cnn",
                "files": {"model.int8/model.onnx": "0" * 64}, "graphs": {"model.int8": entry}}
    checks = [{"inputs": name, "output": "logits", "passed": ok, "judged": judged, "max_abs_diff": diff,
               "max_rel_diff": diff} for name, ok, judged, diff in (("random-batch1", False, False, 3.75),
                                                                    ("random-batch16", False, False, 2.5),
                                                                    ("real-batch64", True, True, 0.25))]
    cpu = {"passed": True, "max_abs_diff": 3.75, "max_rel_diff": 3.75, "atol": 0.5, "rtol": 0.1, "checks": checks}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "parity.json").write_text(json.dumps({"passed": True, "graphs": {"model.int8": {
        "CPUExecutionProvider": cpu}}}))
    (table,) = parity_tables(read_bundle(tmp_path))
    row = dict(zip(table.columns, table.rows[0], strict=True))
    assert row["max abs diff"] == 0.25 and row["judged sets"] == "1 of 3 (the rest not judged)"


def test_broken_bundles_are_listed_as_unreadable_never_a_crash(tmp_path: Path) -> None:
    from zoo.reports.leaderboard import leaderboard
    from zoo.reports.sources import read_bundle

    exports = tmp_path / "exports"
    cases = {"garbage": "{not json", "old-format": json.dumps({"format": 1, "graphs": {}}),
             "no-graphs": json.dumps({"format": 2, "files": {"a": "0"}, "graphs": {}})}
    for name, manifest in cases.items():
        (exports / name).mkdir(parents=True)
        (exports / name / "manifest.json").write_text(manifest)
    for name in cases:
        record = read_bundle(exports / name)
        assert record.error and record.manifest is None and record.parity_passed is None, name
    assert "format 1" in read_bundle(exports / "old-format").error
    rows = leaderboard(tmp_path / "runs", exports).rows
    assert sorted(row[8] for row in rows) == sorted(cases) and all(row[9] == "unreadable" for row in rows)
    assert_one_line_error(invoke("report", str(exports / "garbage")), "cannot be read")


def test_leaderboard_groups_by_metric_ranks_full_runs_and_keeps_smoke_runs_apart(tmp_path: Path) -> None:
    """Accuracy, NELBO and loss are never sorted in one column: rows group by metric, ranked best first in the
    metric's own sense; smoke runs follow their metric's full runs, unranked."""
    from zoo.reports.leaderboard import leaderboard

    root = tmp_path / "runs"
    for name, family, monitor, value, smoke in (("acc-lo", "classifier", "val_accuracy", 0.5, False),
                                                ("acc-hi", "classifier", "val_accuracy", 0.9, False),
                                                ("acc-smoke", "classifier", "val_accuracy", 0.99, True),
                                                ("nelbo-hi", "vae", "val_nelbo", 90.0, False),
                                                ("nelbo-lo", "vae", "val_nelbo", 40.0, False)):
        run = root / name
        run.mkdir(parents=True)
        (run / "config.json").write_text(json.dumps({"model": name, "family": family, "dataset": "digits",
                                                     "options": {"smoke": smoke}}))
        (run / "summary.json").write_text(json.dumps({"epochs": 2, "steps": 6, "monitor": monitor,
                                                      "metrics": {monitor: value}}))
        header = b"{}"
        (run / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    table = leaderboard(root, tmp_path / "exports")
    head = list(table.columns)
    rows = [(r[head.index("run")], r[head.index("kind")], r[head.index("rank")]) for r in table.rows]
    assert rows == [("acc-hi", "full", 1), ("acc-lo", "full", 2), ("acc-smoke", "smoke", None),
                    ("nelbo-lo", "full", 1), ("nelbo-hi", "full", 2)]
    assert len(set(table.groups)) == 3  # accuracy (full), accuracy (smoke), NELBO


def test_leaderboard_sorts_in_the_page_and_writes_csv(cnn_runs: dict[str, Path], browser: Any,
                                                      tmp_path: Path) -> None:
    out, table = tmp_path / "board.html", tmp_path / "board.csv"
    result = invoke("report", "--leaderboard", "--root", str(cnn_runs["root"]), "--exports",
                    str(cnn_runs["exports"]), "--out", str(out), "--csv", str(table))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(table.open()))
    ours = next(r for r in rows if r["run"] == cnn_runs["run"].name)
    assert ours["parity"] == "passed" and ours["metric"] == "val_accuracy" and int(ours["params"]) > 0
    assert float(ours["cpu ms b1"]) > 0 and float(ours["cpu ms b64"]) > 0, "latency from the saved bench"
    assert next(r for r in rows if r["run"] == cnn_runs["other"].name)["parity"] == "not exported"
    for column, direction in (("value", "asc"), ("value", "desc"), ("run", "desc")):
        page = browser(out, f"#sort={column}:{direction}")
        board = page.table_with("value")
        assert board["attrs"]["data-sorted"] == f"{column}:{direction}"
        index, kind = board["head"].index(column), board["head"].index("kind")
        kinds = [row[kind] for row in board["rows"]]
        assert kinds == sorted(kinds, key=["full", "smoke", "bundle only"].index), "full runs first, then smoke"
        for group in ("full", "smoke"):  # sorted within each group (here one metric: full and smoke runs)
            cells = [row[index] for row in board["rows"] if row[index] != "-" and row[kind] == group]
            keys = [float(c) for c in cells] if column == "value" else cells
            assert keys == sorted(keys, reverse=direction == "desc")
        assert len([row for row in board["rows"] if row[index] != "-"]) >= 2


# --- --log mlflow ---------------------------------------------------------------------------------

def test_mlflow_run_reads_back_with_the_metrics_of_metrics_jsonl(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    run_dir = zoo.train("cnn", smoke=True, log="mlflow", out=tmp_path / "runs", progress=False).run_dir
    uri = (tmp_path / "mlruns").as_uri()  # the default store: ./mlruns
    mlflow.set_tracking_uri(uri)
    found = mlflow.search_runs(experiment_names=["zoo"], output_format="list")
    assert len(found) == 1 and found[0].info.status == "FINISHED" and found[0].info.run_name == run_dir.name
    logged = found[0]
    assert logged.data.params["hyperparameters.lr"] == "0.02" and logged.data.params["model"] == "cnn"
    client = mlflow.MlflowClient(uri)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    keys = {k for row in rows for k in row} - {"step"}
    assert set(logged.data.metrics) == keys
    for key in keys:
        history = {(m.step, m.value) for m in client.get_metric_history(logged.info.run_id, key)}
        assert history == {(row["step"], float(row[key])) for row in rows if key in row}, key
    artefacts = {a.path for a in client.list_artifacts(logged.info.run_id)}
    assert {"config.json", "metrics.jsonl", "summary.json", "loss_curve.png", "model.safetensors"} <= artefacts


def test_mlflow_respects_the_tracking_uri_and_a_missing_install_is_one_line(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "elsewhere"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    result = invoke("train", "cnn", "--smoke", "--log", "mlflow", "--out", "runs", "--json")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "mlruns").exists()
    mlflow.set_tracking_uri(store.as_uri())
    assert len(mlflow.search_runs(experiment_names=["zoo"], output_format="list")) == 1
    assert_one_line_error(invoke("train", "cnn", "--log", "wandb", "--out", "runs2"), "--log 'wandb'", "mlflow")
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    assert_one_line_error(invoke("train", "cnn", "--log", "mlflow", "--out", "runs3"), "pip install 'plugzoo[mlflow]'")
    assert not (tmp_path / "runs2").exists() and not (tmp_path / "runs3").exists(), "no run folder is made"


def test_a_resumed_run_goes_on_logging_into_the_same_mlflow_run(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # zoo sets it for its default store; restored after
    run_dir = zoo.train("cnn", smoke=True, max_steps=2, log="mlflow", out="runs", progress=False).run_dir
    zoo.train(resume=run_dir, progress=False)
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    (only,) = mlflow.search_runs(experiment_names=["zoo"], output_format="list")
    assert only.info.status == "FINISHED"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    history = mlflow.MlflowClient().get_metric_history(only.info.run_id, "val_loss")
    assert sorted((m.step, m.value) for m in history) == [(r["step"], r["val_loss"]) for r in rows]


def test_leaderboard_clicks_keep_the_address_and_a_reload_keeps_the_order(cnn_runs: dict[str, Path],
                                                                            tmp_path: Path) -> None:
    """Real clicks in headless Chromium (the DevTools protocol): opened with #sort=value:asc, a click on "run"
    writes #sort=run:asc into the address (it kept the stale value:asc before), a second click run:desc, and a
    reload of that address sorts by run, descending, again."""
    from tests.chromium_cdp import Browser

    out = tmp_path / "board.html"
    result = invoke("report", "--leaderboard", "--root", str(cnn_runs["root"]), "--exports",
                    str(cnn_runs["exports"]), "--out", str(out))
    assert result.exit_code == 0, result.output
    table = "document.querySelector('table.sortable')"
    header = (f"Array.prototype.find.call({table}.tHead.rows[0].cells,"
              "function(c){return c.textContent.trim()==='run';})")
    column = (f"(function(t){{var i=Array.prototype.map.call(t.tHead.rows[0].cells,function(c){{"
              f"return c.textContent.trim();}}).indexOf('run');return Array.prototype.map.call(t.tBodies[0].rows,"
              f"function(r){{return [r.getAttribute('data-group')||'',r.cells[i].textContent.trim()];}});}})({table})")
    browser = Browser(chromium_binary(), tmp_path / "profile", out.resolve().as_uri() + "#sort=value:asc")
    try:
        browser.wait_until("document.body && document.body.getAttribute('data-ready')==='1'")
        assert browser.evaluate(f"{table}.getAttribute('data-sorted')") == "value:asc"
        for direction in ("asc", "desc"):
            browser.click(header)
            assert browser.evaluate("location.hash") == f"#sort=run:{direction}"
            assert browser.evaluate(f"{table}.getAttribute('data-sorted')") == f"run:{direction}"
        clicked = browser.evaluate(column)
        groups = [group for group, _ in clicked]
        assert groups == sorted(groups) and len(clicked) >= 2
        for group in set(groups):  # sorted within each group of rows (one metric here: full and smoke runs)
            names = [name for g, name in clicked if g == group]
            assert names == sorted(names, reverse=True)
        browser.reload()
        browser.wait_until("document.body && document.body.getAttribute('data-ready')==='1'")
        assert browser.evaluate("location.hash") == "#sort=run:desc"
        assert browser.evaluate(f"{table}.getAttribute('data-sorted')") == "run:desc"
        assert browser.evaluate(column) == clicked
    finally:
        browser.close()


def test_reports_and_the_card_say_where_the_best_epoch_was_and_which_weights_a_bundle_holds(
        cnn_runs: dict[str, Path], tmp_path: Path) -> None:
    """Issue 25: the best epoch was never shown, nor which checkpoint a bundle came from. The run's report names
    the best epoch and its checkpoint; the bundle's report and card say the graphs hold the final weights (with
    their hash), not the best checkpoint."""
    import html

    summary = json.loads((cnn_runs["run"] / "summary.json").read_text())
    best = summary["best"]
    out = tmp_path / "run.html"
    assert invoke("report", str(cnn_runs["run"]), "--out", str(out)).exit_code == 0
    text = html.unescape(out.read_text())
    assert f"Best val_accuracy {best['val_accuracy']:.4g} at epoch {best['epoch']} (checkpoints/best.safetensors)" \
        in text
    assert "a bundle holds the final weights (model.safetensors), not the best checkpoint" in text
    bundle = cnn_runs["bundle"]
    manifest = json.loads((bundle / "manifest.json").read_text())
    digest = manifest["run"]["weights_sha256"]
    from_bundle = tmp_path / "bundle.html"
    assert invoke("report", str(bundle), "--out", str(from_bundle)).exit_code == 0
    assert f"model.safetensors (sha256 {digest[:16]}…), not its best checkpoint" in html.unescape(
        from_bundle.read_text())
    card = (bundle / "card.md").read_text()
    assert f"sha256 `{digest}`" in card and f"was at epoch {best['epoch']}" in card and "not what is exported" in card
