"""GPT-2 weights both ways: a ``transformers`` ``GPT2LMHeadModel`` (random weights, made here) → ``--init`` → the same
logits; a trained zoo GPT → ``zoo hf-export`` → ``GPT2LMHeadModel.from_pretrained`` → the same logits; a Hugging Face
``tokenizer.json`` as ``--hp tokenizer=FILE``, and a vocabulary that does not match the tokenizer refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import zoo
from zoo.cli import cli
from zoo.engine.adapt import load_init

from .helpers import assert_one_line_error

transformers = pytest.importorskip("transformers")
#: gpt-nano's shape (2 layers, 2 heads, width 64, context 128) over the 256 byte tokens.
NANO = {"n_layer": 2, "n_head": 2, "n_embd": 64, "n_positions": 128, "vocab_size": 256}


def hf_gpt2(folder: Path, activation: str = "gelu_new") -> torch.nn.Module:
    """A random-weight GPT2LMHeadModel of gpt-nano's shape, saved as a Hugging Face folder (safetensors)."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(**NANO, activation_function=activation, resid_pdrop=0.0, embd_pdrop=0.0,
                                     attn_pdrop=0.0, bos_token_id=None, eos_token_id=None)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # non-trivial norms and biases, so a swapped or untransposed tensor shows
        for name, param in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                param.add_(torch.randn_like(param) * 0.1)
    model.save_pretrained(folder, safe_serialization=True)
    return model


def zoo_cli(*args: str) -> subprocess.CompletedProcess:
    """The installed command line (plugin commands such as ``hf-export`` are added by ``zoo.cli.main``)."""
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, timeout=300)


def assert_one_line_failure(result: subprocess.CompletedProcess, *fragments: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert all(fragment in lines[0] for fragment in fragments), result.stderr


def tokens() -> torch.Tensor:
    return torch.randint(0, 256, (3, 40), generator=torch.Generator().manual_seed(1))


def test_hf_gpt2_weights_load_with_equal_logits(tmp_path: Path) -> None:
    reference = hf_gpt2(tmp_path / "gpt2")
    model = zoo.create_model("gpt-nano", activation="gelu_tanh").eval()
    record = load_init(model, tmp_path / "gpt2", "gpt-nano", say=False)
    assert record.path.endswith("model.safetensors") and record.tensors == 4 + 12 * 2
    with torch.no_grad():
        ours, theirs = model(tokens()), reference(tokens()).logits
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=1e-5), (ours - theirs).abs().max()
    exact = zoo.create_model("gpt-nano").eval()  # exact GELU: measurably different, so the check above means it
    with torch.no_grad():
        exact.load_state_dict(model.state_dict())
        assert (ours - theirs).abs().max() * 10 < (exact(tokens()) - theirs).abs().max()


def test_hf_gpt2_with_the_wrong_activation_is_one_line(tmp_path: Path) -> None:
    hf_gpt2(tmp_path / "gpt2")
    result = CliRunner().invoke(cli, ["train", "gpt-nano", "--init", str(tmp_path / "gpt2"), "--smoke",
                                      "--out", str(tmp_path / "runs")])
    assert_one_line_error(result, "activation_function='gelu_new'", "--arg activation=gelu_tanh")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_zoo_gpt_exports_to_transformers_with_equal_logits(tmp_path: Path) -> None:
    run = zoo.train("gpt-nano", smoke=True, epochs=1, out=tmp_path / "runs", progress=False,
                    model_args={"activation": "gelu_tanh"})
    result = zoo_cli("hf-export", str(run.run_dir), "--out", str(tmp_path / "hf"))
    assert result.returncode == 0, result.stderr
    loaded = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    ours = zoo.load_run(run.run_dir).model.eval()
    with torch.no_grad():
        assert torch.allclose(ours(tokens()), loaded(tokens()).logits, atol=1e-5, rtol=1e-5)
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["activation_function"] == "gelu_new"
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "hf" / "tokenizer.json"))
    assert tokenizer.decode(tokenizer("def f(x):\n  return x")["input_ids"]) == "def f(x):\n  return x"
    # and back in: the exported folder is an --init source whose logits equal the run's
    again = zoo.create_model("gpt-nano", activation="gelu_tanh").eval()
    load_init(again, tmp_path / "hf", "gpt-nano", say=False)
    with torch.no_grad():
        assert torch.equal(again(tokens()), ours(tokens()))
    # an existing folder is not overwritten without --force; with it, it is replaced
    assert_one_line_failure(zoo_cli("hf-export", str(run.run_dir), "--out", str(tmp_path / "hf")),
                            "already exists", "--force")
    forced = zoo_cli("hf-export", str(run.run_dir), "--out", str(tmp_path / "hf"), "--force")
    assert forced.returncode == 0, forced.stderr
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("mine")
    assert_one_line_failure(zoo_cli("hf-export", str(run.run_dir), "--out", str(tmp_path / "mine"), "--force"),
                            "not an earlier zoo hf-export")
    assert (tmp_path / "mine" / "keep.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_a_hugging_face_tokenizer_file_is_a_tokenizer(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(["def f(x): return x\n"] * 50, trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<|endoftext|>"],
        show_progress=False))
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    run = zoo.train("gpt-nano", smoke=True, epochs=1, out=tmp_path / "runs", progress=False,
                    hyperparameters={"tokenizer": str(path)})
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["data"]["text"]["tokenizer"] == "file:tokenizer.json"
    assert config["model_args"]["vocab_size"] == tok.get_vocab_size()
    wrong = CliRunner().invoke(cli, ["train", "gpt-nano", "--smoke", "--arg", "vocab_size=50257",
                                     "--out", str(tmp_path / "runs2")])
    assert_one_line_error(wrong, "vocab_size=50257", "does not match the tokenizer")
    missing = CliRunner().invoke(cli, ["train", "gpt-nano", "--smoke", "--hp", f"tokenizer={tmp_path}/nope.json"])
    assert_one_line_error(missing, "nope.json", "no such file")
    (tmp_path / "bad.json").write_text("{not json")
    bad = CliRunner().invoke(cli, ["train", "gpt-nano", "--smoke", "--hp", f"tokenizer={tmp_path}/bad.json"])
    assert_one_line_error(bad, "bad.json", "not a tokenizers tokenizer.json")
