"""`zoo explain` for models whose family describes their input (`Family.input_space`): keyword spotters
attributed on their log-mel spectrogram (m5 on its STFT), drawn as time-frequency maps, and regressors attributed
per CSV column. Each check is also shown to fail for a deliberately broken attribution or input space."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import zoo
from tests.helpers import assert_one_line_error, make_wav_folder
from tests.test_explain import explain_json, invoke
from zoo.errors import ZooError
from zoo.explain import checks
from zoo.explain.attribute import attribute_space
from zoo.explain.source import open_subject

pytest.importorskip("captum")
torch = pytest.importorskip("torch")

#: Two rows of the diabetes columns (and the target column, which zoo explain ignores as zoo predict does).
CSV = ("age,sex,bmi,bp,s1,s2,s3,s4,s5,s6,progression\n"
       "59,2,32.1,101,157,93.2,38,4,4.8598,87,151\n"
       "48,1,21.6,87,183,103.2,70,3,3.8918,69,75\n")


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """kws-res (width 4) trained for one epoch on a small WAV folder, and its bundle."""
    work = tmp_path_factory.mktemp("explain-audio")
    root = make_wav_folder(work / "wav", speakers=4, takes=1)
    run = zoo.train("kws-res", dataset=f"wav:{root}", epochs=1, batch_size=8, out=work / "runs", progress=False,
                    model_args={"width": 4})
    bundle = zoo.export(run.run_dir, out=work / "exports", providers=["cpu"]).bundle_dir
    return {"root": root, "run": run.run_dir, "bundle": bundle, "wav": sorted(root.glob("yes/*.wav"))[0]}


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """tab-mlp and tab-linear trained briefly on the diabetes set, and a CSV file of two rows."""
    work = tmp_path_factory.mktemp("explain-tables")
    runs = {name: zoo.train(name, epochs=3, out=work / "runs", progress=False).run_dir
            for name in ("tab-mlp", "tab-linear")}
    (work / "rows.csv").write_text(CSV)
    return {**runs, "csv": work / "rows.csv"}


# ---------------------------------------------------------------- audio


def test_kws_res_ig_on_the_log_mel_map_is_complete_and_drawn(audio: dict[str, Path], tmp_path: Path) -> None:
    from PIL import Image

    data = explain_json(audio["run"], "val:0", audio["wav"])
    assert [e["input"] for e in data["explanations"]] == ["val:0", str(audio["wav"])]
    for item in data["explanations"]:
        assert item["kind"] == "audio" and item["shape"] == [40, 51]  # mel bands × frames of one second
        assert np.isfinite(np.asarray(item["attributions"])).all()
        (check,) = item["checks"]
        assert check["name"] == "completeness" and check["passed"], check
        assert 0 <= item["probability"] <= 1 and item["target_name"] in ("no", "yes")
    result = invoke("explain", audio["run"], "val:0", audio["wav"], "--out", tmp_path)
    assert result.exit_code == 0, result.output
    for name in ("val-0-ig.png", f"{audio['wav'].stem}-ig.png"):
        with Image.open(tmp_path / name) as picture:
            assert picture.format == "PNG" and picture.width > 400 and picture.height > 400


def test_audio_files_are_read_as_zoo_predict_reads_them(audio: dict[str, Path]) -> None:
    from zoo_audio.predict import clips

    from zoo.bundles.manifest import Bundle

    subject = open_subject(audio["bundle"])
    info = Bundle.open(audio["bundle"]).manifest.graphs["model"].role_info
    names, raw = subject.samples([str(audio["wav"])])
    assert names == [str(audio["wav"])]
    np.testing.assert_array_equal(raw, clips([str(audio["wav"])], info))
    item = explain_json(audio["bundle"], audio["wav"], "--target", "no")["explanations"][0]
    assert item["target_name"] == "no" and item["checks"][0]["passed"]


@pytest.mark.parametrize("method", ["saliency", "occlusion"])
def test_audio_saliency_and_occlusion(audio: dict[str, Path], method: str) -> None:
    item = explain_json(audio["run"], "val:1", "--method", method)["explanations"][0]
    values = np.asarray(item["attributions"])
    assert values.shape == (40, 51) and np.isfinite(values).all() and np.abs(values).sum() > 0
    assert item["checks"] == []  # completeness is Integrated Gradients' property


def test_audio_sanity_runs_and_gradcam_is_refused(audio: dict[str, Path]) -> None:
    item = explain_json(audio["run"], "val:0", "--method", "saliency", "--sanity")["explanations"][0]
    (check,) = item["checks"]
    assert check["name"] == "randomisation" and -1.0 <= check["value"] <= 1.0
    assert_one_line_error(invoke("explain", audio["run"], "val:0", "--method", "gradcam"),
                          "does not apply to audio inputs", "ig, saliency, occlusion")


def test_audio_checks_fail_for_a_broken_attribution(audio: dict[str, Path]) -> None:
    subject = open_subject(audio["run"])
    space = subject.space
    _, raw = subject.samples(["val:0", "val:1"])
    x = space.represent(torch.from_numpy(raw))
    baseline = space.represent(torch.from_numpy(space.baseline))
    with torch.no_grad():
        out, base = space.forward(x)[:, 0], space.forward(baseline)[0, 0]
    found = attribute_space(space.forward, x, [0, 0], "ig", baseline, space.occlusion, "audio")
    for i in range(2):
        assert checks.completeness(found.values[i], float(out[i]), float(base)).passed
        assert not checks.completeness(found.values[i] * 0.5, float(out[i]), float(base)).passed
    layers = ["head"]
    spectrograms = x.detach().numpy()
    broken = checks.randomisation(spectrograms[0], spectrograms[0], layers)  # the input itself ignores the model
    assert not broken.passed and broken.value == pytest.approx(1.0)
    dead = checks.randomisation(np.zeros((40, 51)), found.values[0], layers)  # a constant map ranks nothing
    assert not dead.passed and "constant" in dead.detail


@pytest.mark.parametrize("name", ["m5", "crnn", "kws-res"])
def test_every_audio_model_has_an_exact_time_frequency_space(name: str) -> None:
    """forward(represent(x)) is the model's own output (m5: through the STFT and back), and IG on it is complete."""
    from zoo_audio.data import audio_info

    from zoo.explain.explainer import explain_space

    torch.manual_seed(0)
    model = zoo.create_model(name, width=4, num_classes=2).eval()
    family = zoo.load_family(zoo.get_spec(name).family)
    space = family.input_space(model, audio_info("t", ["no", "yes"]))
    raw = (np.random.default_rng(0).standard_normal((2, 16000)) * 0.1).astype(np.float32)
    with torch.no_grad():
        direct = model(torch.from_numpy(raw))
        through = space.forward(space.represent(torch.from_numpy(raw)))
    torch.testing.assert_close(through, direct, rtol=1e-4, atol=1e-5)
    found = explain_space(model, family, audio_info("t", ["no", "yes"]), space, raw, ["a", "b"], "ig", None,
                          sanity=False, steps=32)
    assert all(item.checks[0].passed for item in found), [item.checks[0].detail for item in found]
    assert found[0].values.shape == ((2, 241, 101) if name == "m5" else (40, 51))
    assert space.picture(found[0]).startswith(b"\x89PNG")


