"""The ``lm`` family: text data, training, the cached graph's parity over whole generated sequences, and
``zoo generate`` without torch. The session's gpt-nano run (conftest's ``train_briefly``: BPE tokenizer,
smoke mode) is exported once here."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from zoo_lm.generate import LMSession, Sampling, choose, lm_graph

import zoo
from zoo.cli import cli
from zoo.data import load_dataset
from zoo.runs import load_run

from .helpers import assert_one_line_error

PROMPTS = ["The ", "def f(x):", "In Python, a list ", "Ü"]  # the last: a multi-byte character
#: Logits of ONNX Runtime against PyTorch at every step of a generated sequence (CPU, fp32). Measured ~1e-6.
STEP_ATOL, STEP_RTOL = 1e-4, 1e-4


@pytest.fixture(scope="module")
def lm_bundle(train_briefly, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The session's gpt-nano run (embedded text, BPE of 400 ids, smoke mode), exported with its int8 variant."""
    run = train_briefly("gpt-nano")
    out = tmp_path_factory.mktemp("lm")
    bundle = zoo.export(run.run_dir, out=out / "exports", quantize="int8", providers=["cpu"]).bundle_dir
    return run.run_dir, bundle


def test_run_has_metrics_samples_and_tokenizer(lm_bundle: tuple[Path, Path]) -> None:
    run_dir, bundle = lm_bundle
    summary = json.loads((run_dir / "summary.json").read_text())
    metrics = summary["metrics"]
    assert metrics["val_perplexity"] == pytest.approx(np.exp(metrics["val_loss"]), rel=1e-6)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["dataset"] == "pydoc-topics"  # trained without a dataset named: the preset's own, the embedded text
    text = config["data"]["text"]
    assert text["tokenizer"] == "bpe:400" and text["vocab_size"] == 400 and config["model_args"]["vocab_size"] == 400
    assert metrics["val_bits_per_byte"] == pytest.approx(metrics["val_loss"] / np.log(2) / text["bytes_per_token"])
    assert (run_dir / "tokenizer.json").read_text() == text["tokenizer_json"]
    assert (bundle / "lm" / "tokenizer.json").read_text() == text["tokenizer_json"]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert "lm/tokenizer.json" in manifest["files"]
    samples = (run_dir / "samples" / "epoch-001.txt").read_text()
    assert "--- prompt 'def '" in samples
    (run_dir / "loss_curve.png").stat()


def test_graph_has_dynamic_batch_sequence_and_past_axes(lm_bundle: tuple[Path, Path]) -> None:
    _, bundle = lm_bundle
    graph = json.loads((bundle / "manifest.json").read_text())["graphs"]["lm"]
    shapes = {v["name"]: v["shape"] for v in [*graph["inputs"], *graph["outputs"]]}
    assert shapes["input_ids"] == ["batch", "seq"] and shapes["logits"][:2] == ["batch", "seq"]
    assert shapes["past_key_0"][0] == "batch" and shapes["past_key_0"][2] == "past"
    assert isinstance(shapes["present_value_1"][2], str)
    assert graph["metadata"]["zoo_role"] == "lm:lm", "the role is stamped with the plugin that registers it"
    assert json.loads(graph["metadata"]["zoo_lm"])["layers"] == 2


def test_greedy_tokens_identical_and_logits_close_at_every_step(lm_bundle: tuple[Path, Path]) -> None:
    """64 greedy tokens from several prompts: the same tokens from PyTorch (its own cache) and ONNX Runtime,
    and at every step the logits agree within STEP_ATOL / STEP_RTOL."""
    from zoo_lm.model import greedy

    run_dir, bundle = lm_bundle
    model = load_run(run_dir).model
    lm = LMSession(bundle)
    worst = 0.0
    for prompt in PROMPTS:
        ids = lm.encode(prompt)
        torch_tokens, torch_logits = greedy(model, ids, 64)
        ort_tokens = lm.generate([ids], 64, Sampling(temperature=0))[0]
        assert ort_tokens == torch_tokens, f"greedy tokens differ for {prompt!r}"
        cache, step_ids = lm.empty_cache(1), np.asarray([ids])
        for token, expected in zip(torch_tokens, torch_logits, strict=True):
            logits, cache = lm.step(step_ids, cache)
            np.testing.assert_allclose(logits[0], expected.numpy(), atol=STEP_ATOL, rtol=STEP_RTOL)
            worst = max(worst, float(np.abs(logits[0] - expected.numpy()).max()))
            step_ids = np.asarray([[token]])
    assert worst < STEP_ATOL


