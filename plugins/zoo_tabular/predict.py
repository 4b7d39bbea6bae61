"""``zoo predict BUNDLE rows.csv`` for a regressor bundle: CSV rows → standardised feature rows → values in the
targets' own units. ONNX Runtime and numpy only (no torch), from the ``role_info`` the graph carries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo_tabular.data import read_csv


def feature_rows(path: Path, info: dict[str, Any]) -> np.ndarray:
    """The CSV file's rows as the graph's input: its feature columns picked by name (in the graph's order; other
    columns, the target say, are ignored) and standardised with the training statistics the graph records."""
    header, rows = read_csv(path, min_rows=1)
    names = list(info["feature_names"])
    missing = [name for name in names if name not in header]
    if missing:
        raise ZooError(f"{path}: the model needs feature column(s) {missing}, which the header lacks; its columns "
                       f"are {', '.join(header)} and the model takes {', '.join(names)}")
    index = [header.index(name) for name in names]
    values = np.empty((len(rows), len(names)), np.float64)
    for r, row in enumerate(rows):
        if len(row) != len(header):
            raise ZooError(f"{path}: row {r + 2} has {len(row)} cells but the header names {len(header)} columns")
        for c, i in enumerate(index):
            try:
                values[r, c] = float(row[i])
            except ValueError:
                raise ZooError(f"{path}: row {r + 2}, column {names[c]!r} is {row[i]!r}, not a number") from None
    mean, std = np.asarray(info["feature_mean"]), np.asarray(info["feature_std"])
    return ((values - mean) / std).astype(np.float32)


def predict_rows(bundle_dir: str | Path, table: str | Path) -> list[dict[str, Any]]:
    """One ``{"row": n, "values": {target: value}}`` per CSV row (1 = the first data row), in the targets' units."""
    from zoo.bundles.manifest import Bundle
    from zoo.ort import CPU, session

    bundle = Bundle.open(bundle_dir)
    graphs = bundle.manifest.with_role("regressor")
    if not graphs:
        raise ZooError(f"{bundle.path} holds no regressor graph (roles: {', '.join(bundle.manifest.roles())})")
    graph = graphs[0]
    info = graph.role_info
    feeds = {info["input"]: feature_rows(Path(table), info)}
    values = session(str(bundle.graph_path(graph)), CPU).run([info["output"]], feeds)[0]
    values = np.asarray(values, np.float64).reshape(len(feeds[info["input"]]), -1)
    names = list(info["target_names"])
    return [{"row": r + 1, "values": {name: float(v) for name, v in zip(names, row, strict=True)}}
            for r, row in enumerate(values)]


def format_predictions(predictions: list[dict[str, Any]]) -> str:
    """``row 1: progression=152.3`` lines."""
    return "\n".join(f"row {p['row']}: " + ", ".join(f"{k}={v:.6g}" for k, v in p["values"].items())
                     for p in predictions)


def error_growth(reference: np.ndarray, variant: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """How much a variant's (int8, fp16) root-mean-square error on real rows grows over the fp32 graph's, in the
    targets' units and as a fraction of the fp32 error."""
    truth = truth.reshape(len(truth), -1).astype(np.float64)
    ref = float(np.sqrt(((reference.reshape(truth.shape) - truth) ** 2).mean()))
    got = float(np.sqrt(((variant.reshape(truth.shape) - truth) ** 2).mean()))
    return {"reference_rmse": ref, "rmse": got, "growth": (got - ref) / ref if ref > 0 else float(got > 0)}
