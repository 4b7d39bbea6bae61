"""Fixed costs (issue 16): cached digits, skipped GPU probes, the shared exporter set-up, variant timing on
request, the loss curve without matplotlib, and figures in the docs that come from committed results."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from zoo import cache, ort
from zoo.bundles.manifest import graph_entry
from zoo.bundles.variant_card import NOT_MEASURED, PURPOSE, variant_text
from zoo.cli import cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cached_arrays_are_built_once_then_read(cache_dir: Path) -> None:
    calls = []

    def build() -> dict[str, np.ndarray]:
        calls.append(1)
        return {"a": np.arange(5)}

    first = cache.cached_arrays("thing", "v1", build)
    second = cache.cached_arrays("thing", "v1", build)
    assert len(calls) == 1 and np.array_equal(first["a"], second["a"])
    assert [p.name for p in cache_dir.iterdir()] == ["thing.npz"], "written atomically: no temporary files left"


def test_a_new_key_rebuilds_the_cache(cache_dir: Path) -> None:
    cache.cached_arrays("thing", "v1", lambda: {"a": np.zeros(2)})
    fresh = cache.cached_arrays("thing", "v2", lambda: {"a": np.ones(2)})
    assert fresh["a"].tolist() == [1, 1]
    assert cache.cached_arrays("thing", "v2", lambda: pytest.fail("rebuilt although current"))["a"].tolist() == [1, 1]


@pytest.mark.parametrize("damage", [b"", b"not a zip at all", None])
def test_a_corrupt_cache_is_rebuilt(cache_dir: Path, damage: bytes | None) -> None:
    cache.cached_arrays("thing", "v1", lambda: {"a": np.arange(1000)})
    path = cache_dir / "thing.npz"
    path.write_bytes(path.read_bytes()[:200] if damage is None else damage)  # None: truncated
    assert cache.cached_arrays("thing", "v1", lambda: {"a": np.arange(3)})["a"].tolist() == [0, 1, 2]
    assert cache.cached_arrays("thing", "v1", lambda: pytest.fail("not stored again"))["a"].tolist() == [0, 1, 2]


def test_digits_come_from_the_cache_without_scikit_learn(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo_digits import loader

    first = loader.load_digits(seed=0, val_fraction=0.2)
    assert first.images.shape == (1797, 1, 8, 8) and first.class_names == [str(i) for i in range(10)]
    monkeypatch.setattr(loader, "_from_sklearn", lambda: pytest.fail("scikit-learn used although cached"))
    again = loader.load_digits(seed=0, val_fraction=0.2)
    assert np.array_equal(again.images, first.images) and np.array_equal(again.labels, first.labels)
    # another scikit-learn version: the arrays are read from it again
    monkeypatch.setattr(loader, "sklearn_version", lambda: "999.0")
    with pytest.raises(pytest.fail.Exception, match="scikit-learn used"):
        loader.load_digits(seed=0, val_fraction=0.2)


def test_gpu_probes_are_skipped_with_the_reason_where_no_driver_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ort.sys, "platform", "linux")
    monkeypatch.setattr(ort.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(ort.os.path, "exists", lambda path: False)

    def no_library(name: str) -> None:
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ort.ctypes, "CDLL", no_library)
    reason = ort.no_gpu_reason()
    assert "no NVIDIA driver" in reason
    monkeypatch.setattr(ort, "_probe", lambda provider: pytest.fail(f"{provider} probed without a driver"))
    ort.usable_providers.cache_clear()
    try:
        usable, skipped = ort.usable_providers()
    finally:
        ort.usable_providers.cache_clear()
    assert usable == (ort.CPU,)
    assert all(reason in why or "has no" in why for why in skipped.values()) and skipped
    monkeypatch.setattr(ort.glob, "glob", lambda pattern: ["/dev/nvidia0"])
    assert ort.no_gpu_reason() == "", "device nodes: the probe decides"


def test_the_exporter_set_up_is_shared_and_gives_the_public_exporters_graph(train_briefly) -> None:
    import onnx
    import torch

    from zoo.bundles import dynamo
    from zoo.runs import load_run

    run = load_run(train_briefly("cnn").run_dir)
    graph = run.family.graphs(run.model, run.data_info)[0]
    example = tuple(torch.from_numpy(a) for a in graph.random_inputs(2, np.random.default_rng(0)))
    shapes = tuple({0: torch.export.Dim("batch")} for _ in example)
    names = {"input_names": list(graph.input_names), "output_names": list(graph.output_names)}
    ours = dynamo.export_program(graph.module.eval(), example, opset=18, dynamic_shapes=shapes, **names)
    dynamo.export_program(graph.module.eval(), example, opset=18, dynamic_shapes=shapes, **names)
    assert dynamo.registry_for.cache_info().misses == 1 and dynamo.registry_for.cache_info().hits >= 1
    public = torch.onnx.export(graph.module.eval(), example, dynamo=True, opset_version=18, verbose=False,
                               dynamic_shapes=shapes, **names)

    def structure(program: object) -> list[str]:
        model = program.model_proto  # type: ignore[attr-defined]
        nodes = [f"{n.op_type} {list(n.input)} {list(n.output)} {n.attribute}" for n in model.graph.node]
        weights = [f"{t.name} {list(t.dims)} {onnx.numpy_helper.to_array(t).tobytes().hex()}"
                   for t in model.graph.initializer]
        values = [(v.name, v.type.tensor_type.elem_type,  # the batch axis named as given, as the public one does
                   [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim])
                  for v in [*model.graph.input, *model.graph.output]]
        return [*nodes, *weights, *map(str, values)]

    assert structure(ours) == structure(public)
    assert ours.model_proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_variant_speed_is_stated_on_the_card_either_way() -> None:
    entries = {name: graph_entry(name, {"file": f"{name}/model.onnx", "variant": variant, "inputs": [], "outputs": []})
               for name, variant in (("model", "fp32"), ("model.int8", "int8"), ("model.fp16", "fp16"))}
    unmeasured = variant_text(entries, None, {"model.int8": None, "model.fp16": None})
    assert unmeasured.count(NOT_MEASURED) == 2 and PURPOSE["int8"] in unmeasured and PURPOSE["fp16"] in unmeasured
    slow = {"batch": 64, "threads": 2, "fp32_ms": 1.0, "variant_ms": 1.25, "speedup": 0.8}
    fast = {**slow, "variant_ms": 0.5, "speedup": 2.0}
    measured = variant_text(entries, None, {"model.int8": fast, "model.fp16": slow})
    assert "2.00× the fp32 speed" in measured and "0.80× the fp32 speed" in measured
    assert measured.count("Slower than fp32 on the machine that measured it") == 1


def test_measure_variants_reaches_the_export(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import zoo.bundles

    seen = {}

    def fake_export_run(run_dir: str, **options: object) -> None:
        seen.update(options)
        raise zoo.errors.ZooError("stop here")

    monkeypatch.setattr(zoo.bundles, "export_run", fake_export_run)
    for flags, expected in (([], False), (["--measure-variants"], True)):
        result = CliRunner().invoke(cli, ["export", str(tmp_path), "--quantize", "int8", *flags])
        assert result.exit_code == 2 and seen["measure_variants"] is expected, result.output


def test_the_loss_curve_is_drawn_without_matplotlib(tmp_path: Path) -> None:
    from PIL import Image

    from zoo.plots import write_loss_curve

    log = tmp_path / "metrics.jsonl"
    log.write_text('{"epoch": 1, "train_loss": 2.0, "val_loss": 2.2}\n{"epoch": 2, "train_loss": 1.0}\n'
                   '{"epoch": 3, "train_loss": NaN, "val_loss": 0.5}\n')
    write_loss_curve(log, tmp_path / "loss_curve.png")
    with Image.open(tmp_path / "loss_curve.png") as image:
        assert image.size == (600, 414) and len(set(image.getdata())) > 3  # one legend row under the plot
    # in a fresh process: other tests' libraries (captum, librosa) import matplotlib into this one
    again = tmp_path / "again.png"
    fresh = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from zoo.plots import "
                            f"write_loss_curve; write_loss_curve(Path({str(log)!r}), Path({str(again)!r}));"
                            " print('matplotlib' in sys.modules)"], capture_output=True, text=True, check=True)
    assert fresh.stdout.strip() == "False"


def test_chart_ticks_are_round_and_the_legend_stays_out_of_the_data() -> None:
    """Ticks were the range split in four (2.18, 1.42, 0.656); legends sat on the lines and were cut off."""
    from PIL import Image, ImageDraw

    from zoo.plots import LEGEND_ROW, MARGIN, legend_rows, line_chart, nice_ticks, tick_label

    ticks = nice_ticks(0.656, 2.31)
    assert ticks == [0.5, 1.0, 1.5, 2.0, 2.5] and [tick_label(t, ticks) for t in ticks] == ["0.5", "1.0", "1.5",
                                                                                            "2.0", "2.5"]
    assert nice_ticks(0.091, 0.13) == [0.09, 0.1, 0.11, 0.12, 0.13]
    assert nice_ticks(0.0, 1.0)[-1] == 1.0 and nice_ticks(3, 97)[0] == 0
    names = {"train_loss": [(1, 2.0), (2, 1.0)], "x" * 200: [(1, 1.5), (2, 1.2)]}
    rows = legend_rows(ImageDraw.Draw(Image.new("RGB", (1, 1))), list(names), 400)
    assert len(rows) == 2 and rows[1][0][2].endswith("...")  # a name too long for a row is shortened, not cut
    image = line_chart("t", names, size=(420, 280))
    assert image.size == (420, 280 + 2 * LEGEND_ROW)
    plot = image.crop((MARGIN[0] + 1, MARGIN[1] + 1, 420 - MARGIN[2] - 1, 280 - MARGIN[3] - 1))
    black = sum(1 for p in plot.getdata() if p == (0, 0, 0))
    assert black == 0, "no legend text inside the plot area"


#: A figure: a number followed by ×/x (a ratio) or by a unit of time or a percent sign.
FIGURE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s?(?:×|x\b|%|\s?ms\b|\s?s\b)")
CITATION = re.compile(r"benchmarks/results/([\w.\-]+)")


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_cited_figure_in_the_docs_is_in_its_results_file() -> None:
    """Numbers on a line (or in a paragraph) that cites `benchmarks/results/X` must appear in X."""
    problems = []
    for doc in doc_files():
        for paragraph in re.split(r"\n\s*\n", doc.read_text()):
            cited = CITATION.findall(paragraph)
            if not cited:
                continue
            texts = []
            for name in cited:
                path = ROOT / "benchmarks" / "results" / name.rstrip(".")
                if not path.is_file():
                    problems.append(f"{doc.name}: cites missing {path.relative_to(ROOT)}")
                    continue
                texts.append(path.read_text())
            results = "\n".join(texts)
            for number in FIGURE.findall(paragraph):
                if not re.search(rf"(?<![\d.]){re.escape(number)}(?![\d])", results):
                    problems.append(f"{doc.name}: {number} is not in {', '.join(cited)}")
    assert not problems, "\n".join(problems)


def test_speed_claims_in_the_docs_cite_a_results_file() -> None:
    """A paragraph claiming a speed-up or slow-down (N× faster/slower) cites the results it comes from."""
    claim = re.compile(r"\d+(?:\.\d+)?\s?[×x]\s+(?:faster|slower|the)", re.IGNORECASE)
    uncited = [f"{doc.name}: {paragraph.strip()[:80]}..." for doc in doc_files()
               for paragraph in re.split(r"\n\s*\n", doc.read_text())
               if claim.search(paragraph) and not CITATION.search(paragraph)]
    assert not uncited, "\n".join(uncited)


def test_the_fp16_card_states_its_rtol_as_a_number() -> None:
    entries = {"model.fp16": graph_entry("model.fp16", {"file": "model.fp16/model.onnx", "variant": "fp16",
                                                        "inputs": [], "outputs": [], "atol": 0.02, "rtol": 0.01})}
    text = variant_text(entries, None, {"model.fp16": None})
    assert "rtol 0.01." in text and "{" not in text
