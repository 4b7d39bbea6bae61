"""The fine-tuning recipe: label smoothing, mixup/cutmix, parameter groups without weight decay on norms, biases,
embeddings and tokens, layer-wise learning-rate decay, ViT drop-path — each shown to change what it should, and a
run with all of them resumed bitwise on the CPU."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import zoo
from zoo.data import DataInfo, DataSplits
from zoo.errors import ZooError
from zoo.family import RunContext, draw_mix, make_optimizer, mix_inputs, param_groups

TINY = {"epochs": 2, "batch_size": 128, "progress": False, "deterministic": True}


def context(hp: dict, *, epoch: int = 1, step: int = 0) -> RunContext:
    info = DataInfo(name="t", channels=1, height=8, width=8, num_classes=3, class_names=["a", "b", "c"])
    empty = np.zeros((0, 1, 8, 8), np.float32)
    data = DataSplits(info, empty, np.zeros(0, np.int64), empty, np.zeros(0, np.int64))
    return RunContext(hyperparameters={"lr": 0.1, **hp}, data=data, epoch=epoch, step=step, seed=3)


def test_label_smoothing_changes_the_loss_by_the_formula() -> None:
    family = zoo.load_family("classifier")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    images, labels = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
    eps = 0.2
    loss = family.training_step(model, (images, labels), "model", context({"label_smoothing": eps}))["loss"]
    log_p = F.log_softmax(model(images), dim=1)
    expected = ((1 - eps) * -log_p.gather(1, labels[:, None]).squeeze(1) + eps * -log_p.mean(dim=1)).mean()
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    plain = family.training_step(model, (images, labels), "model", context({}))["loss"]
    assert float(plain) == pytest.approx(float(F.cross_entropy(model(images), labels)), rel=1e-6)
    assert abs(float(loss) - float(plain)) > 1e-3


def test_mixup_mixes_pairs_and_is_drawn_from_seed_epoch_and_step() -> None:
    images = torch.randn(8, 1, 8, 8)
    mix = draw_mix(8, 8, 8, {"mixup": 0.4}, seed=3, epoch=1, step=5)
    assert mix is not None and mix.box is None and 0.0 < mix.lam < 1.0
    assert sorted(mix.order.tolist()) == list(range(8)) and mix.order.tolist() != list(range(8))
    mixed = mix_inputs(images, mix)
    for i in range(8):
        assert torch.allclose(mixed[i], mix.lam * images[i] + (1 - mix.lam) * images[mix.order[i]])
    again = draw_mix(8, 8, 8, {"mixup": 0.4}, seed=3, epoch=1, step=5)
    assert again.lam == mix.lam and torch.equal(again.order, mix.order)
    other = draw_mix(8, 8, 8, {"mixup": 0.4}, seed=3, epoch=1, step=6)
    assert other.lam != mix.lam
    assert draw_mix(8, 8, 8, {"mixup": 0.4, "mix_off_epoch": 3}, seed=3, epoch=3, step=5) is None
    assert draw_mix(8, 8, 8, {}, seed=3, epoch=1, step=5) is None
    with pytest.raises(ZooError, match="Beta"):
        draw_mix(8, 8, 8, {"mixup": -1}, seed=3, epoch=1, step=5)


def test_cutmix_pastes_the_partners_box_and_weights_labels_by_its_area() -> None:
    images = torch.arange(4 * 16 * 16, dtype=torch.float32).reshape(4, 1, 16, 16)
    mix = next(m for step in range(50) if (m := draw_mix(4, 16, 16, {"cutmix": 1.0}, seed=0, epoch=1, step=step))
               and m.box and m.lam < 1.0)
    top, bottom, left, right = mix.box
    mixed = mix_inputs(images, mix)
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[top:bottom, left:right] = True
    assert torch.equal(mixed[:, :, inside], images[mix.order][:, :, inside])
    assert torch.equal(mixed[:, :, ~inside], images[:, :, ~inside])
    assert mix.lam == pytest.approx(1 - inside.sum().item() / 256)


def test_no_decay_groups_hold_norms_biases_embeddings_and_tokens() -> None:
    model = zoo.create_model("vit-tiny", in_channels=1, num_classes=3, image_size=[8, 8], stem="small")
    groups = param_groups(model, {"lr": 0.1, "weight_decay": 0.05})
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    exempt = {names[id(p)] for g in groups if g["weight_decay"] == 0 for p in g["params"]}
    assert decayed | exempt == set(names.values()) and not decayed & exempt
    assert {"pos_embed", "cls_token", "norm.weight", "norm.bias", "head.bias", "blocks.0.norm1.weight"} <= exempt
    assert {"head.weight", "blocks.0.attn.qkv.weight", "patch_embed.proj.weight"} <= decayed
    assert all(g["weight_decay"] == 0.05 for g in groups if g["weight_decay"] > 0)
    # weight_decay=0 means 0 for every group, AdamW included (no hidden default)
    optimizer = make_optimizer(param_groups(model, {"lr": 0.1, "weight_decay": 0.0}),
                               {"lr": 0.1, "optimizer": "adamw", "weight_decay": 0.0})
    assert all(group["weight_decay"] == 0.0 for group in optimizer.param_groups)
    one = param_groups(model, {"lr": 0.1, "weight_decay": 0.05, "no_decay_groups": 0})
    assert len(one) == 1 and one[0]["weight_decay"] == 0.05


def test_layer_decay_scales_each_depth_and_refuses_models_without_layers() -> None:
    model = zoo.create_model("vit-tiny", in_channels=1, num_classes=3, image_size=[8, 8], stem="small")
    groups = param_groups(model, {"lr": 1.0, "weight_decay": 0.0, "layer_decay": 0.5})
    lr_of = {n: g["lr"] for g in groups for n, p in model.named_parameters() if any(p is q for q in g["params"])}
    depth = len(model.blocks)  # layers: embeddings, the blocks, norm+head → depth + 2
    assert lr_of["head.weight"] == lr_of["norm.weight"] == 1.0
    assert lr_of[f"blocks.{depth - 1}.mlp.fc1.weight"] == 0.5
    assert lr_of["blocks.0.attn.qkv.weight"] == 0.5 ** depth
    assert lr_of["pos_embed"] == lr_of["patch_embed.proj.weight"] == 0.5 ** (depth + 1)
    with pytest.raises(ZooError, match="lr_layer_groups"):
        param_groups(zoo.create_model("cnn"), {"lr": 1.0, "layer_decay": 0.5})
    with pytest.raises(ZooError, match="layer_decay"):
        param_groups(model, {"lr": 1.0, "layer_decay": 1.5})


def test_drop_path_drops_whole_samples_in_training_only() -> None:
    model = zoo.create_model("vit-tiny", in_channels=1, num_classes=3, image_size=[8, 8], stem="small",
                             drop_path=0.5)
    rates = [block.drop_path for block in model.blocks]
    assert rates[0] == 0.0 and rates[-1] == 0.5 and rates == sorted(rates)
    x = torch.randn(32, 1, 8, 8)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(1)
    assert not torch.equal(a, model(x))
    branch = torch.ones(1000, 4, 8)
    kept = model.blocks[-1]._dropped(branch)
    per_sample = kept[:, 0, 0]
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}
    assert 0.4 < float((per_sample == 0).float().mean()) < 0.6
    with pytest.raises(ZooError, match="drop_path"):
        zoo.create_model("vit-tiny", in_channels=1, num_classes=3, image_size=[8, 8], stem="small", drop_path=1.0)


def test_the_recipe_trains_and_resumes_bitwise(tmp_path: Path) -> None:
    hp = {"label_smoothing": 0.1, "mixup": 0.2, "cutmix": 1.0, "mix_prob": 0.8, "mix_off_epoch": 2,
          "weight_decay": 0.01}
    options = {**TINY, "optimizer": "adamw", "hyperparameters": hp}
    whole = zoo.train("cnn", out=tmp_path, **options)
    part = zoo.train("cnn", out=tmp_path, max_steps=5, **options)
    resumed = zoo.train(resume=part.run_dir, progress=False)
    a, b = load_file(whole.run_dir / "model.safetensors"), load_file(resumed.run_dir / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (whole.run_dir / "metrics.jsonl").read_text() == (resumed.run_dir / "metrics.jsonl").read_text()
    plain = zoo.train("cnn", out=tmp_path, **{**options, "hyperparameters": {"weight_decay": 0.01}})
    c = load_file(plain.run_dir / "model.safetensors")
    assert not all(torch.equal(a[k], c[k]) for k in a), "the recipe changed nothing"
    assert math.isfinite(whole.summary["metrics"]["val_loss"])


def test_ema_weights_follow_the_recursion_are_validated_exported_and_resume_bitwise(tmp_path: Path) -> None:
    from zoo.engine.persistence import load_checkpoint

    decay = 0.7
    options = {**TINY, "ema": decay, "save_every": 1, "keep_last": 100}
    whole = zoo.train("cnn", out=tmp_path, **options)
    folder = whole.run_dir / "checkpoints"
    steps = sorted(folder.glob("step-*.safetensors"), key=lambda p: int(p.stem.split("-")[1]))
    assert len(steps) >= 4
    previous = None
    for path in steps[:4]:
        checkpoint = load_checkpoint(path)
        raw, average = checkpoint.prefixed("model/"), checkpoint.prefixed("ema/")
        assert raw.keys() == average.keys()
        if previous is not None:  # a_k = d * a_(k-1) + (1 - d) * w_k, exactly as the engine computes it
            for key, value in raw.items():
                if value.is_floating_point():
                    expected = previous[key].clone().mul_(decay).add_(value, alpha=1 - decay)
                    assert torch.equal(average[key], expected), key
        assert any(not torch.equal(raw[k], average[k]) for k in raw if raw[k].is_floating_point())
        previous = average
    final = load_file(whole.run_dir / "model.safetensors")
    last = load_checkpoint(folder / "last.safetensors")
    assert all(torch.equal(final[k], last.prefixed("ema/")[k]) for k in final), "the final weights are the average"
    # the validation metrics are the average's: re-evaluate the final (averaged) weights
    run = zoo.load_run(whole.run_dir)
    family = zoo.load_family("classifier")
    from zoo.data import load_run_data

    data = load_run_data(run.config)
    ctx = RunContext(hyperparameters=dict(run.config["hyperparameters"]), data=data)
    with torch.no_grad():
        metrics = family.evaluate(run.model.eval(), ctx)
    assert metrics["val_loss"] == pytest.approx(whole.summary["metrics"]["val_loss"], rel=1e-6)
    part = zoo.train("cnn", out=tmp_path, max_steps=5, **options)
    resumed = zoo.train(resume=part.run_dir, progress=False)
    b = load_file(resumed.run_dir / "model.safetensors")
    assert all(torch.equal(final[k], b[k]) for k in final)
    assert (whole.run_dir / "metrics.jsonl").read_text() == (resumed.run_dir / "metrics.jsonl").read_text()


def test_ema_is_refused_where_it_cannot_work(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match="--ema"):
        zoo.train("cnn", out=tmp_path, ema=1.5, **TINY)
    with pytest.raises(ZooError, match="--ema"):
        zoo.train("cnn", out=tmp_path, ema=0.9, strategy="fsdp", **TINY)
    assert not any(tmp_path.iterdir())