def test_batched_generation_matches_single_prompts(lm_bundle: tuple[Path, Path]) -> None:
    _, bundle = lm_bundle
    lm = LMSession(bundle)
    ids = lm.encode("The ")
    single = lm.generate([ids], 10, Sampling(temperature=0))[0]
    assert lm.generate([ids] * 3, 10, Sampling(temperature=0)) == [single] * 3


#: Prompts of clearly different token lengths (one character to a few lines), one a multi-byte character.
BATCH_PROMPTS = ["Ü", "The value ", "def add(a, b):\n    return a + b\n\nThe for statement ",
                 "In Python, a list is a mutable sequence; a tuple "]


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_prompts_of_different_lengths_batch_to_their_tokens_alone(lm_bundle: tuple[Path, Path], variant: str
                                                                  ) -> None:
    """One left-padded batch gives each row exactly the greedy tokens of its prompt alone (every graph variant)."""
    _, bundle = lm_bundle
    lm = LMSession(bundle, variant=variant)  # (the smoke run's greedy tokens vary little: sampling below varies)
    ids = [lm.encode(p) for p in BATCH_PROMPTS]
    assert len({len(row) for row in ids}) == len(ids) and max(map(len, ids)) >= 10 * min(map(len, ids))
    alone = [lm.generate([row], 40, Sampling(temperature=0))[0] for row in ids]
    assert lm.generate(ids, 40, Sampling(temperature=0)) == alone
    assert lm.generate(ids[::-1], 40, Sampling(temperature=0)) == alone[::-1]
    if variant == "fp32":  # int8's kernel quantizes activations at run time: its logits may move a little with
        # the batch (the greedy tokens above stay), enough to move a sampled draw near a boundary
        # sampling: each row draws from a generator of its own, so a row samples what its prompt samples alone
        sampled = Sampling(temperature=1.0, top_k=20, seed=5)
        assert lm.generate(ids, 20, sampled) == [lm.generate([row], 20, sampled)[0] for row in ids]


def test_the_attention_mask_keeps_padding_out(lm_bundle: tuple[Path, Path]) -> None:
    """The same left-padded ids with the padding marked real give other logits: the mask is what makes a padded row
    equal to its prompt alone (in attention and in positions)."""
    from zoo_lm.generate import left_pad

    _, bundle = lm_bundle
    lm = LMSession(bundle)
    assert lm.mask_input == "attention_mask"
    ids, mask = left_pad([lm.encode("The "), lm.encode("In Python, a list ")])
    assert mask[0, 0] == 0 and mask[1].all()
    masked, _ = lm.step(ids, lm.empty_cache(2), mask)
    unmasked, _ = lm.step(ids, lm.empty_cache(2))
    alone, _ = lm.step(np.asarray([lm.encode("The ")]), lm.empty_cache(1))
    np.testing.assert_allclose(masked[0], alone[0], atol=STEP_ATOL, rtol=STEP_RTOL)
    np.testing.assert_allclose(masked[1], unmasked[1], atol=STEP_ATOL, rtol=STEP_RTOL)
    assert np.abs(unmasked[0] - alone[0]).max() > 1e-3


