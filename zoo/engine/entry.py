"""``zoo.engine.train``: options in, a finished (or resumed) run out."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.engine.distributed import World, shutdown, world_from_env
from zoo.engine.loop import Trainer
from zoo.engine.options import read_config_file, resolve_options
from zoo.engine.persistence import discard_if_unsaved
from zoo.errors import ZooError
from zoo.locks import run_lock
from zoo.run_layout import CONFIG


@dataclass
class RunResult:
    """What a finished training run left behind."""

    run_dir: Path
    summary: dict[str, Any]
    rank: int = field(default=0, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), **self.summary}


def train(model: str | None = None, *, config: str | Path | None = None, resume: str | Path | None = None,
          hyperparameters: dict[str, Any] | None = None, model_args: dict[str, Any] | None = None,
          single_process: bool = False, **options: Any) -> RunResult:
    """Train ``model`` through the shared engine and write a run directory under ``out``.

    ``options`` are :class:`zoo.engine.options.TrainOptions` fields (``epochs``, ``lr``, ``precision``,
    ``max_steps``...); ``config`` is a TOML file of the same keys (options override it); ``resume``
    continues the run in that folder from its last checkpoint. ``single_process`` trains in this
    process alone even under torchrun (for a run started from inside another, such as a family's
    quality classifier).
    """
    for flag, keyword in (("hp", "hyperparameters"), ("args", "model_args")):
        if flag in options:  # it would be overwritten below, silently
            raise ZooError(f"zoo.train() takes {flag}= as {keyword}=; pass {keyword}={{...}}")
    flags = {**options, "hp": hyperparameters or None, "args": model_args or None}
    world = World(0, 1, 0) if single_process else world_from_env()
    trainer, finished = None, False
    with contextlib.ExitStack() as guard:  # the run folder's lock, held until the run stops
        try:
            if resume is not None:
                from zoo.engine.persistence import prepare_resume

                if config is not None:
                    raise ZooError("--config and --resume do not mix: a resumed run keeps its own options")
                if world.is_main and (Path(resume) / CONFIG).is_file():
                    guard.enter_context(run_lock(Path(resume)))
                opts, run_dir, checkpoint = prepare_resume(resume, model, flags, world.size)
                trainer = Trainer(opts, world)
                trainer.restore(run_dir, checkpoint)
            else:
                opts = resolve_options(read_config_file(config) if config else {}, {"model": model, **flags})
                if not opts.model:
                    raise ZooError("name a model to train (zoo list shows them), or pass --resume RUN_DIR")
                trainer = Trainer(opts, world)
                trainer.start()
                if world.is_main:
                    guard.enter_context(run_lock(trainer.run_dir))
                    guard.callback(discard_if_unsaved, trainer.run_dir, lambda: finished)
            summary = trainer.fit()
            finished = True
        finally:
            shutdown(world, trainer, finished=finished)
    return RunResult(trainer.run_dir, summary, world.rank)
