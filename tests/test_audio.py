"""The audio plugin: WAV decoding and resampling, the wav:DIR and spoken-digits data sets, the in-graph log-mel
front end against librosa, augmentation, and a keyword spotter trained, exported, verified and used."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli
from zoo.data.readers import DataError

from .helpers import assert_one_line_error, make_wav_folder, write_wav
from .test_deploy import _page_result, chromium, node_modules, serve  # noqa: F401 - the deploy tests' fixtures

# ---------------------------------------------------------------- WAV files


def test_every_pcm_format_decodes_to_the_same_mono_samples(tmp_path: Path) -> None:
    from scipy.signal import resample_poly
    from zoo_audio.wav import read_clip

    t = np.arange(8000) / 8000
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    for rate in (8000, 44100):
        source = resample_poly(tone, rate, 8000) if rate != 8000 else tone
        expected = resample_poly(source.astype(np.float32).astype(np.float64), 16000, rate)[:16000]
        for fmt, tolerance in (("int16", 1e-4), ("float32", 1e-6), ("int32", 1e-6), ("uint8", 2e-2)):
            mono = read_clip(write_wav(tmp_path / f"{rate}-{fmt}.wav", source, rate, fmt), 16000, 16000)
            assert mono.dtype == np.float32 and mono.shape == (16000,)
            np.testing.assert_allclose(mono[: len(expected)], expected, atol=tolerance)
            assert not mono[len(expected):].any()  # a shorter clip is padded with zeros at the end
        stereo = np.stack([source, np.zeros_like(source)], axis=1)  # channels are averaged
        mixed = read_clip(write_wav(tmp_path / f"{rate}-stereo.wav", stereo, rate, "float32"), 16000, 16000)
        np.testing.assert_allclose(mixed[: len(expected)], expected / 2, atol=1e-6)


def test_longer_clips_keep_their_first_second(tmp_path: Path) -> None:
    from zoo_audio.wav import read_clip

    ramp = np.linspace(-1, 1, 32000)
    assert np.allclose(read_clip(write_wav(tmp_path / "long.wav", ramp, 16000, "float32"), 16000, 16000),
                       ramp[:16000])


@pytest.mark.parametrize("damage", ["empty", "truncated", "text", "no samples", "missing"])
def test_a_damaged_wav_file_is_one_error_naming_it(tmp_path: Path, damage: str) -> None:
    from zoo_audio.wav import read_clip

    path = tmp_path / "clip.wav"
    good = write_wav(tmp_path / "good.wav", np.zeros(1600), 16000).read_bytes()
    contents = {"empty": b"", "truncated": good[:30], "text": b"hello, not audio at all",
                "no samples": good[:44], "missing": None}[damage]
    if contents is not None:
        path.write_bytes(contents)
    with pytest.raises(DataError) as error:
        read_clip(path, 16000, 16000)
    message = str(error.value)
    assert str(path) in message and "\n" not in message


def test_a_damaged_file_in_a_wav_folder_stops_training_in_one_line(tmp_path: Path) -> None:
    root = make_wav_folder(tmp_path / "wav", speakers=3, takes=1)
    bad = root / "yes" / "spk09_nohash_0.wav"
    bad.write_bytes(b"RIFF\x00\x00")
    result = CliRunner().invoke(cli, ["train", "m5", "--data", f"wav:{root}", "--smoke", "--out", str(tmp_path)])
    assert_one_line_error(result, str(bad))
    assert not list(tmp_path.glob("m5-*"))  # no run folder for data that cannot be read


# ---------------------------------------------------------------- data sets


def test_wav_folder_in_the_speech_commands_layout_splits_by_speaker(tmp_path: Path) -> None:
    from zoo_audio.data import load_wav_folder, speaker_of, wav_files

    root = make_wav_folder(tmp_path / "wav", speakers=5, takes=2)
    files, _, classes = wav_files(root)
    assert classes == ["no", "yes"]  # _background_noise_ is not a class
    splits = load_wav_folder(str(root), seed=3, val_fraction=0.2)
    assert splits.info.kind == "audio" and splits.info.audio.num_samples == 16000 and splits.info.class_names == classes
    assert splits.x_train.dtype == np.float32 and splits.x_train.shape[1:] == (16000,)
    assert len(splits.x_train) + len(splits.x_val) == len(files) == 20
    val = load_wav_folder(str(root), seed=3, val_fraction=0.2).x_val
    assert np.array_equal(val, splits.x_val)  # the same split for the same seed
    speakers = {speaker_of(f) for f in files}
    assert len(speakers) == 5 and len(splits.x_val) == 4  # one speaker of five, both words, two takes


def test_wav_folder_needs_two_class_folders(tmp_path: Path) -> None:
    write_wav(tmp_path / "only" / "a.wav", np.zeros(100), 16000)
    result = CliRunner().invoke(cli, ["train", "m5", "--data", f"wav:{tmp_path}", "--smoke"])
    assert_one_line_error(result, "class folder", str(tmp_path))


@pytest.fixture
def few_voices(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """spoken-digits with 4 voices and 2 accents (80 clips), in a cache of its own."""
    from zoo_audio import synth

    monkeypatch.setattr(synth, "VOICES", ("m1", "f2", "klatt", "Annie"))
    monkeypatch.setattr(synth, "ACCENTS", ("en-us", "en-gb"))
    monkeypatch.setattr(synth, "TAKES", 1)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_spoken_digits_hold_out_voices_and_come_from_the_cache(few_voices: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo_audio import synth
    from zoo_audio.data import load_spoken_digits

    splits = load_spoken_digits(seed=1, val_fraction=0.25)
    assert splits.info.class_names == list(synth.WORDS)
    assert len(splits.x_train) == 60 and len(splits.x_val) == 20  # one voice of four, both accents
    assert np.bincount(splits.y_val, minlength=10).tolist() == [2] * 10
    assert np.abs(splits.x_train).max() <= 1.0 and (np.abs(splits.x_train).max(axis=1) > 0.2).all()
    stored = np.load(few_voices / "spoken-digits.npz")
    val_voices = set(stored["voice"][np.isin(stored["audio"].astype(np.float32) / 32768,
                                             splits.x_val).all(axis=1)].tolist())
    train_voices = set(stored["voice"].tolist()) - val_voices
    assert len(val_voices) == 1 and len(train_voices) == 3  # speaker-independent: no shared voice
    other_seed = load_spoken_digits(seed=2, val_fraction=0.25)
    assert not np.array_equal(other_seed.x_val, splits.x_val)  # the seed picks the held-out voice

    def no_synthesis(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("synthesised again instead of reading the cache")

    monkeypatch.setattr(synth, "synthesise", no_synthesis)
    again = load_spoken_digits(seed=1, val_fraction=0.25)
    assert np.array_equal(again.x_val, splits.x_val)
    monkeypatch.setattr(synth, "espeak_version", lambda: "eSpeak NG text-to-speech: 9.99")
    with pytest.raises(AssertionError, match="synthesised again"):  # another espeak-ng: the cache is stale
        load_spoken_digits(seed=1, val_fraction=0.25)


def test_spoken_digits_are_the_same_each_time(few_voices: Path) -> None:
    from zoo_audio import synth

    first, second = synth.synthesise(workers=2), synth.synthesise(workers=1)
    assert all(np.array_equal(first[k], second[k]) for k in first)


def test_missing_espeak_is_one_line(few_voices: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(few_voices))
    result = CliRunner().invoke(cli, ["train", "kws-res", "--smoke"])
    assert_one_line_error(result, "espeak-ng", "apt-get install espeak-ng", "wav:DIR")


# ---------------------------------------------------------------- front end and augmentation


def test_front_end_matches_librosa() -> None:
    """The Conv1d/MatMul log-mel equals log(librosa mel power + eps) within 1e-4 nats (measured: ~4e-6)."""
    import librosa
    import torch
    from zoo_audio.frontend import FrontEnd, LogMel, mel_filters

    cfg = FrontEnd()
    reference = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin,
                                    fmax=cfg.fmax)
    np.testing.assert_allclose(mel_filters(cfg), reference, atol=1e-8)
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    clips = np.stack([0.5 * np.sin(2 * np.pi * 440 * t) * np.exp(-3 * t) + 0.05 * rng.standard_normal(16000),
                      np.clip(rng.standard_normal(16000), -1, 1), np.zeros(16000)]).astype(np.float32)
    clips[0, :4000] *= 1e-3  # quiet frames too
    got = LogMel(cfg)(torch.from_numpy(clips)).numpy()
    for clip, features in zip(clips, got, strict=True):
        mel = librosa.feature.melspectrogram(y=clip.astype(np.float64), sr=cfg.sample_rate, n_fft=cfg.n_fft,
                                             hop_length=cfg.hop_length, window="hann", center=True,
                                             pad_mode="constant", power=2.0, n_mels=cfg.n_mels, fmin=cfg.fmin,
                                             fmax=cfg.fmax)
        assert features.shape == mel.shape == (cfg.n_mels, cfg.frames(16000))
        np.testing.assert_allclose(features, np.log(mel + cfg.eps), atol=1e-4, rtol=0)


def test_augmentation_is_drawn_from_seed_epoch_and_step() -> None:
    import torch
    from zoo_audio.augment import AudioAugment, augment_waveforms, generator, spec_masks

    x = torch.linspace(-0.5, 0.5, 4 * 16000).reshape(4, 16000)
    cfg = AudioAugment()

    def draw(seed: int, epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = generator(seed, epoch, step)
        return augment_waveforms(x, cfg, 16000, gen), spec_masks(4, 40, 51, cfg, gen)

    a, b, c = draw(0, 1, 5), draw(0, 1, 5), draw(0, 1, 6)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    mask = a[1]
    assert mask.shape == (4, 40, 51) and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert (mask.sum(dim=(1, 2)) >= 40 * 51 - (7 * 51 + 20 * 40)).all()  # at most one band and one span


# ---------------------------------------------------------------- trained, exported, used


@pytest.fixture(scope="module")
def audio_bundle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """kws-res trained briefly on a small WAV folder, exported with int8 and fp16 variants."""
    work = tmp_path_factory.mktemp("audio")
    root = make_wav_folder(work / "wav", speakers=6, takes=2)
    run = zoo.train("kws-res", dataset=f"wav:{root}", epochs=3, batch_size=8, out=work / "runs", progress=False,
                    model_args={"width": 8})
    exported = zoo.export(run.run_dir, out=work / "exports", quantize="int8", fp16=True, providers=["cpu"])
    return {"root": root, "run": run.run_dir, "bundle": exported.bundle_dir, "work": work}


def test_exported_graph_takes_the_waveform_and_passes_parity(audio_bundle: dict[str, Path]) -> None:
    from zoo.bundles.manifest import Bundle

    bundle = Bundle.open(audio_bundle["bundle"])
    graphs = bundle.manifest.graphs
    assert {"model", "model.int8", "model.fp16"} <= set(graphs)
    model = graphs["model"]
    assert model.input_names == ["waveform"] and model.role.endswith("keyword-spotter")
    assert model.role_info["sample_rate"] == 16000 and model.role_info["samples"] == 16000
    facts = json.loads(model.metadata["zoo_audio"])
    assert facts["front_end"]["log_mel"]["n_mels"] == 40
    assert "logmel kept in fp32" in (graphs["model.int8"].method or "")
    report = zoo.verify(audio_bundle["bundle"], bundle_only=True, runtimes=[])
    assert report["passed"], json.dumps(report.get("runtimes", report), default=str)[:2000]
    ran = {(row["graph"], row["runtime"]) for row in report["runtimes"] if row["status"] == "passed"}
    assert {(g, r) for g in ("model", "model.int8", "model.fp16")
            for r in ("onnxruntime", "reference", "openvino", "tract")} <= ran, sorted(ran)


def _test_clips(root: Path) -> list[Path]:
    """Clips of every format the folder holds (16/32-bit, float, 8 to 44.1 kHz, stereo) and one never seen:
    a 24-bit-free 48 kHz stereo file of a voice (pitch) and rate absent from training."""
    t = np.arange(int(0.9 * 48000)) / 48000
    tone = 0.4 * np.sin(2 * np.pi * 1000 * 1.27 * t) * ((t > 0.25) & (t < 0.65))
    extra = write_wav(root.parent / "unseen-48k.wav", np.stack([tone, tone], axis=1), 48000, "int16")
    return [*sorted(root.glob("*/spk0[0-4]_nohash_0.wav")), extra]


def test_predict_reads_wav_files_like_training(audio_bundle: dict[str, Path]) -> None:
    from zoo_audio.wav import read_clip

    from zoo.ort import CPU, session

    files = _test_clips(audio_bundle["root"])
    result = CliRunner().invoke(cli, ["predict", str(audio_bundle["bundle"]), *map(str, files), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    sess = session(str(audio_bundle["bundle"] / "model" / "model.onnx"), CPU)
    batch = np.stack([read_clip(f, 16000, 16000) for f in files])
    probabilities = _softmax(sess.run(["logits"], {"waveform": batch})[0])
    for row, p in zip(rows, probabilities, strict=True):
        assert row["class"] in ("no", "yes")
        assert np.allclose(list(row["probabilities"].values()), p, atol=1e-6)
    assert rows[-1]["class"] == "yes"  # the unseen 48 kHz stereo clip is a "yes" tone


def test_predict_refuses_a_damaged_wav_in_one_line(audio_bundle: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF1234WAVEjunk")
    result = CliRunner().invoke(cli, ["predict", str(audio_bundle["bundle"]), str(bad)])
    assert_one_line_error(result, str(bad))


def test_wav_js_decodes_the_same_samples_as_python(tmp_path: Path) -> None:
    import subprocess

    from zoo_audio.wav import read_clip

    if not shutil.which("node"):
        pytest.skip("node is not installed here")
    files = _test_clips(make_wav_folder(tmp_path / "wav", speakers=3, takes=1))
    script = tmp_path / "dump.js"
    script.write_text("const fs = require('fs'); const {readClip} = require(process.argv[2]); const out = {};\n"
                      "for (const f of process.argv.slice(3)) out[f] = Array.from(readClip(fs.readFileSync(f), "
                      "16000, 16000));\nprocess.stdout.write(JSON.stringify(out));\n")
    wav_js = Path(__import__("zoo_audio").__file__).parent / "templates" / "wav.js"
    done = subprocess.run(["node", str(script), str(wav_js), *map(str, files)], capture_output=True, text=True,
                          timeout=120, check=True)
    decoded = json.loads(done.stdout)
    for f in files:
        np.testing.assert_allclose(np.asarray(decoded[str(f)], np.float32), read_clip(f, 16000, 16000), atol=1e-6,
                                   err_msg=str(f))


def test_deployed_python_node_and_web_programs_agree_with_predict(
        audio_bundle: dict[str, Path], tmp_path: Path,
        node_modules: Path, chromium: str, serve: Any) -> None:  # noqa: F811 - the fixtures of test_deploy
    import os
    import subprocess
    import sys

    files = [str(f) for f in _test_clips(audio_bundle["root"])]
    want = json.loads(CliRunner().invoke(cli, ["predict", str(audio_bundle["bundle"]), *files, "--json"]).output)
    folders = {}
    for target in ("python", "node", "web"):
        folders[target] = tmp_path / target
        done = CliRunner().invoke(cli, ["deploy", str(audio_bundle["bundle"]), "--target", target, "--out",
                                        str(folders[target])])
        assert done.exit_code == 0, done.output
        if target != "python":
            os.symlink(node_modules, folders[target] / "node_modules")
    assert {"model.onnx", "run.py", "deploy.json", "requirements.txt", "README.md"} <= {
        p.name for p in folders["python"].iterdir()}
    results = {}
    for target, command in (("python", [sys.executable, "run.py"]), ("node", ["node", "run.js"])):
        check = subprocess.run([*command, "--check"], cwd=folders[target], capture_output=True, text=True,
                               timeout=300)
        assert check.returncode == 0 and json.loads(check.stdout)["passed"], check.stdout + check.stderr
        done = subprocess.run([*command, *files], cwd=folders[target], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{target}: {done.stderr}"
        results[target] = [json.loads(line) for line in done.stdout.splitlines()]
    for i, file in enumerate(files):
        shutil.copy(file, folders["web"] / f"clip{i}.wav")
    url = serve(folders["web"])
    assert _page_result(chromium, url + "?check=1")["passed"]
    results["web"] = _page_result(chromium, url + "?wav=" + ",".join(f"clip{i}.wav" for i in range(len(files))))
    for target, rows in results.items():
        assert len(rows) == len(want), target
        for row, expected in zip(rows, want, strict=True):
            assert row["class"] == expected["class"], target
            assert np.allclose(list(row["probabilities"].values()), list(expected["probabilities"].values()),
                               atol=1e-5), target


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("name", ["m5", "crnn"])
def test_other_audio_models_train_and_export(
        name: str, tmp_path: Path,
        node_modules: Path, chromium: str, serve: Any) -> None:  # noqa: F811 - the fixtures of test_deploy
    """Every audio model, not only kws-res: parity on all four runtimes, and its node and web deployments check
    themselves against the bundle's vectors under ONNX Runtime for node and for the web."""
    import os
    import subprocess

    root = make_wav_folder(tmp_path / "wav", speakers=3, takes=1)
    run = zoo.train(name, dataset=f"wav:{root}", epochs=1, batch_size=4, out=tmp_path / "runs", progress=False,
                    model_args={"width": 4})
    exported = zoo.export(run.run_dir, out=tmp_path / "exports", providers=["cpu"])
    assert exported.parity["passed"]
    report = zoo.verify(exported.bundle_dir, bundle_only=True, runtimes=[])  # every independent runtime too
    assert report["passed"], json.dumps(report.get("runtimes", report), default=str)[:2000]
    assert {row["runtime"] for row in report["runtimes"] if row["status"] == "passed"} >= {
        "onnxruntime", "reference", "openvino", "tract"}
    for target in ("node", "web"):
        folder = tmp_path / target
        done = CliRunner().invoke(cli, ["deploy", str(exported.bundle_dir), "--target", target, "--out", str(folder)])
        assert done.exit_code == 0, done.output
        os.symlink(node_modules, folder / "node_modules")
    check = subprocess.run(["node", "run.js", "--check"], cwd=tmp_path / "node", capture_output=True, text=True,
                           timeout=300)
    assert check.returncode == 0 and json.loads(check.stdout)["passed"], check.stdout + check.stderr
    assert _page_result(chromium, serve(tmp_path / "web") + "?check=1")["passed"]
    shutil.rmtree(tmp_path / "wav")


def test_report_shows_confusion_spectrograms_and_players(audio_bundle: dict[str, Path]) -> None:
    import base64
    import io
    import re
    import wave

    out = audio_bundle["work"] / "report.html"
    result = CliRunner().invoke(cli, ["report", str(audio_bundle["run"]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "Confusion matrix" in page and "Worst-classified validation clips" in page
    players = re.findall(r'<audio controls preload="none" src="data:audio/wav;base64,([A-Za-z0-9+/=]+)"', page)
    assert players, "no playable clip in the report"
    with wave.open(io.BytesIO(base64.b64decode(players[0]))) as clip:  # a real WAV: 16 kHz, one second
        assert (clip.getframerate(), clip.getnchannels(), clip.getnframes()) == (16000, 1, 16000)
    assert "http://" not in page and "https://" not in page  # self-contained