def test_a_broken_input_space_is_refused(audio: dict[str, Path]) -> None:
    from dataclasses import replace

    from zoo.explain.explainer import explain_space

    subject = open_subject(audio["run"])
    broken = replace(subject.space, forward=lambda x: subject.space.forward(x) + 1.0)
    _, raw = subject.samples(["val:0"])
    with pytest.raises(ZooError, match="does not reproduce the model's outputs"):
        explain_space(subject.model, subject.family, subject.data_info, broken, raw, ["val:0"], "ig", None, False)


def test_a_damaged_wav_is_one_line(audio: dict[str, Path], tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.wav"
    damaged.write_bytes(audio["wav"].read_bytes()[:30])
    assert_one_line_error(invoke("explain", audio["run"], damaged), "damaged.wav")


# ---------------------------------------------------------------- regressors


def test_regressor_ig_per_csv_column_is_complete_against_the_prediction(tables: dict[str, Path],
                                                                        tmp_path: Path) -> None:
    from zoo_tabular.predict import feature_rows

    from zoo.runs import load_run

    data = explain_json(tables["tab-mlp"], tables["csv"], "val:0")
    items = data["explanations"]
    assert [e["input"] for e in items] == ["rows.csv:1", "rows.csv:2", "val:0"]
    run = load_run(tables["tab-mlp"])
    info = run.family.graphs(run.model, run.data_info)[0].role_info
    with torch.no_grad():
        predicted = run.model.eval()(torch.from_numpy(feature_rows(tables["csv"], info))).numpy()[:, 0]
    for item, value in zip(items[:2], predicted, strict=True):
        assert item["probability"] is None and item["target_name"] == "progression"
        assert item["output"] == pytest.approx(float(value), rel=1e-5)
        assert item["features"] == ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
        (check,) = item["checks"]
        assert check["name"] == "completeness" and check["passed"], check
    assert items[0]["feature_values"] == pytest.approx([59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87])
    result = invoke("explain", tables["tab-mlp"], tables["csv"], "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "bmi" in result.output and "completeness: passed" in result.output
    assert {p.name for p in tmp_path.iterdir()} == {"rows-1-ig.png", "rows-2-ig.png"}


def test_linear_regressor_attributions_are_the_weights_times_the_standardised_features(
        tables: dict[str, Path]) -> None:
    from zoo.runs import load_run

    run = load_run(tables["tab-linear"])
    subject = open_subject(tables["tab-linear"])
    _, rows = subject.samples(["val:3"])
    expected = rows[0] * run.model.body.weight.detach().numpy()[0] * float(run.model.target_std[0])
    for method in ("ig", "occlusion"):  # both exact for a linear model from the mean row
        item = explain_json(tables["tab-linear"], "val:3", "--method", method)["explanations"][0]
        np.testing.assert_allclose(item["attributions"], expected, rtol=1e-4, atol=1e-4)


def test_regressor_refuses_target_and_checks_can_fail(tables: dict[str, Path], tmp_path: Path) -> None:
    assert_one_line_error(invoke("explain", tables["tab-mlp"], "val:0", "--target", "1"),
                          "--target", "not classes", "progression")
    item = explain_json(tables["tab-mlp"], "val:0", "--method", "saliency", "--sanity")["explanations"][0]
    (check,) = item["checks"]
    assert check["name"] == "randomisation" and -1.0 <= check["value"] <= 1.0
    ig = explain_json(tables["tab-mlp"], "val:0")["explanations"][0]
    values = np.asarray(ig["attributions"])
    total = float(values.sum())
    assert checks.completeness(values, total, 0.0).passed
    assert not checks.completeness(values * 0.5, total, 0.0).passed
    assert not checks.randomisation(values, values * 2.0, ["body.4"]).passed  # unchanged ranks: caught
    (tmp_path / "bad.csv").write_text("age,sex\n1,2\n")
    assert_one_line_error(invoke("explain", tables["tab-mlp"], tmp_path / "bad.csv"), "bad.csv", "bmi")


def test_audio_report_shows_time_frequency_attributions(audio: dict[str, Path], tmp_path: Path) -> None:
    from zoo.reports.report import write_report

    page = write_report(audio["run"], tmp_path / "report.html").read_text()
    assert "Attributions (Integrated Gradients)" in page
    section = page.split("Attributions (Integrated Gradients)", 1)[1]
    assert "Not available" not in section[:400] and "completeness error" in section
    assert "FAILED" not in section and section.count("data:image/png") >= 2


def test_regressor_bundle_explains_what_the_deployed_graph_reads(tables: dict[str, Path], tmp_path: Path) -> None:
    bundle = zoo.export(tables["tab-linear"], out=tmp_path / "exports", providers=["cpu"]).bundle_dir
    from_bundle = explain_json(bundle, tables["csv"])["explanations"]
    from_run = explain_json(tables["tab-linear"], tables["csv"])["explanations"]
    assert [e["input"] for e in from_bundle] == ["rows.csv:1", "rows.csv:2"]
    for a, b in zip(from_bundle, from_run, strict=True):
        np.testing.assert_allclose(a["attributions"], b["attributions"], rtol=1e-6)
        assert a["checks"][0]["passed"]
