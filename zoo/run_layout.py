"""Every file name of a run folder, in one place (no imports: the engine, runs, reports and bundles all read it).

A run folder holds::

    config.json            how the run was made (spec, options, hyperparameters, data)   CONFIG
    run.toml               the resolved options, fit for ``zoo train --config``           RUN_TOML
    metrics.jsonl          one JSON line per epoch                                        METRICS
    metrics.csv            the same as CSV rows                                           METRICS_CSV
    summary.json           written last: the run finished                                 SUMMARY
    model.safetensors      the final weights                                              WEIGHTS
    loss_curve.png         every ``*loss*`` metric over the epochs                        LOSS_CURVE
    mlflow.json            the MLflow run a resume continues (``--log mlflow``)           MLFLOW_RECORD
    audit.json             ``zoo audit``: the membership-inference attack's results       AUDIT
    tensorboard/           event files (``--tensorboard``)                                TENSORBOARD
    checkpoints/           CHECKPOINTS: last.safetensors (LAST), best.safetensors (BEST),
                           step-NNNNNNNN.safetensors (:func:`step_checkpoint`, the newest ``--keep-last``)

The run folder itself is the training lock (``zoo.locks.run_lock``): no lock file is left in it.
"""

from __future__ import annotations

CONFIG = "config.json"
RUN_TOML = "run.toml"
METRICS = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
SUMMARY = "summary.json"
WEIGHTS = "model.safetensors"
LOSS_CURVE = "loss_curve.png"
MLFLOW_RECORD = "mlflow.json"
AUDIT = "audit.json"
TENSORBOARD = "tensorboard"

CHECKPOINTS = "checkpoints"
LAST = "last.safetensors"
BEST = "best.safetensors"
#: The glob that finds the step checkpoints in ``checkpoints/``.
STEP_CHECKPOINTS = "step-*.safetensors"
#: The key of a checkpoint's safetensors metadata that holds the training state as JSON.
CHECKPOINT_STATE = "zoo_checkpoint"


def step_checkpoint(step: int) -> str:
    """The file name of the checkpoint saved at optimizer step ``step`` (sorts by step)."""
    return f"step-{step:08d}.safetensors"
