"""The built-in vision plugin: published architectures, `zoo info --flops`, `--init` weights, train + export.

Parameter names and shapes are checked against lists written once from the real torchvision 0.29.1 and
timm 1.0.31 (tests/data/vision_keys/). Training runs at 16×16 (`stem=small`) so the suite stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli
from zoo.errors import ZooError
from zoo.registry import build_catalog

from .helpers import assert_one_line_error

KEYS = Path(__file__).parent / "data" / "vision_keys"
VISION = sorted(name for name, spec in build_catalog().models.items() if spec.plugin == "vision")
PUBLISHED = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
             "vit-tiny": 5_717_416, "vit-small": 22_050_664, "vit-base": 86_567_656}
#: Small settings: digits as 3×16×16 images, 4×4 ViT patches and the 3×3 ResNet stem.
SMALL = {"image_size": "16x16", "channels": 3, "batch_size": 8, "lr": 0.01, "smoke": True, "progress": False}
SMALL_ARGS = {"stem": "small"}


def published_keys(name: str) -> list[tuple[str, str]]:
    lines = [line.rstrip("\n") for line in (KEYS / f"{name}.txt").read_text().splitlines()]
    return [tuple(line.partition(" ")[::2]) for line in lines if line and not line.startswith("#")]


def test_the_six_models_are_registered_in_the_classifier_family() -> None:
    assert sorted(PUBLISHED) == VISION
    assert all(zoo.get_spec(name).family == "classifier" for name in VISION)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_names_and_shapes_match_the_published_model(name: str) -> None:
    import torch

    with torch.device("meta"):  # shapes only: no weights to initialise
        model = zoo.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED[name]
    ours = [(key, "x".join(map(str, value.shape))) for key, value in model.state_dict().items()]
    assert ours == published_keys(name)


def test_small_stem_fits_32x32_and_keeps_the_names() -> None:
    import torch

    for name in ("resnet18", "vit-tiny"):
        args: dict[str, Any] = {"stem": "small", "num_classes": 10}
        if name.startswith("vit"):
            args["image_size"] = [32, 32]
        model = zoo.create_model(name, **args).eval()
        with torch.no_grad():
            assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
        assert [k for k, _ in published_keys(name)] == list(model.state_dict())
    with pytest.raises(ZooError, match="not a multiple of the 16×16 patch"):
        zoo.create_model("vit-tiny", image_size=[30, 30])


def test_info_shows_parameters_and_flops_on_request() -> None:
    out = CliRunner().invoke(cli, ["info", "resnet18", "--flops"])
    assert out.exit_code == 0, out.output
    assert "11,689,512" in out.output and "3.63 GFLOPs per image at 3×224×224" in out.output
    data = json.loads(CliRunner().invoke(cli, ["info", "vit-tiny", "--flops", "--json", "--arg", "stem=small",
                                               "--arg", "image_size=32", "--arg", "num_classes=10"]).output)
    assert data["stats"]["input"] == [3, 32, 32] and data["stats"]["parameters"] == data["stats"]["trainable"]
    plain = CliRunner().invoke(cli, ["info", "vit-base"])
    assert "86.6 M parameters" in plain.output and "flops" not in plain.output


# --- weights users already have ---------------------------------------------------------------------

def published_file(tmp_path: Path, name: str, num_classes: int = 1000, pickle: bool = False, **args: Any) -> Path:
    """A safetensors file with the published key names (our model is checked against them above)."""
    from safetensors.torch import save_file

    model = zoo.create_model(name, num_classes=num_classes, **args)
    path = tmp_path / f"{name}-published.{'pth' if pickle else 'safetensors'}"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"origin": f"test://{name}"})
    return path


@pytest.fixture(scope="module")
def init_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """resnet18 (torchvision layout, backbone frozen) and vit-tiny (timm layout) fine-tuned from files."""
    tmp = tmp_path_factory.mktemp("init")
    files = {"resnet18": published_file(tmp, "resnet18", stem="small"),
             "vit-tiny": published_file(tmp, "vit-tiny", stem="small", image_size=[16, 16])}
    runs = {name: zoo.train(name, **SMALL, model_args=SMALL_ARGS, out=tmp / "runs", init=str(path),
                            freeze_backbone=name == "resnet18")
            for name, path in files.items()}
    return {"files": files, "runs": runs, "out": tmp}


def test_init_loads_published_layouts_records_them_and_replaces_the_head(init_runs: dict[str, Any]) -> None:
    from safetensors.torch import load_file

    from zoo.digest import file_sha256 as sha256_of

    for name, run in init_runs["runs"].items():
        config = json.loads((run.run_dir / "config.json").read_text())
        path = init_runs["files"][name]
        assert config["init"]["sha256"] == sha256_of(path) and config["init"]["origin"] == f"test://{name}"
        assert config["init"]["head"] == ("fc" if name == "resnet18" else "head")
        published, trained = load_file(str(path)), load_file(str(run.run_dir / "model.safetensors"))
        head = config["init"]["head"]
        assert published[f"{head}.weight"].shape[0] == 1000 and trained[f"{head}.weight"].shape[0] == 10
        frozen = name == "resnet18"
        for key in ("conv1.weight", "bn1.running_mean", "layer4.1.bn2.weight") if frozen else ("pos_embed",):
            assert published[key].equal(trained[key]) is frozen, key
        if not frozen:  # loaded, then 6 AdamW steps of about lr each: near the file (a fresh init is ~0.1 off)
            assert (published["pos_embed"] - trained["pos_embed"]).abs().max() < 7 * SMALL["lr"]


@pytest.mark.parametrize("name", ["resnet18", "vit-tiny"])
def test_fine_tuned_runs_export_with_int8_and_fp16_variants_and_the_card_names_the_weights(
        name: str, init_runs: dict[str, Any]) -> None:
    """One model of each architecture through int8 and fp16 (the others differ in depth and width only;
    resnet50 and vit-base at 224×224 are in benchmarks/vision_export.py)."""
    from zoo.bundles import export_run
    from zoo.bundles.manifest import Bundle

    result = export_run(init_runs["runs"][name].run_dir, out=init_runs["out"] / "exports", providers=["cpu"],
                        quantize="int8", fp16=True)
    assert set(result.manifest["graphs"]) == {"model", "model.int8", "model.fp16"}
    assert result.parity["passed"], {g: p["CPUExecutionProvider"]["passed"] for g, p in result.parity["graphs"].items()}
    card = (result.bundle_dir / "card.md").read_text()
    assert "## Starting weights" in card and f"test://{name}" in card
    assert ("linear probe" in card) == (name == "resnet18")
    graph = Bundle.open(result.bundle_dir).manifest.graphs["model"]
    assert graph.role == "classifier", "the classifier family gives the vision models' graphs their role"


def test_init_refuses_pickles_and_names_mismatched_keys(tmp_path: Path) -> None:
    pickle = tmp_path / "weights.pth"
    pickle.write_bytes(b"not read")
    out = CliRunner().invoke(cli, ["train", "resnet18", "--init", str(pickle), "--out", str(tmp_path / "runs")])
    assert_one_line_error(out, "safetensors only", "torch.load", "weights_only=True", "weights.safetensors")
    wrong = published_file(tmp_path, "resnet34")  # deeper stages, standard stem
    out = CliRunner().invoke(cli, ["train", "resnet18", "--init", str(wrong), "--image-size", "16x16", "--channels",
                                   "3", "--arg", "stem=small", "--smoke", "--out", str(tmp_path / "runs")])
    # the model is built (and says how the data adapted it) before the file is read: the error is the last line
    assert out.exit_code == 2 and "Traceback" not in out.output
    error = out.output.strip().splitlines()[-1]
    for fragment in ("does not fit model 'resnet18'", "unexpected (layer1.2.", "mis-shaped (conv1.weight"):
        assert error.startswith("Error: ") and fragment in error, out.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "no run folder is left"
    out = CliRunner().invoke(cli, ["train", "resnet18", "--init", str(tmp_path / "nope.safetensors"), "--smoke",
                                   "--out", str(tmp_path / "runs")])
    assert out.exit_code == 2 and "nope.safetensors does not exist" in out.output.strip().splitlines()[-1]


# --- every model trains (or, for vit-base, runs on the meta device); resnet18 exports above ------------

@pytest.mark.parametrize("name", ["resnet34", "vit-small"])
def test_mid_size_models_take_a_training_step_through_the_engine(name: str, tmp_path: Path) -> None:
    run = zoo.train(name, **{**SMALL, "batch_size": 4}, model_args=SMALL_ARGS, max_steps=1, out=tmp_path)
    assert run.summary["steps"] == 1 and run.summary["stopped"] == "max_steps"


def test_resnet50_builds_and_takes_one_step_at_a_small_size() -> None:
    """Construction and one optimizer step only: a checkpoint of it is too slow for the suite."""
    import torch

    model = zoo.create_model("resnet50", stem="small", num_classes=10)
    first = next(iter(model.state_dict()))
    before = model.state_dict()[first].clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(2, 3, 16, 16)), torch.tensor([1, 2]))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and not before.equal(model.state_dict()[first])


def test_vit_base_runs_forward_and_backward_on_the_meta_device() -> None:
    """vit-base is vit-tiny's code, wider and deeper: its shapes are checked without initialising 86 M weights."""
    import torch

    with torch.device("meta"):
        model = zoo.create_model("vit-base", stem="small", num_classes=10, image_size=[16, 16])
        loss = torch.nn.functional.cross_entropy(model(torch.randn(2, 3, 16, 16)), torch.tensor([1, 2]))
        loss.backward()
    assert loss.shape == () and all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


def test_init_drops_a_common_prefix_keeps_num_batches_optional_and_rejects_corrupt_files(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from zoo.engine.adapt import load_init

    source = zoo.create_model("resnet18", stem="small", num_classes=3)
    state = {f"module.{k}": v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "ddp.safetensors"
    save_file(state, str(path))
    target = zoo.create_model("resnet18", stem="small", num_classes=3)
    record = load_init(target, path, "resnet18", say=False)
    assert record.head is None and record.origin == str(path.resolve()) and record.tensors == len(state)
    assert target.state_dict()["layer3.1.conv2.weight"].equal(source.state_dict()["layer3.1.conv2.weight"])
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ZooError, match="not a readable safetensors file"):
        load_init(target, broken, "resnet18")
