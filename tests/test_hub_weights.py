"""``--init hf:ORG/NAME``: weights from a folder laid out like the local Hugging Face cache, found offline (nothing
is downloaded), with a ViT's position embedding resampled when the image size differs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import zoo

TIMM_CONFIG = {"architecture": "vit_tiny_patch16_224", "num_classes": 10, "pretrained_cfg": {
    "input_size": [3, 32, 32], "interpolation": "bicubic", "crop_pct": 0.9, "crop_mode": "center",
    "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "num_classes": 10, "first_conv": "patch_embed.proj",
    "classifier": "head"}}


def cached_model(cache: Path, repo: str, state: dict[str, torch.Tensor], config: dict) -> Path:
    """``repo`` as huggingface_hub lays it out: blobs behind a snapshot named by the commit ``refs/main`` holds."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "model.safetensors"))
    (snapshot / "config.json").write_text(json.dumps(config))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(snapshot.name)
    return snapshot


def zoo_cli(cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env=env, timeout=600)


def test_a_vit_at_another_image_size_gets_its_position_embedding_resampled() -> None:
    big = zoo.create_model("vit-tiny", in_channels=3, num_classes=10, image_size=[32, 32], stem="small")
    small = zoo.create_model("vit-tiny", in_channels=3, num_classes=10, image_size=[16, 16], stem="small")
    state = small.import_state_dict(big.state_dict(), {})
    saved = big.pos_embed.detach()
    grid = saved[:, 1:].reshape(1, 8, 8, -1).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(4, 4), mode="bicubic", antialias=True, align_corners=False)
    assert state["pos_embed"].shape == small.pos_embed.shape == (1, 17, big.pos_embed.shape[-1])
    assert torch.equal(state["pos_embed"][:, :1], saved[:, :1])
    assert torch.allclose(state["pos_embed"][:, 1:], expected.permute(0, 2, 3, 1).reshape(1, 16, -1))
    small.load_state_dict(state)  # everything else fits as it is
    same = small.import_state_dict(small.state_dict(), {})
    assert same["pos_embed"] is small.state_dict()["pos_embed"] or torch.equal(same["pos_embed"], small.pos_embed)


def test_the_weights_own_normalisation_becomes_the_runs(tmp_path: Path) -> None:
    source = zoo.create_model("vit-tiny", in_channels=3, num_classes=10, image_size=[32, 32], stem="small")
    cached_model(tmp_path / "hub", "timm/vit_tiny.test", source.state_dict(), TIMM_CONFIG)
    result = zoo_cli(tmp_path / "hub", "train", "vit-tiny", "--init", "hf:timm/vit_tiny.test", "--arg", "stem=small",
                     "--channels", "3", "--smoke", "--out", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr
    assert "states its inputs: mean [0.5, 0.5, 0.5] std [0.5, 0.5, 0.5], image size 32x32" in result.stderr
    config = json.loads(next((tmp_path / "runs").glob("*/config.json")).read_text())
    assert config["init"]["origin"].startswith("hf:timm/vit_tiny.test (snapshot 0123456789")
    assert config["data"]["mean"] == [0.5] * 3 and config["data"]["std"] == [0.5] * 3
    assert (config["data"]["height"], config["data"]["width"]) == (32, 32)
    assert config["data_options"]["normalize"]["source"] == "weights: hf:timm/vit_tiny.test"
    # an explicit --normalize wins over the weights'
    again = zoo_cli(tmp_path / "hub", "train", "vit-tiny", "--init", "hf:timm/vit_tiny.test", "--arg", "stem=small",
                    "--channels", "3", "--image-size", "16x16", "--normalize", "data", "--smoke",
                    "--out", str(tmp_path / "runs2"))
    assert again.returncode == 0, again.stderr
    config = json.loads(next((tmp_path / "runs2").glob("*/config.json")).read_text())
    assert config["data"]["mean"] != [0.5] * 3 and config["data_options"]["normalize"] is None
    # nothing is downloaded: an id that is not in the cache is one line saying how to fetch it
    missing = zoo_cli(tmp_path / "hub", "train", "vit-tiny", "--init", "hf:timm/not_there", "--arg", "stem=small",
                      "--smoke", "--out", str(tmp_path / "runs3"))
    errors = [line for line in missing.stderr.splitlines() if line.startswith("Error:")]
    assert missing.returncode == 2 and len(errors) == 1 and "Traceback" not in missing.stderr, missing.stderr
    assert "not in the local Hugging Face cache" in errors[0] and "hf download timm/not_there" in errors[0]
    assert not (tmp_path / "runs3").exists()
    bad = zoo_cli(tmp_path / "hub", "train", "vit-tiny", "--init", "hf:no-slash", "--arg", "stem=small", "--smoke")
    assert bad.returncode == 2 and "hf:ORG/NAME" in bad.stderr


def test_normalize_imagenet_given_and_refused(tmp_path: Path) -> None:
    from zoo.data.normalize import IMAGENET_MEAN, IMAGENET_STD

    run = zoo.train("cnn", normalize="imagenet", channels=3, smoke=True, epochs=1, out=tmp_path, progress=False)
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["data"]["mean"] == list(IMAGENET_MEAN) and config["data"]["std"] == list(IMAGENET_STD)
    bundle = zoo.export(run.run_dir, out=tmp_path / "exports", providers=["cpu"]).bundle_dir
    assert "ImageNet's (--normalize imagenet)" in (bundle / "card.md").read_text()
    import onnx

    props = {p.key: p.value for p in onnx.load(str(bundle / "model" / "model.onnx"), load_external_data=False)
             .metadata_props}
    assert json.loads(props["normalization"])["mean"] == list(IMAGENET_MEAN)  # what predict and deploy apply
    grey = zoo.train("cnn", normalize="0.5/0.25", smoke=True, epochs=1, out=tmp_path, progress=False)
    config = json.loads((grey.run_dir / "config.json").read_text())
    assert config["data"]["mean"] == [0.5] and config["data"]["std"] == [0.25]
    for bad in ("0.5", "a/b", "0.5/0", "0.1,0.2/0.3"):
        result = subprocess.run([sys.executable, "-m", "zoo", "train", "cnn", "--smoke", "--normalize", bad,
                                 "--out", str(tmp_path / "bad")], capture_output=True, text=True, timeout=300)
        assert result.returncode == 2 and "--normalize" in result.stderr and "Traceback" not in result.stderr, bad
    text = subprocess.run([sys.executable, "-m", "zoo", "train", "gpt-nano", "--smoke", "--normalize", "imagenet",
                           "--out", str(tmp_path / "bad")], capture_output=True, text=True, timeout=300)
    assert text.returncode == 2 and "--normalize" in text.stderr
    assert not (tmp_path / "bad").exists()
