"""Tables: rows of features with real-valued targets, split by seed and standardised with training statistics."""

from __future__ import annotations

import numpy as np

from zoo.data import DataInfo, DataSplits, RawTable, split_indices
from zoo.data.kinds import FeatureInfo, SampleKind, real_targets, target_statistics
from zoo.errors import ZooError


def prepare_table(name: str, raw: RawTable, *, seed: int, val_fraction: float) -> DataSplits:
    """Rows → split by ``seed`` → features standardised as ``(x - mean[i]) / std[i]`` with the training split's
    statistics (recorded in ``DataInfo.features``); targets stay float32 in their own units, their training
    statistics in ``DataInfo.target``."""
    features = np.asarray(raw.features)
    if features.ndim != 2:
        raise ZooError(f"{raw.source}: features must be rows × columns, got shape {features.shape}")
    if len(features) < 2:
        raise ZooError(f"{raw.source}: needs at least 2 rows to split into training and validation")
    if not (np.issubdtype(features.dtype, np.floating) or np.issubdtype(features.dtype, np.integer)):
        raise ZooError(f"{raw.source}: features must be numbers, got dtype {features.dtype}")
    if len(raw.feature_names) != features.shape[1]:
        raise ZooError(f"{raw.source}: {features.shape[1]} feature columns but {len(raw.feature_names)} names")
    features = features.astype(np.float64)
    if not np.isfinite(features).all():
        raise ZooError(f"{raw.source}: features hold NaN or infinite values; drop or fix those rows")
    targets, names = real_targets(raw.targets, len(features), names=list(raw.target_names), source=raw.source)
    train_idx, val_idx = split_indices(len(features), seed=seed, val_fraction=val_fraction)
    mean = features[train_idx].mean(axis=0)
    std = features[train_idx].std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant column stays 0 rather than dividing by zero
    standardised = ((features - mean) / std).astype(np.float32)
    info = DataInfo(
        name=name, kind=SampleKind.FEATURES, source_shape=[int(features.shape[1])],
        features=FeatureInfo(list(raw.feature_names), [float(m) for m in mean], [float(s) for s in std]),
        target=target_statistics(targets[train_idx], names),
    )
    return DataSplits(info, standardised[train_idx], targets[train_idx], standardised[val_idx], targets[val_idx])
