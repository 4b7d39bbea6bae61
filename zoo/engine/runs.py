"""Moved to :mod:`zoo.runs` (the run folder is not the engine's alone); kept so old imports work."""

from zoo.runs import (  # noqa: F401
    CONFIG,
    METRICS,
    SUMMARY,
    WEIGHTS,
    LoadedRun,
    Run,
    load_run,
    load_weights,
    load_weights_dict,
    new_run_dir,
    read_config,
    read_json,
)
