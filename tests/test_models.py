"""Every registered model, whoever registered it: build → forward → train → export → parity (CPU)."""

from __future__ import annotations

import numpy as np
import pytest

import zoo
from zoo.data import DataInfo, TextInfo
from zoo.registry import build_catalog

from .helpers import briefly_trained_models

# The real-size vision models are covered at small sizes by tests/test_vision.py (224×224 is too slow here).
MODELS = sorted(name for name, spec in build_catalog().models.items() if spec.plugin != "vision")


def default_data_info(spec) -> DataInfo:
    """Data shaped like the model's default input (what the benchmark uses too); byte-level text for language models."""
    if spec.family == "lm":
        from zoo_lm.tokenizer import byte_tokenizer_json

        text = TextInfo(tokenizer="bytes", vocab_size=256, context=spec.model_args["context"],
                        tokenizer_json=byte_tokenizer_json())
        return DataInfo(name="test", channels=1, height=1, width=1, num_classes=0, kind="text", text=text)
    from zoo.data import FeatureInfo, TargetInfo
    from zoo.data.kinds import accepted_kinds

    if accepted_kinds(spec)[0][0] == "features":  # rows of the spec's default width, one real target
        count = int(spec.model_args.get("in_features", spec.input.width))
        return DataInfo(name="test", kind="features", features=FeatureInfo([f"x{i}" for i in range(count)],
                                                                           [0.0] * count, [1.0] * count),
                        target=TargetInfo("real", ["y"], [0.0], [1.0]))
    classes = int(spec.model_args.get("num_classes", 10))
    return DataInfo(name="test", channels=spec.input.channels, height=spec.input.height, width=spec.input.width,
                    num_classes=classes, class_names=[str(i) for i in range(classes)],
                    mean=[0.0] * spec.input.channels, std=[1.0] * spec.input.channels)


@pytest.mark.parametrize("name", MODELS)
def test_model_builds_and_every_graph_runs_forward(name: str) -> None:
    import torch

    spec = zoo.get_spec(name)
    family = zoo.load_family(spec.family)
    info = default_data_info(spec)
    model = family.build(spec, info, {**spec.model_args, **family.data_args(spec, info)})
    assert isinstance(model, torch.nn.Module)
    assert family.optimizer_order, "a family steps at least one optimizer"
    model.eval()
    graphs = family.graphs(model, info)
    assert graphs and len({g.name for g in graphs}) == len(graphs)
    for graph in graphs:
        inputs = graph.random_inputs(3, np.random.default_rng(0))
        assert len(inputs) == len(graph.input_names)
        with torch.no_grad():
            out = graph.module(*(torch.from_numpy(a) for a in inputs))
        outputs = out if isinstance(out, (tuple, list)) else (out,)
        assert len(outputs) == len(graph.output_names)
        assert all(o.shape[0] == 3 and torch.isfinite(o).all() for o in outputs)
        _check_role(graph, inputs, dict(zip(graph.output_names, outputs, strict=True)), info)
    assert any(g.role for g in graphs), "every built-in model says what at least one of its graphs is"


def _check_role(graph, inputs, outputs, info: DataInfo) -> None:
    """What a graph's role promises holds for its real inputs and outputs."""
    feeds = dict(zip(graph.input_names, inputs, strict=True))
    if graph.role == "classifier":
        assert outputs[graph.role_info["output"]].shape[1] == graph.role_info["num_classes"] == info.num_classes
    elif graph.role in ("sampler", "decoder"):
        assert feeds[graph.role_info["latent_input"]].shape[1] == graph.role_info["latent_dim"]
        assert tuple(outputs[graph.role_info["output"]].shape[1:]) == info.shape
    elif graph.role == "tabular:regressor":
        assert feeds[graph.role_info["input"]].shape[1] == len(graph.role_info["feature_names"])
        assert outputs[graph.role_info["output"]].shape[1] == len(graph.role_info["target_names"])
    elif graph.role == "encoder":
        assert tuple(feeds[graph.role_info["image_input"]].shape[1:]) == info.shape
        assert outputs[graph.role_info["latent_output"]].shape[1] == graph.role_info["latent_dim"]


@pytest.mark.parametrize("name", briefly_trained_models())
def test_model_trains_exports_and_passes_parity(name: str, train_briefly, export_briefly) -> None:
    run = train_briefly(name)
    assert (run.run_dir / "model.safetensors").exists()
    assert (run.run_dir / "loss_curve.png").stat().st_size > 0, "every run of every family gets a loss curve"
    assert all(np.isfinite(v) for v in run.summary["metrics"].values())
    result = export_briefly(name)
    assert result.parity["passed"], result.parity
    for graph in result.parity["graphs"].values():
        cpu = graph["CPUExecutionProvider"]
        inputs = {c["inputs"] for c in cpu["checks"]}
        assert {"random-batch1", "random-batch16"} <= inputs, "batch 1 and a larger batch are both checked"
        assert all(c["mismatched"] == 0 for c in cpu["checks"])
    manifest = result.manifest
    for graph in manifest["graphs"].values():
        assert graph["inputs"][0]["shape"][0] == "batch", "the batch axis stays dynamic"
        assert graph["opset"] == 18
        assert graph["metadata"]["model"] == name
