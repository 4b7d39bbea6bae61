"""The ``sampler`` and ``decoder`` roles: a graph that returns 8-bit pixels from seeded noise (``zoo deploy``;
``zoo sample`` draws from them too), and a variant gate on the pixels the samples become."""

from __future__ import annotations

import numpy as np

from zoo.role_handlers import DeployPlan, DeployRequest, GateEvidence, GateResult, RoleHandlers

#: A variant's samples may differ from the fp32 graph's by at most this many 8-bit grey levels on average
#: (drawn from the same noise; 8 of 255 is about 3 %).
MAX_MEAN_PIXEL_LEVELS = 8.0


class SamplerHandlers(RoleHandlers):
    """Samplers (generators) and decoders: noise [, label] → image."""

    def deploy(self, request: DeployRequest) -> DeployPlan:
        from zoo.deploy.images import image_plan

        return image_plan(request, "sampler")

    def gate(self, evidence: GateEvidence) -> GateResult:
        """The mean absolute difference of the samples as 8-bit pixels (every case: a sampler's random inputs
        are the noise it is drawn from)."""
        info = evidence.role_info
        output = info.get("output")
        rule = f"mean pixel difference ≤ {MAX_MEAN_PIXEL_LEVELS:g} of 255 levels"
        diffs = [np.abs(_levels(case.reference[output], evidence) - _levels(case.outputs[output], evidence))
                 for case in evidence.cases if output in case.reference]
        if not diffs:
            return GateResult(True, rule)
        mean = float(np.mean(np.concatenate([d.ravel() for d in diffs])))
        return GateResult(mean <= MAX_MEAN_PIXEL_LEVELS, rule, {"mean_pixel_levels": mean})


def _levels(images: np.ndarray, evidence: GateEvidence) -> np.ndarray:
    """Model output → 8-bit levels (as floats), through the data's normalisation unless already in [0, 1]."""
    import json

    images = np.asarray(images, np.float64)
    if evidence.role_info.get("pixel_space", "model_input") == "model_input" and "normalization" in evidence.metadata:
        norm = json.loads(evidence.metadata["normalization"])
        shape = (1, -1) + (1,) * (images.ndim - 2)
        images = images * np.asarray(norm["std"]).reshape(shape) + np.asarray(norm["mean"]).reshape(shape)
    return np.clip(images, 0.0, 1.0) * 255.0