def test_stored_vectors_hold_padded_rows_and_every_runtime_passes_them(lm_bundle: tuple[Path, Path]) -> None:
    """The bundle's parity cases feed the mask with left-padded rows; ONNX Runtime and OpenVINO give the stored
    outputs for both graphs, onnx's reference evaluator for the fp32 one (`zoo verify --runtimes all`; the int8
    graph's MatMulNBits is an ONNX Runtime operator the reference evaluator does not have)."""
    import onnx
    from onnx import numpy_helper

    _, bundle = lm_bundle
    entry = json.loads((bundle / "manifest.json").read_text())["graphs"]["lm"]
    assert [i["name"] for i in entry["inputs"]][:2] == ["input_ids", "attention_mask"]
    padded = next(s for s in entry["test_sets"] if s["inputs"] == "random-batch16")
    mask = numpy_helper.to_array(onnx.load_tensor(str(bundle / padded["dir"] / "input_1.pb")))
    assert mask.shape[0] == 16 and (mask[:, 0] == 0).any() and mask[0].all()
    report = zoo.verify(bundle, bundle_only=True, runtimes=[])
    assert report["passed"], json.dumps(report.get("runtimes", report), default=str)[:2000]
    passed = {(row["runtime"], row["graph"]) for row in report["runtimes"] if row["status"] == "passed"}
    assert {(r, g) for r in ("onnxruntime", "openvino") for g in ("lm", "lm.int8")} | {("reference", "lm")} <= passed
    unsupported = {(row["runtime"], row["graph"]) for row in report["runtimes"] if row["status"] == "unsupported"}
    assert ("reference", "lm.int8") in unsupported


def test_each_row_of_a_batch_stops_and_slides_on_its_own(lm_bundle: tuple[Path, Path]) -> None:
    """A stop string ends one row while the others run to --max-new-tokens; past the context each row's window
    slides when it would alone; every row's result is the one its prompt gives alone."""
    from zoo_lm.generate import generate_texts

    _, bundle = lm_bundle
    drawn = Sampling(temperature=0.8, top_k=40, seed=3)  # the smoke run's greedy text is one letter repeated
    plain = [r["text"] for r in generate_texts(bundle, BATCH_PROMPTS, max_new_tokens=40, sampling=drawn)]
    # a stop string in the longest prompt's text and not in the next longest's: when the longest row leaves, the
    # positions that are padding in every row left are dropped from the cache too
    stop = next(plain[2][i:i + n] for n in (3, 4, 6, 8) for i in range(4, len(plain[2]) - n)
                if plain[2][i:i + n] not in plain[3])
    options = {"max_new_tokens": 40, "sampling": drawn, "stop": (stop,)}
    batch = generate_texts(bundle, BATCH_PROMPTS, **options)
    assert batch == [generate_texts(bundle, [p], **options)[0] for p in BATCH_PROMPTS]
    assert batch[2]["stopped"] == "stop" and batch[2]["new_tokens"] < 40
    assert batch[3]["stopped"] == "max_new_tokens" and batch[3]["new_tokens"] == 40
    long = {"max_new_tokens": 200, "sampling": drawn}  # context 128: the prompts' rows fill it at different steps
    slid = generate_texts(bundle, BATCH_PROMPTS[1:3], **long)
    assert slid == [generate_texts(bundle, [p], **long)[0] for p in BATCH_PROMPTS[1:3]]
    assert all(r["slides"] >= 1 and r["new_tokens"] == 200 for r in slid)


