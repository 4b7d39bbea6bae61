"""The ``regressor`` graph role's handlers (``zoo.role_handlers`` API): ``zoo predict BUNDLE rows.csv`` (CSV rows →
values in the targets' units), ``zoo deploy`` for python, node and the web (the feature standardisation inside
``model.onnx``, so a program feeds raw rows), and the int8/fp16 gate judged by error growth. No torch."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.role_handlers import (
    DeployPlan,
    DeployRequest,
    DeployVectors,
    GateEvidence,
    GateResult,
    PredictRequest,
    PredictRow,
    RoleHandlers,
)

#: A variant's root-mean-square error on the real validation rows may grow by at most this share of the fp32's.
MAX_ERROR_GROWTH = 0.05
#: The raw (unstandardised) feature rows a deployed graph takes.
RAW_INPUT = "rows"
PROGRAMS = {"python": ["run.py"], "node": ["run.js"], "web": ["index.html", "main.js"]}
NPM_PACKAGES = {"node": {"onnxruntime-node": "^1.20.0"}, "web": {"onnxruntime-web": "^1.20.0"}}
#: Validation rows the deployed program checks itself on.
VECTOR_ROWS = 16


class RegressorHandlers(RoleHandlers):
    """Regressors on rows of features (``zoo_tabular``'s ``regressor`` family, or any graph with this role)."""

    def predict(self, request: PredictRequest) -> list[PredictRow]:
        """Each CSV file's rows (a header naming the feature columns; other columns ignored) → one row each."""
        from zoo_tabular.predict import feature_rows

        info = request.graph.role_info
        session = request.session()
        rows = []
        for path in request.inputs:
            features = feature_rows(Path(path), info)
            values = np.asarray(session.run([info["output"]], {info["input"]: features})[0], np.float64)
            for number, row in enumerate(values.reshape(len(features), -1), start=1):
                named = {name: float(v) for name, v in zip(info["target_names"], row, strict=True)}
                rows.append(PredictRow(f"{Path(path).name}:{number}",
                                       ", ".join(f"{k}={v:.6g}" for k, v in named.items()), named))
        return rows

    def deploy(self, request: DeployRequest) -> DeployPlan:
        """``model.onnx`` taking raw feature rows (``(x - mean) / std`` inside), a program that reads CSV rows."""
        info = request.graph.role_info
        standardising_graph(request.bundle.graph_path(request.graph), request.folder / "model.onnx", info)
        deploy_info = {"role": request.graph.role, "target": request.target, "input": RAW_INPUT,
                       "output": info["output"], "feature_names": info["feature_names"],
                       "target_names": info["target_names"]}
        programs = {name: resources.files("zoo_tabular").joinpath("templates", name).read_text()
                    for name in PROGRAMS[request.target]}
        readme = (f"# {request.bundle.manifest.model} ({request.target})\n\nA regressor: CSV rows with the columns "
                  f"{', '.join(info['feature_names'])} (a header row first; other columns are ignored) → "
                  f"{', '.join(info['target_names'])} in their own units. The features are standardised inside "
                  "`model.onnx`. `--check` (python, node) or `?check=1` (web) compares with `vectors/`.\n")
        return DeployPlan(info=deploy_info, programs=programs, readme=readme, vectors=_vectors(request),
                          npm=NPM_PACKAGES.get(request.target, {}), pip=("onnxruntime", "numpy"))

    def gate(self, evidence: GateEvidence) -> GateResult:
        """The variant's RMSE on real validation rows against the fp32 graph's: it may grow by 5 % at most."""
        output = evidence.role_info["output"]
        cases = [case for case in evidence.real_cases() if case.labels is not None]
        rule = f"RMSE on real rows grows by at most {100 * MAX_ERROR_GROWTH:g} % over fp32"
        if not cases:
            return GateResult(True, "element tolerance (no labelled real rows)")
        from zoo_tabular.predict import error_growth

        reference = np.concatenate([np.asarray(c.reference[output]).reshape(len(c.labels), -1) for c in cases])
        variant = np.concatenate([np.asarray(c.outputs[output]).reshape(len(c.labels), -1) for c in cases])
        truth = np.concatenate([np.asarray(c.labels).reshape(len(c.labels), -1) for c in cases])
        growth = error_growth(reference, variant, truth)
        return GateResult(growth["growth"] <= MAX_ERROR_GROWTH, rule,
                          {"rmse": growth["rmse"], "reference_rmse": growth["reference_rmse"],
                           "error_growth": growth["growth"]})


def standardising_graph(source: Path, target: Path, info: dict[str, Any]) -> None:
    """The regressor graph with ``(rows - mean) / std`` in front: it takes raw feature rows as ``rows``."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    original = next((i for i in graph.input if i.name == info["input"]), None)
    if original is None:
        raise ZooError(f"{source}: the graph has no input {info['input']!r}; export the bundle again")
    count = len(info["feature_names"])
    graph.input.remove(original)
    graph.input.insert(0, helper.make_tensor_value_info(RAW_INPUT, onnx.TensorProto.FLOAT, ["batch", count]))
    graph.initializer.extend([numpy_helper.from_array(np.asarray(info["feature_mean"], np.float32), "feature_mean"),
                              numpy_helper.from_array(np.asarray(info["feature_std"], np.float32), "feature_std")])
    for node in reversed([helper.make_node("Sub", [RAW_INPUT, "feature_mean"], ["rows_centred"]),
                          helper.make_node("Div", ["rows_centred", "feature_std"], [info["input"]])]):
        graph.node.insert(0, node)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


def _vectors(request: DeployRequest) -> DeployVectors:
    """Real validation rows, raw again, and what the deployed graph gives for them."""
    from zoo.bundles.vectors import read_test_set
    from zoo.ort import CPU, session

    info = request.graph.role_info
    real = next((s for s in request.graph.test_sets if "real" in s.inputs), None)
    if real is None:
        raise ZooError(f"{request.bundle.path}: the regressor graph has no real test rows; export the bundle again")
    (x, *_), _ = read_test_set(request.bundle.path / real.dir)
    rows = (x[:VECTOR_ROWS] * np.asarray(info["feature_std"], np.float32)
            + np.asarray(info["feature_mean"], np.float32)).astype(np.float32)
    values = session(str(request.folder / "model.onnx"), CPU).run([info["output"]], {RAW_INPUT: rows})[0]
    tolerance = 1e-4 * max(1.0, float(np.abs(values).max()))
    return DeployVectors({RAW_INPUT: rows}, {info["output"]: values}, {info["output"]: tolerance})
