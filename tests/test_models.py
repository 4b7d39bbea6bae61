"""Every registered model, whoever registered it: build → forward → train → export → parity (CPU)."""

from __future__ import annotations

import numpy as np
import pytest

import zoo
from zoo.bundles import export_run
from zoo.registry import build_catalog

MODELS = sorted(build_catalog().models)


@pytest.mark.parametrize("name", MODELS)
def test_model_builds_and_runs_forward(name: str) -> None:
    import torch

    spec = zoo.get_spec(name)
    family = zoo.load_family(spec.family)
    model = zoo.create_model(name)
    assert isinstance(model, torch.nn.Module)
    assert family.optimizer_order, "a family steps at least one optimizer"
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(3, *spec.input.shape))
    outputs = out if isinstance(out, (tuple, list)) else (out,)
    assert all(o.shape[0] == 3 and torch.isfinite(o).all() for o in outputs)


@pytest.mark.parametrize("name", MODELS)
def test_model_trains_exports_and_passes_parity(name: str, train_briefly, tmp_path) -> None:
    run = train_briefly(name)
    assert (run.run_dir / "model.safetensors").exists()
    assert all(np.isfinite(v) for v in run.summary["metrics"].values())
    result = export_run(run.run_dir, out=tmp_path, providers=["cpu"])
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
