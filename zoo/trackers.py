"""Experiment trackers beside zoo's own metrics files: ``--log mlflow`` (and ``--log tensorboard``).

MLflow gets the run's parameters when it starts, each epoch's metrics (at the optimizer step, like
TensorBoard) and, when the run finishes, its files as artefacts. The MLflow run id is kept in the run
folder (``mlflow.json``), so a resumed run goes on logging into the same MLflow run. Only process 0 logs.
The store is ``MLFLOW_TRACKING_URI`` when set, else ``./mlruns`` (MLflow's file store).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.run_layout import CONFIG, MLFLOW_RECORD

TRACKERS = ("mlflow", "tensorboard")
DEFAULT_STORE = "mlruns"
EXPERIMENT = "zoo"
#: Files and folders of a run folder logged as artefacts (checkpoints and TensorBoard events are left out).
_ARTEFACT_SUFFIXES = (".json", ".jsonl", ".csv", ".toml", ".png", ".md", ".safetensors")
_ARTEFACT_FOLDERS = ("samples", "reconstructions")


def parse_log(value: str | None) -> tuple[str, ...]:
    """``"mlflow,tensorboard"`` → the tracker names; an unknown one is a ZooError."""
    names = tuple(n.strip().lower() for n in (value or "").split(",") if n.strip())
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise ZooError(f"--log {unknown[0]!r} is not a tracker zoo knows; use {' or '.join(TRACKERS)} "
                       "(comma-separated for both)")
    return names


def import_mlflow() -> Any:
    """The mlflow module; a missing install is one line naming the extra."""
    try:
        import mlflow
    except ImportError as exc:
        raise ZooError("--log mlflow needs MLflow, which is not installed: pip install 'plugzoo[mlflow]'") from exc
    return mlflow


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI``, else ``./mlruns`` as a file store (MLflow 3 wants an opt-in for that store)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # zoo's default store only; a URI given is kept
    return Path(DEFAULT_STORE).resolve().as_uri()


def _params(config: dict[str, Any]) -> dict[str, str]:
    """The run's configuration flattened to MLflow parameters (``hyperparameters.lr``, ``options.seed``...)."""
    params: dict[str, str] = {}

    def add(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                add(f"{prefix}.{key}", item)
        elif value is not None:
            params[prefix] = str(value)[:500]

    for key in ("model", "family", "plugin", "dataset", "seed", "device", "world_size"):
        add(key, config.get(key))
    for key in ("hyperparameters", "model_args", "data_options", "options"):
        add(key, config.get(key) or {})
    return params


class MlflowTracker:
    """One zoo run as one MLflow run (created, or reopened from ``mlflow.json`` when resuming)."""

    def __init__(self, run_dir: Path) -> None:
        import_mlflow()
        from mlflow.exceptions import MlflowException

        self.run_dir = Path(run_dir)
        self.broken: str | None = None
        try:
            self._open()
        except (MlflowException, OSError, ValueError, KeyError) as exc:
            raise ZooError(f"--log mlflow could not open its MLflow run ({type(exc).__name__}: {exc}); check "
                           "MLFLOW_TRACKING_URI, or leave out --log mlflow") from exc

    def _open(self) -> None:
        from mlflow import MlflowClient

        record_path = self.run_dir / MLFLOW_RECORD
        if record_path.exists():
            record = json.loads(record_path.read_text())
            self.client = MlflowClient(record["tracking_uri"])
            if record["tracking_uri"].startswith("file:"):
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            self.run_id = record["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            return
        from mlflow.entities import Param

        from zoo.atomic import write_json

        uri = tracking_uri()
        self.client = MlflowClient(uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        config = json.loads((self.run_dir / CONFIG).read_text())
        run = self.client.create_run(experiment_id, run_name=self.run_dir.name,
                                     tags={"zoo.run_dir": str(self.run_dir.resolve()),
                                           "zoo.model": str(config.get("model"))})
        self.run_id = run.info.run_id
        params = [Param(k, v) for k, v in _params(config).items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(self.run_id, params=params[start:start + 100])
        write_json(record_path, {"tracking_uri": uri, "run_id": self.run_id, "experiment_id": experiment_id})

    def log(self, row: dict[str, Any]) -> None:
        """One epoch's metrics, at its optimizer step (a tracker failure is a warning: training goes on)."""
        from mlflow.entities import Metric

        stamp, step = int(time.time() * 1000), int(row.get("step", 0))
        metrics = [Metric(k, float(v), stamp, step) for k, v in row.items()
                   if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)]
        self._safely("log metrics", lambda: self.client.log_batch(self.run_id, metrics=metrics))

    def finish(self) -> None:
        """Log the run folder's files as artefacts and mark the MLflow run finished."""

        def upload() -> None:
            for path in sorted(self.run_dir.iterdir()):
                if path.is_file() and path.suffix in _ARTEFACT_SUFFIXES and path.name != MLFLOW_RECORD:
                    self.client.log_artifact(self.run_id, str(path))
                elif path.is_dir() and path.name in _ARTEFACT_FOLDERS:
                    self.client.log_artifacts(self.run_id, str(path), artifact_path=path.name)
            self.client.set_terminated(self.run_id, "FINISHED")

        self._safely("log the artefacts", upload)

    def _safely(self, what: str, call: Any) -> None:
        """Run ``call``; the first failure is one warning line and the tracker stops (zoo's own files go on)."""
        if self.broken:
            return
        try:
            call()
        except Exception as exc:  # a tracker outage must not cost the training run
            self.broken = f"{type(exc).__name__}: {exc}"
            print(f"zoo: warning: MLflow could not {what} ({self.broken}); MLflow logging stops for this run, "
                  "metrics.jsonl has everything", file=sys.stderr)


def check_trackers(value: str | None) -> tuple[str, ...]:
    """Before a run folder exists: the trackers asked for are known and installed."""
    names = parse_log(value)
    if "mlflow" in names:
        import_mlflow()
    return names


def finish_trackers(run_dir: Path, value: str | None) -> None:
    """At the end of a finished run (process 0): artefacts to MLflow, run marked finished."""
    if "mlflow" in parse_log(value):
        MlflowTracker(run_dir).finish()
