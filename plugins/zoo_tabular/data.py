"""The regressor family's datasets: scikit-learn's bundled diabetes set (cached like the digits) and CSV files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from zoo.cache import cached_arrays
from zoo.data import RawTable
from zoo.errors import ZooError

CACHE_NAME = "diabetes"


def load_diabetes(*, seed: int, val_fraction: float) -> RawTable:
    """The 442 patients' 10 features (unscaled) and their disease progression one year later."""
    from zoo_digits.loader import sklearn_version

    arrays = cached_arrays(CACHE_NAME, f"scikit-learn {sklearn_version()}", _from_sklearn)
    return RawTable(features=arrays["features"], targets=arrays["target"],
                    feature_names=[str(n) for n in arrays["feature_names"]], target_names=["progression"],
                    source="scikit-learn diabetes")


def _from_sklearn() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_diabetes as sklearn_diabetes

    bunch = sklearn_diabetes(scaled=False)
    return {"features": np.asarray(bunch.data, np.float64), "target": np.asarray(bunch.target, np.float64),
            "feature_names": np.asarray(bunch.feature_names)}


def load_csv(*, seed: int, val_fraction: float, path: str, target: str | None = None,
             features: str | None = None) -> RawTable:
    """A CSV file: a header row of column names, then one row of numbers per sample. ``target`` names the
    target column(s) (default: the last), ``features`` the feature columns (default: all the others)."""
    header, rows = read_csv(Path(path))
    targets = _columns(target, header, path, "target") if target else [header[-1]]
    chosen = _columns(features, header, path, "features") if features else [c for c in header if c not in targets]
    if not chosen:
        raise ZooError(f"{path}: no feature columns left beside the target {targets}; "
                       "the file needs at least 2 columns")
    overlap = sorted(set(chosen) & set(targets))
    if overlap:
        raise ZooError(f"{path}: column(s) {overlap} are both features and targets; name each once")
    values = _numbers(header, rows, path)
    index = {name: i for i, name in enumerate(header)}
    return RawTable(features=values[:, [index[c] for c in chosen]], targets=values[:, [index[c] for c in targets]],
                    feature_names=chosen, target_names=targets, source=path)


def read_csv(path: Path, min_rows: int = 2) -> tuple[list[str], list[list[str]]]:
    """The header and the data rows (at least ``min_rows``) of a CSV file (a ZooError naming the file when it
    cannot be read)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            table = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    except FileNotFoundError as exc:
        raise ZooError(f"{path}: no such file; give --data csv:PATH of a CSV file") from exc
    except IsADirectoryError as exc:
        raise ZooError(f"{path} is a folder; give --data csv:PATH of a CSV file") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ZooError(f"{path} is not a readable UTF-8 CSV file ({exc})") from exc
    if len(table) < 1 + min_rows:
        raise ZooError(f"{path}: needs a header row and at least {min_rows} data row(s), found {len(table)} row(s)")
    header = [name.strip() for name in table[0]]
    if len(set(header)) != len(header) or not all(header):
        raise ZooError(f"{path}: the header row must name every column once, got {header}")
    return header, table[1:]


def _columns(spec: str, header: list[str], path: str, what: str) -> list[str]:
    names = [name.strip() for name in str(spec).split(",") if name.strip()]
    unknown = [name for name in names if name not in header]
    if unknown or not names:
        raise ZooError(f"{path}: --data-arg {what}={spec!r} names no column {unknown or ''}; the columns are "
                       f"{', '.join(header)}")
    return names


def _numbers(header: list[str], rows: list[list[str]], path: str) -> np.ndarray:
    values = np.empty((len(rows), len(header)), np.float64)
    for r, row in enumerate(rows):
        if len(row) != len(header):
            raise ZooError(f"{path}: row {r + 2} has {len(row)} cells but the header names {len(header)} columns")
        for c, cell in enumerate(row):
            try:
                values[r, c] = float(cell)
            except ValueError:
                raise ZooError(f"{path}: row {r + 2}, column {header[c]!r} is {cell!r}, not a number; "
                               "every cell must be a number (drop text columns)") from None
    return values
