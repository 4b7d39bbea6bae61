"""``zoo explain`` for regressors: attributions per CSV column (the family's
:meth:`~zoo.family.Family.input_space`; docs/explain.md).

The model's input, a row of standardised features, is what is attributed, one value per column. The baseline
is the training mean row (standardised: all zeros), so Integrated Gradients' attributions sum to the predicted
value minus the prediction for the mean row; occlusion replaces one column at a time by its training mean.
CSV files are read exactly as ``zoo predict`` reads them (:func:`zoo_tabular.predict.feature_rows`), one
explanation per row and target column; the values shown beside the columns are the CSV's own (unstandardised).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.data import DataInfo
from zoo.family import InputSpace

#: Integrated Gradients' steps for a row of features: a ReLU network's kinks leave 64 Gauss-Legendre steps short
#: of the completeness tolerance on a few diabetes rows (2 of 32 for tab-mlp); 1024 pass them all, and cost nothing
#: on ten features (benchmarks/results/explain_checks-tab-mlp.md).
IG_STEPS = 1024


def input_space(model: torch.nn.Module, data: DataInfo) -> InputSpace:
    """The regressor's input space: CSV rows (or ``val:INDEX``) → standardised features, per column."""
    from zoo_tabular.charts import attribution_bars
    from zoo_tabular.family import regressor_info
    from zoo_tabular.predict import feature_rows

    info = regressor_info(input="features", output="values", data=data)
    mean, std = np.asarray(info["feature_mean"]), np.asarray(info["feature_std"])
    columns = list(info["feature_names"])

    def read(path: str) -> tuple[list[str], np.ndarray]:
        rows = feature_rows(Path(path), info)
        return [f"{Path(path).name}:{number}" for number in range(1, len(rows) + 1)], rows

    def shown(row: Any) -> np.ndarray:
        return np.asarray(row, np.float64) * std + mean

    def picture(item: Any) -> bytes:
        return attribution_bars(columns, np.ravel(item.values), item.feature_values or [],
                                f"{item.input}: {item.method} of {item.target_name} = {item.output:.5g}")

    return InputSpace(kind="features", read=read, represent=lambda rows: rows, forward=model,
                      baseline=np.zeros((1, len(columns)), np.float32), output_names=list(info["target_names"]),
                      classes=False, occlusion=(1,), elements=columns, shown=shown, picture=picture,
                      ig_steps=IG_STEPS)
