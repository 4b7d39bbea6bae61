"""Built-in plugin: the ``regressor`` family on tables of numbers (``tab-mlp``, ``tab-linear``) and its datasets
(``diabetes``, bundled with scikit-learn; ``csv:FILE``).

Registers through the same hooks a third-party package uses; nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zoo.hookspecs import hookimpl
from zoo.roles import RoleSpec
from zoo.specs import DatasetSpec, FamilySpec, InputSpec, ModelSpec

#: The diabetes set's 10 features (age, sex, body-mass index, blood pressure, six blood serum measurements).
DIABETES_FEATURES = 10


#: The graph role of a regressor (``tabular:regressor``): standardised feature rows → values in the targets' units.
REGRESSOR_ROLE = RoleSpec(
    name="regressor", summary="standardised feature rows → target values in their own units",
    required=("input", "output", "feature_names", "target_names", "feature_mean", "feature_std"),
    input_keys=("input",), output_keys=("output",), handlers="zoo_tabular.roles:RegressorHandlers",
)


@hookimpl
def register_roles(register: Callable[[Any], None]) -> None:
    register(REGRESSOR_ROLE)


@hookimpl
def register_families(register: Callable[[Any], None]) -> None:
    register(FamilySpec(
        name="regressor",
        summary="Regressors on rows of features, MSE on standardised targets; exported as features → values",
        factory="zoo_tabular.family:RegressorFamily",
        data_kinds=("features",), target_kinds=("real",),
    ))


@hookimpl
def register_models(register: Callable[[Any], None]) -> None:
    common: dict[str, Any] = {"in_features": DIABETES_FEATURES, "out_features": 1,
                              "target_mean": [0.0], "target_std": [1.0]}
    register(ModelSpec(
        name="tab-mlp", family="regressor",
        summary="An MLP regressor (2 hidden layers of 64, ReLU) on standardised features",
        builder="zoo_tabular.model:mlp_regressor", input=InputSpec(1, 1, DIABETES_FEATURES),  # one row of features
        defaults={"epochs": 60, "batch_size": 32, "lr": 0.003}, dataset="diabetes",
        model_args={**common, "hidden": 64, "layers": 2, "dropout": 0.0},
    ))
    register(ModelSpec(
        name="tab-linear", family="regressor", summary="A linear regressor (least squares by gradient descent)",
        builder="zoo_tabular.model:linear_regressor", input=InputSpec(1, 1, DIABETES_FEATURES),
        defaults={"epochs": 60, "batch_size": 32, "lr": 0.01}, dataset="diabetes", model_args=dict(common),
    ))


@hookimpl
def register_datasets(register: Callable[[Any], None]) -> None:
    register(DatasetSpec(
        name="diabetes",
        summary="Diabetes progression after one year from 10 features, 442 patients (bundled with scikit-learn)",
        loader="zoo_tabular.data:load_diabetes", size=442,
    ))
    register(DatasetSpec(
        name="csv",
        summary="A CSV file with a header row of column names and numbers below; --data-arg target=COLUMN",
        loader="zoo_tabular.data:load_csv", needs_path=True,
        args={"target": "the target column(s), comma-separated (default: the last column)",
              "features": "the feature columns, comma-separated (default: every other column)"},
    ))