def test_generate_takes_several_prompts_and_a_prompts_file(lm_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    _, bundle = lm_bundle
    runner = CliRunner()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("def \n\nIn Python, a list \n", encoding="utf-8")
    common = ["generate", str(bundle), "--max-new-tokens", "12", "--temperature", "0"]
    result = runner.invoke(cli, [*common, "--prompt", "The ", "--prompts-file", str(prompts), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["prompt"] for r in rows] == ["The ", "def ", "In Python, a list "]  # --prompt first, blank line skipped
    for row in rows:
        alone = json.loads(runner.invoke(cli, [*common, "--prompt", row["prompt"], "--json"]).output)
        assert row == alone
    text = runner.invoke(cli, [*common, "--prompt", "The ", "--prompts-file", str(prompts)])
    assert text.exit_code == 0, text.output
    assert text.output == "".join(f"--- prompt {n}\n{r['prompt']}{r['text']}\n" for n, r in enumerate(rows, 1))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"The \xff\n")
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n")
    assert_one_line_error(runner.invoke(cli, [*common, "--prompts-file", str(bad)]), "not UTF-8")
    assert_one_line_error(runner.invoke(cli, [*common, "--prompts-file", str(blank)]), "holds no prompt")
    assert_one_line_error(runner.invoke(cli, [*common, "--prompts-file", str(tmp_path / "none.txt")]),
                          "cannot be read")
    assert_one_line_error(runner.invoke(cli, common), "--prompt")


def test_sampling_filters() -> None:
    rng = np.random.default_rng(0)
    logits = np.array([0.0, 5.0, 4.9, -3.0])
    assert choose(logits, Sampling(temperature=0), rng) == 1
    assert {choose(logits, Sampling(top_k=2), rng) for _ in range(50)} <= {1, 2}
    assert {choose(logits, Sampling(top_p=0.01), rng) for _ in range(20)} == {1}


def test_generate_streams_without_torch_and_json(lm_bundle: tuple[Path, Path]) -> None:
    _, bundle = lm_bundle
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "zoo", "generate", str(bundle), "--prompt",
                          "The ", "--max-new-tokens", "20", "--seed", "3", "--top-k", "20"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert not any(line.rsplit("|", 1)[-1].strip() == "torch" for line in out.stderr.splitlines()), "imported torch"
    assert out.stdout.startswith("The ")
    result = CliRunner().invoke(cli, ["generate", str(bundle), "--prompt", "The ", "--max-new-tokens", "20",
                                      "--seed", "3", "--top-k", "20", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["new_tokens"] == 20 and out.stdout.rstrip("\n") == "The " + data["text"]


def test_generate_refuses_other_bundles_and_others_refuse_lm(lm_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    _, bundle = lm_bundle
    runner = CliRunner()
    assert_one_line_error(runner.invoke(cli, ["predict", str(bundle), "x.png"]), "no graph `zoo predict` can use",
                          "roles: lm")
    assert_one_line_error(runner.invoke(cli, ["sample", str(bundle)]), "no sampler or decoder graph")
    other = tmp_path / "other"
    shutil.copytree(bundle, other)
    manifest = json.loads((other / "manifest.json").read_text())
    for graph in manifest["graphs"].values():
        graph["metadata"].pop("zoo_role")
    (other / "manifest.json").write_text(json.dumps(manifest))
    assert_one_line_error(runner.invoke(cli, ["generate", str(other), "--prompt", "x"]), "no language-model graph")
    assert_one_line_error(runner.invoke(cli, ["generate", str(bundle), "--prompt", "x", "--top-p", "0"]), "--top-p")


def test_int8_variant_loses_little_validation_loss(lm_bundle: tuple[Path, Path]) -> None:
    """The int8 graph's validation loss against the fp32 graph's, on the same windows (reported in the docs)."""
    from zoo_lm.family import split_text, token_windows

    run_dir, bundle = lm_bundle
    config = json.loads((run_dir / "config.json").read_text())
    fp32, int8 = LMSession(bundle), LMSession(bundle, variant="int8")
    val = load_dataset(config["dataset"], seed=config["seed"]).x_val
    windows = token_windows(np.asarray(fp32.encode(split_text(val)[:20_000])), 128)[:16]
    loss32, loss8 = fp32.mean_nll(windows), int8.mean_nll(windows)
    assert 0 < loss32 < 10 and abs(loss8 - loss32) < 0.1 * loss32


MULTI_LINE = "def f(x):\n    return x\n\n  y = 1\n\tz\n"


def test_a_multi_line_prompt_is_tokenised_as_training_tokenised(lm_bundle: tuple[Path, Path]) -> None:
    """Training tokenises its text line by line; zoo generate must give a prompt the very same ids."""
    from zoo_lm.tokenizer import encode, lines

    run_dir, bundle = lm_bundle
    tokenizer_json = (run_dir / "tokenizer.json").read_text()
    assert lines(MULTI_LINE) == ["def f(x):\n", "    return x\n", "\n", "  y = 1\n", "\tz\n"]
    expected = encode(tokenizer_json, MULTI_LINE).tolist()
    assert LMSession(bundle).encode(MULTI_LINE) == expected
    result = CliRunner().invoke(cli, ["generate", str(bundle), "--prompt", MULTI_LINE, "--temperature", "0",
                                      "--max-new-tokens", "5", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["prompt_tokens"] == len(expected)


def test_variants_are_judged_by_token_agreement_and_bits_per_byte(lm_bundle: tuple[Path, Path]) -> None:
    _, bundle = lm_bundle
    result = json.loads((bundle / "parity.json").read_text())["graphs"]["lm.int8"]["CPUExecutionProvider"]
    gate = result["gate"]
    assert gate["passed"] and gate["rule"].startswith("token agreement") and gate["role"] == "lm:lm"
    metrics = gate["metrics"]
    assert 0.9 <= metrics["token_agreement"] <= 1 and metrics["loss_growth"] <= 0.01
    assert metrics["bits_per_byte"] / metrics["reference_bits_per_byte"] == pytest.approx(1 + metrics["loss_growth"])


def test_int8_variant_has_int8_weights_only(lm_bundle: tuple[Path, Path]) -> None:
    """``--quantize int8`` of an lm graph: every MatMul with a constant weight (the blocks' and the tied output
    layer's) becomes MatMulNBits with 8-bit weights; the attention's MatMuls of activations stay fp32."""
    import onnx

    _, bundle = lm_bundle
    entry = json.loads((bundle / "manifest.json").read_text())["graphs"]["lm.int8"]
    assert entry["method"].startswith("weight-only")
    model = onnx.load(str(bundle / "lm.int8" / "model.onnx"))
    nbits = [n for n in model.graph.node if n.op_type == "MatMulNBits"]
    assert len(nbits) == 2 * 4 + 1  # gpt-nano: 2 blocks × (qkv, proj, two MLP layers), and the output layer
    assert all(onnx.helper.get_attribute_value(a) == 8 for n in nbits for a in n.attribute if a.name == "bits")
    constants = {i.name for i in model.graph.initializer}
    assert not [n for n in model.graph.node if n.op_type in ("MatMul", "Gemm") and n.input[1] in constants]
    weights = sum(onnx.numpy_helper.to_array(i).nbytes for i in model.graph.initializer)
    fp32 = sum(p.stat().st_size for p in (bundle / "lm").glob("model.onnx*"))
    assert weights < 0.6 * fp32  # the token embedding (read by Gather, one row a token) stays fp32
    assert "int8 weights are for decoding one token at a time" in (bundle / "card.md").read_text()


def test_generate_runs_the_int8_variant(lm_bundle: tuple[Path, Path]) -> None:
    _, bundle = lm_bundle
    runner = CliRunner()
    result = runner.invoke(cli, ["generate", str(bundle), "--prompt", "The ", "--max-new-tokens", "12",
                                 "--temperature", "0", "--variant", "int8", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["variant"] == "int8" and data["new_tokens"] == 12
    lm8 = LMSession(bundle, variant="int8")
    assert data["tokens"] == lm8.generate([lm8.encode("The ")], 12, Sampling(temperature=0))[0]
    assert lm_graph(bundle, variant="int8")[0].parent.name == "lm.int8"
    assert_one_line_error(runner.invoke(cli, ["generate", str(bundle), "--prompt", "x", "--variant", "fp16"]),
                          "no fp16 language-model graph", "--variant", "fp32, int8")


def test_the_lm_gate_fails_a_variant_that_changes_tokens() -> None:
    from zoo_lm.roles import LMHandlers

    from zoo.role_handlers import GateCase, GateEvidence

    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, (2, 12))
    logits = rng.standard_normal((2, 12, 50)).astype(np.float32) * 4
    info = {"input": "input_ids", "logits": "logits"}

    def judged(variant: np.ndarray) -> Any:
        case = GateCase("real-batch2", {"input_ids": ids}, {"logits": logits}, {"logits": variant})
        return LMHandlers().gate(GateEvidence("lm", "int8", info, {}, (case,)))

    same = judged(logits + 1e-4)
    assert same.passed and same.metrics["token_agreement"] == 1.0
    shuffled = judged(logits[:, :, ::-1].copy())
    assert not shuffled.passed and shuffled.metrics["token_agreement"] < 0.9
    # the same greedy tokens everywhere, but sharper (these logits do not predict the ids): the loss, and so the
    # bits per byte, grows by more than 1 %
    sharper = judged(logits * 1.1)
    assert sharper.metrics["token_agreement"] == 1.0 and sharper.metrics["loss_growth"] > 0.01
    assert not sharper.passed


def test_an_int8_variant_that_loses_bits_per_byte_is_dropped(
        train_briefly: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A deliberately worse int8 graph (the output layer's int8 scales shrunk: the same greedy tokens, flatter
    probabilities) fails the lm gate on bits per byte and is left out; the fp32 graph is published."""
    import onnx

    import zoo.bundles.variants as variants

    real = variants.quantize_weights_int8

    def worse(src: Path, dst: Path, graph_name: str) -> str:
        method = real(src, dst, graph_name)
        model = onnx.load(str(dst))
        last = [n for n in model.graph.node if n.op_type == "MatMulNBits"][-1]
        scales = next(i for i in model.graph.initializer if i.name == last.input[2])
        scales.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(scales) * 0.25, scales.name))
        onnx.save(model, str(dst))
        return method

    monkeypatch.setattr(variants, "quantize_weights_int8", worse)
    out = tmp_path / "ex"
    result = CliRunner().invoke(cli, ["export", str(train_briefly("gpt-nano").run_dir), "--out", str(out),
                                      "--quantize", "int8", "--providers", "cpu"])
    assert result.exit_code == 0, result.output
    assert "variant lm.int8 failed its gate and was left out" in result.stderr
    bundle = next(out.iterdir())
    assert set(json.loads((bundle / "manifest.json").read_text())["graphs"]) == {"lm"}
    dropped = json.loads((bundle / "parity.json").read_text())["dropped_variants"]["lm.int8"]
    gate = dropped["results"]["CPUExecutionProvider"]["gate"]
    assert not gate["passed"] and gate["metrics"]["token_agreement"] >= 0.9 and gate["metrics"]["loss_growth"] > 0.01


def test_text_split_is_contiguous_blocks_by_seed(tmp_path: Path) -> None:
    text = "".join(f"line {i:05d} ünïcödé\n" for i in range(3000))
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    a, b = load_dataset(f"text:{tmp_path}", seed=0), load_dataset(f"text:{tmp_path / 'a.txt'}", seed=0)
    assert a.info.kind == "text" and np.array_equal(a.x_val, b.x_val)
    c = load_dataset(f"text:{tmp_path}", seed=1)
    assert not np.array_equal(a.x_val, c.x_val)
    train, val = (bytes(x[0]).decode("utf-8") for x in (a.x_train, a.x_val))
    assert len(train) + len(val) == len(text) and 0.15 < len(val) / len(text) < 0.25


@pytest.mark.parametrize(("content", "message"), [
    (b"\xff\xfe not utf-8", "is not UTF-8"),
    (b"   \n", "is empty"),
    ("short text ü".encode() * 5, "not longer than the context"),
])
def test_bad_text_is_one_line(content: bytes, message: str, tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(content)
    result = CliRunner().invoke(cli, ["train", "gpt-nano", "--data", f"text:{path}", "--out", str(tmp_path / "r")])
    assert_one_line_error(result, message)
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_lm_refuses_image_data_and_bad_tokenizer(tmp_path: Path) -> None:
    runner = CliRunner()
    assert_one_line_error(runner.invoke(cli, ["train", "gpt-nano", "--data", "digits", "--out", str(tmp_path)]),
                          "trains on text data", "kind 'image'")
    assert_one_line_error(runner.invoke(cli, ["train", "gpt-nano", "--data", "pydoc-topics", "--hp", "tokenizer=wp",
                                              "--out", str(tmp_path)]), "tokenizer=bpe:N")


def test_byte_tokenizer_is_utf8() -> None:
    from tokenizers import Tokenizer
    from zoo_lm.tokenizer import byte_tokenizer_json, encode

    text = "héllo wörld\n\t€ 🐍 x"
    tokenizer = Tokenizer.from_str(byte_tokenizer_json())
    assert tokenizer.encode(text).ids == list(text.encode()) == encode(byte_tokenizer_json(), text).tolist()
    assert tokenizer.decode(list(text.encode())) == text


def test_bpe_is_deterministic_and_keeps_bytes() -> None:
    from zoo_lm.tokenizer import decode, encode, train_bpe_json

    text = "".join(f"def function_{i}(x):\n    return x * {i}  # ünï\n" for i in range(300))
    first, second = train_bpe_json(text, 300), train_bpe_json(text, 300)
    assert first == second
    ids = encode(first, text[:500]).tolist()
    assert len(ids) < 500 and decode(first, ids) == text[:500]


def test_the_optimizer_clips_and_leaves_the_rate_to_the_engine() -> None:
    from zoo_lm.optim import ClippedAdamW

    p = torch.nn.Parameter(torch.ones(3))
    opt = ClippedAdamW([{"params": [p]}], lr=1.0, betas=(0.9, 0.95), grad_clip=1.0)
    p.grad = torch.full((3,), 100.0)
    opt.step()
    assert float(p.grad.norm()) == pytest.approx(1.0)
    assert opt.param_groups[0]["lr"] == 1.0, "the schedule is the engine's LambdaLR, not the optimizer's"


def test_image_family_refuses_text(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["train", "cnn", "--data", "pydoc-topics", "--out", str(tmp_path)])
    assert_one_line_error(result, "trains on image data", "holds text (kind 'text')")


def test_first_batch_check_reads_token_rows(tmp_path: Path) -> None:
    """The engine's first-batch check takes tokenised text as rows of ids below the vocabulary, not images."""
    from dataclasses import replace

    from zoo_lm.family import LMFamily

    from zoo.data import TextInfo
    from zoo.engine.assembly import check_data
    from zoo.errors import ZooError
    from zoo.family import RunContext

    (tmp_path / "t.txt").write_text("abcdefgh " * 400, encoding="utf-8")
    raw = load_dataset(f"text:{tmp_path / 't.txt'}", seed=0)
    data = LMFamily().prepare_data(RunContext(hyperparameters=LMFamily.hyperparameters, data=raw), {"context": 16})
    check_data(data, "text:t.txt", "zoo_lm")
    small = replace(data, info=replace(data.info, text=TextInfo(vocab_size=100, context=16)))
    with pytest.raises(ZooError, match="token ids reach"):
        check_data(small, "text:t.txt", "zoo_lm")
    with pytest.raises(ZooError, match="not rows of token ids"):
        check_data(replace(data, x_train=data.x_train.astype(np.float32)), "text:t.txt", "zoo_lm")


def test_a_huge_single_line_is_handed_to_the_tokenizer_in_bounded_pieces() -> None:
    """One 50 MB line aborted the BPE trainer (a Rust allocation failure, exit 134) under a memory limit: text
    reaches the library in pieces of at most MAX_PIECE characters, cut where the tokens come out the same."""
    from zoo_lm.tokenizer import encode, pieces, train_bpe_json

    rng = np.random.default_rng(0)
    words = ["def", "return", "x", "  if", "value", "(1,", "2)", "é", "\t"]
    line = " ".join(rng.choice(words, 6000)) + "\n"
    cut = list(pieces(line, limit=500))
    assert "".join(cut) == line and max(map(len, cut)) <= 500 and len(cut) > 10
    tokenizer = train_bpe_json(line * 3, 300)
    whole = json.loads(tokenizer)
    assert len(whole["model"]["vocab"]) > 256  # it learned merges
    from tokenizers import Tokenizer

    reference = Tokenizer.from_str(tokenizer).encode(line, add_special_tokens=False).ids  # the line in one piece
    assert [int(i) for i in encode(tokenizer, line)] == reference  # 60 kB lines stay one piece; below, cut
    import zoo_lm.tokenizer as module

    assert [int(i) for i in np.concatenate([encode(tokenizer, p) for p in pieces(line, 500)])] == reference
    assert module.MAX_PIECE >= 1 << 12


def test_generation_slides_past_the_context_and_honours_max_new_tokens(lm_bundle: tuple[Path, Path]) -> None:
    """gpt-nano's context is 128 tokens: 300 new ones are all produced, the window sliding as it fills."""
    from zoo_lm.generate import generate_text

    _, bundle = lm_bundle
    result = generate_text(bundle, "The ", max_new_tokens=300, sampling=Sampling(temperature=0))
    assert result["new_tokens"] == len(result["tokens"]) == 300 and result["stopped"] == "max_new_tokens"
    assert result["slides"] >= 2 and result["context"] == 128
    lm = LMSession(bundle)
    within = lm.generate([lm.encode("The ")], 100, Sampling(temperature=0))[0]  # before the first slide
    assert lm.slides == 0 and result["tokens"][:100] == within
    cli_result = subprocess.run([sys.executable, "-m", "zoo", "generate", str(bundle), "--prompt", "The ",
                                 "--max-new-tokens", "300", "--temperature", "0", "--threads", "1"],
                                capture_output=True, text=True)
    assert cli_result.returncode == 0, cli_result.stderr
    assert f"the window slid {result['slides']} time(s)" in cli_result.stderr
    assert cli_result.stdout.rstrip("\n") == "The " + result["text"]  # --threads 1: the same greedy tokens


def test_generation_stops_at_a_stop_string_and_at_end_of_text(lm_bundle: tuple[Path, Path],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo_lm.generate import generate_text

    _, bundle = lm_bundle
    full = generate_text(bundle, "The ", max_new_tokens=60, sampling=Sampling(temperature=0))
    stop = full["text"][12:15]
    cut = full["text"][:full["text"].find(stop)]
    streamed: list[str] = []
    stopped = generate_text(bundle, "The ", max_new_tokens=60, sampling=Sampling(temperature=0), stop=("@@", stop),
                            write=streamed.append)
    assert stopped["stopped"] == "stop" and stopped["text"] == cut and stopped["new_tokens"] < 60
    assert "".join(streamed) == "The " + cut  # nothing of the stop string was ever streamed
    # the tokenizer's end-of-text token ends generation and is not part of the text
    eot = full["tokens"][7]
    monkeypatch.setattr(LMSession, "end_of_text", lambda self: eot)
    ended = generate_text(bundle, "The ", max_new_tokens=60, sampling=Sampling(temperature=0))
    first = full["tokens"].index(eot)
    assert ended["stopped"] == "end_of_text" and ended["tokens"] == full["tokens"][:first]
    assert_one_line_error(CliRunner().invoke(cli, ["generate", str(bundle), "--prompt", "x", "--threads", "-1"]),
                          "--threads")
    assert_one_line_error(CliRunner().invoke(cli, ["generate", str(bundle), "--prompt", "x", "--stop", ""]), "--stop")
