"""The ``regressor`` family: MSE on standardised targets; MAE, RMSE and R² in the targets' own units beside a
predict-the-mean baseline; a features → values graph of the ``regressor`` role."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from zoo.data import DataInfo, DataSplits
from zoo.family import (
    Family,
    GraphSpec,
    InputSpace,
    ReportContext,
    ReportImage,
    ReportSection,
    ReportTable,
    RunContext,
)
from zoo.specs import ModelSpec
from zoo.toolkit.graphs import data_graph

#: The graph role this plugin registers (``register_roles`` in ``zoo_tabular``).
ROLE = "tabular:regressor"


def regressor_info(*, input: str, output: str, data: DataInfo) -> dict[str, Any]:
    """``role_info`` of a regressor graph: its input and output names, the feature columns it takes (names,
    training mean and std: input = (x - mean) / std) and the target columns it gives (names, mean, std)."""
    features, target = data.features, data.target
    if features is None:
        raise ValueError("a regressor graph needs feature data (DataInfo.features)")
    return {"input": input, "output": output, "feature_names": list(features.names),
            "feature_mean": list(features.mean), "feature_std": list(features.std),
            "target_names": list(target.names), "target_mean": list(target.mean), "target_std": list(target.std)}


def rows(x: np.ndarray, y: np.ndarray, batch_size: int, device: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Validation batches as tensors on ``device``, in order."""
    for start in range(0, len(x), batch_size):
        yield (torch.from_numpy(np.asarray(x[start : start + batch_size])).to(device),
               torch.from_numpy(np.asarray(y[start : start + batch_size])).to(device))


def predict(model: torch.nn.Module, data: DataSplits, device: Any) -> np.ndarray:
    """The model's N×T predictions on the validation rows, in the targets' units."""
    return np.concatenate([model(x).reshape(len(x), -1).float().cpu().numpy()
                           for x, _ in rows(data.x_val, data.y_val, 512, device)])


def errors(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R² (averaged over target columns), in the targets' units."""
    truth = truth.reshape(len(truth), -1).astype(np.float64)
    residual = predicted.astype(np.float64) - truth
    spread = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
    r2 = 1.0 - (residual**2).sum(axis=0) / np.where(spread > 0, spread, 1.0)
    return {"mae": float(np.abs(residual).mean()), "rmse": float(np.sqrt((residual**2).mean(axis=0)).mean()),
            "r2": float(r2.mean())}


class RegressorFamily(Family):
    """Regression on rows of features: the loss is the MSE of standardised targets, so columns in different
    units weigh alike; validation reports errors in the targets' own units and a predict-the-mean baseline."""

    monitor = ("val_rmse", "min")
    hyperparameters = {"optimizer": "adam", "weight_decay": 0.0}  # noqa: RUF012

    def data_args(self, spec: ModelSpec, data: DataInfo) -> dict[str, Any]:
        features = data.features.count if data.features is not None else spec.model_args.get("in_features")
        return {"in_features": features, "out_features": data.target.columns,
                "target_mean": list(data.target.mean), "target_std": list(data.target.std)}

    def training_step(self, model: torch.nn.Module, batch: Any, optimizer: str,
                      ctx: RunContext) -> dict[str, torch.Tensor]:
        features, targets = batch
        std = torch.as_tensor(ctx.data.info.target.std, dtype=torch.float32, device=features.device)
        residual = (model(features) - targets.reshape(len(targets), -1)) / std
        return {"loss": (residual**2).mean()}

    def evaluate(self, model: torch.nn.Module, ctx: RunContext) -> dict[str, float]:
        data, target = ctx.data, ctx.data.info.target
        predicted = predict(model, data, ctx.device)
        truth = np.asarray(data.y_val).reshape(len(predicted), -1)
        std = np.asarray(target.std)
        baseline = errors(np.broadcast_to(np.asarray(target.mean, np.float32), truth.shape), truth)
        ours = errors(predicted, truth)
        return {"val_loss": float((((predicted - truth) / std) ** 2).mean()),
                **{f"val_{k}": v for k, v in ours.items()},
                "val_baseline_mae": baseline["mae"], "val_baseline_rmse": baseline["rmse"]}

    def graphs(self, model: torch.nn.Module, data: DataInfo) -> list[GraphSpec]:
        """Standardised features → values; the variant gate judges error growth on the validation rows."""
        count = data.features.count if data.features is not None else 0
        return [data_graph(model, input_name="features", output_name="values", sample_shape=(count,), role=ROLE,
                           role_info=regressor_info(input="features", output="values", data=data))]

    def report_sections(self, context: ReportContext) -> list[ReportSection]:
        """Predicted against true values, residuals, and the errors beside the predict-the-mean baseline."""
        from zoo_tabular.charts import residual_histogram, scatter

        model, data = context.model_and_data()
        predicted = predict(model, data, "cpu")
        truth = np.asarray(data.y_val).reshape(len(predicted), -1)
        target = data.info.target
        table_rows, images = [], []
        for i, name in enumerate(target.names):
            ours = errors(predicted[:, i : i + 1], truth[:, i : i + 1])
            base = errors(np.full_like(truth[:, i : i + 1], target.mean[i]), truth[:, i : i + 1])
            table_rows.append([name, ours["mae"], base["mae"], ours["rmse"], base["rmse"], ours["r2"]])
            images.append(ReportImage(scatter(truth[:, i], predicted[:, i]),
                                      f"{name}: predicted (up) against true (across); the line is perfect"))
            images.append(ReportImage(residual_histogram(predicted[:, i] - truth[:, i]),
                                      f"{name}: residuals (predicted − true), {len(truth)} validation rows"))
        table = ReportTable(["target", "MAE", "baseline MAE", "RMSE", "baseline RMSE", "R²"], table_rows,
                            caption="validation errors in the targets' units; the baseline predicts the training mean")
        return [ReportSection("Regression", text="Errors on the validation rows, in the targets' own units.",
                              tables=[table], images=images)]

    def input_space(self, model: torch.nn.Module, data: DataInfo) -> InputSpace:
        """``zoo explain``: CSV rows as ``zoo predict`` reads them, attributed per column
        (:mod:`zoo_tabular.explain`)."""
        from zoo_tabular.explain import input_space

        return input_space(model, data)
