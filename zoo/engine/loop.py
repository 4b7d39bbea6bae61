"""The shared training loop. It knows no family: the family supplies the step and the evaluation.

:func:`train` turns options into a :class:`Trainer` (new run or resumed one); :meth:`Trainer.fit`
runs the epochs. Per optimizer step the loop does only what it must: forward under autocast,
backward, one finiteness check of the loss, clipping/stepping, on-device metric sums. Everything
that syncs or writes happens at epoch ends, checkpoints and stops.
"""

from __future__ import annotations

import contextlib
import math
import platform
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from zoo.data.augment import augment_batch
from zoo.data.lazy import LazyImages
from zoo.data.torch_data import epoch_batches
from zoo.engine import checkpoint as ckpt
from zoo.engine import finite
from zoo.engine.batches import batch_count, epoch_order, per_rank_batch
from zoo.engine.config import TrainConfig, resolve_hyperparameters
from zoo.engine.distributed import (
    World,
    average_gradients,
    init_process_group,
    shutdown,
    world_from_env,
    wrap_model,
)
from zoo.engine.metrics import MetricsLog, tensorboard_writer, truncate_after
from zoo.engine.options import (
    SMOKE_BATCHES,
    SMOKE_EPOCHS,
    SMOKE_VAL,
    TrainOptions,
    dump_toml,
    read_config_file,
    resolve_options,
)
from zoo.engine.precision import Precision
from zoo.engine.progress import Progress
from zoo.engine.runs import CONFIG, METRICS, SUMMARY, WEIGHTS, new_run_dir
from zoo.engine.scaling import prepare_batch, prepare_model
from zoo.engine.schedules import make_schedulers
from zoo.engine.setup import deterministic_mode, pick_device, seed_everything
from zoo.engine.signals import Interrupted, InterruptFlag
from zoo.errors import ZooError
from zoo.plots import LOSS_CURVE, write_loss_curve

RUN_TOML = "run.toml"


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
    flags = {**options, "hp": hyperparameters or None, "args": model_args or None}
    world = World(0, 1, 0) if single_process else world_from_env()
    trainer, finished = None, False
    try:
        if resume is not None:
            from zoo.engine.resume import prepare_resume

            if config is not None:
                raise ZooError("--config and --resume do not mix: a resumed run keeps its own options")
            opts, run_dir, checkpoint = prepare_resume(resume, model, flags, world.size)
            trainer = Trainer(opts, world)
            trainer.restore(run_dir, checkpoint)
        else:
            opts = resolve_options(read_config_file(config) if config else {}, {"model": model, **flags})
            if not opts.model:
                raise ZooError("name a model to train (zoo list shows them), or pass --resume RUN_DIR")
            trainer = Trainer(opts, world)
            trainer.start()
        summary = trainer.fit()
        finished = True
    finally:
        shutdown(world, trainer, finished=finished)
    return RunResult(trainer.run_dir, summary, world.rank)


class Trainer:
    """One run: the model, its optimizers and data, and where training stands."""

    def __init__(self, options: TrainOptions, world: World) -> None:
        from zoo.api import load_family
        from zoo.data import DataOptions, load_dataset, parse_dataset
        from zoo.engine.options import parse_image_size
        from zoo.registry import get_dataset_spec, get_spec

        self.options, self.world = options, world
        spec = get_spec(options.model)
        family = load_family(spec.family)
        hp = resolve_hyperparameters(
            family.hyperparameters, spec.defaults,
            {"epochs": options.epochs, "batch_size": options.batch_size, "lr": options.lr,
             "optimizer": options.optimizer, **options.hp},
        )
        if options.accumulate > 1 and len(family.optimizer_order) > 1:
            raise ZooError(f"--accumulate needs a family with one optimizer; {spec.family!r} steps "
                           f"{len(family.optimizer_order)}")
        get_dataset_spec(parse_dataset(options.dataset)[0])  # unknown dataset: fail before touching torch
        self.device = pick_device(_rank_device(options.device, world))
        self.precision = Precision(options.precision, self.device)
        if options.tensorboard and world.is_main:
            tensorboard_writer()  # not installed: say so before a run folder exists
        self.batch = per_rank_batch(int(hp["batch_size"]), world.size)
        init_process_group(world, self.device)
        data_options = DataOptions(image_size=parse_image_size(options.image_size), channels=options.channels)
        data = load_dataset(options.dataset, seed=options.seed, options=data_options)
        epochs = int(hp["epochs"])
        if options.smoke:
            epochs = min(epochs, SMOKE_EPOCHS)
            data = replace(data, x_val=data.x_val[:SMOKE_VAL], y_val=data.y_val[:SMOKE_VAL])
        data_args = family.data_args(spec, data.info)
        resolved_args = {**spec.model_args, **data_args, **options.args}
        self.config = TrainConfig(
            model=spec.name, family=spec.family, dataset=options.dataset, seed=options.seed,
            device=str(self.device), hyperparameters=hp, model_args=resolved_args,
            data_options={"image_size": list(data_options.image_size) if data_options.image_size else None,
                          "channels": options.channels},
        )
        self.spec, self.family, self.data, self.epochs = spec, family, data, epochs
        self._build(hp, resolved_args)
        if options.progress and world.is_main:  # only once the model really took the data
            _say_adapted(spec, data_args)

    # --- setting up -------------------------------------------------------------------------------

    def _build(self, hp: dict[str, Any], model_args: dict[str, Any]) -> None:
        import torch

        seed_everything(self.options.seed)
        self.net = self.family.build(self.spec, self.data.info, model_args).to(self.device)
        if self.options.freeze_backbone:
            from zoo.engine.init_weights import freeze_backbone

            freeze_backbone(self.net)
        prepare_model(self.net, self.options, self.device, say=self.world.is_main)  # compile, channels-last...
        if self.world.rank:  # each process draws its own noise, dropout masks...
            seed_everything(self.options.seed + self.world.rank)
        self.optimizers = self.family.configure_optimizers(self.net, hp)
        if set(self.optimizers) != set(self.family.optimizer_order):
            raise ZooError(
                f"family {self.spec.family!r} returned optimizers {sorted(self.optimizers)} but declares "
                f"{list(self.family.optimizer_order)}; fix the family plugin"
            )
        if isinstance(self.data.x_train, LazyImages):  # read from files batch by batch, by worker processes
            self.x_train, self.y_train = self.data.x_train, torch.from_numpy(self.data.y_train)
        else:
            self.x_train = torch.from_numpy(self.data.x_train).to(self.device)
            self.y_train = torch.from_numpy(self.data.y_train).to(self.device)
        batches = batch_count(len(self.x_train), self.batch, self.world.size)
        if self.options.smoke:
            batches = min(batches, SMOKE_BATCHES)
        self.batches_per_epoch = batches
        self.steps_per_epoch = math.ceil(batches / self.options.accumulate)
        self.schedulers = make_schedulers(self.optimizers, self.options, self.epochs * self.steps_per_epoch,
                                          self.steps_per_epoch)
        # Where training stands: the next epoch to run and how many of its batches are done.
        self.epoch, self.batch_in_epoch, self.step = 1, 0, 0
        self.best: tuple[float, int] | None = None
        self.bad_epochs = 0
        self.skipped = 0
        self._bad_group = False
        self._shared_interrupt = False  # under torchrun: did any process get a signal (as of this step)?
        self._deferred = (finite.DeferredLossCheck()
                          if finite.defer_wanted(self.device, self.options.on_nan, self.world.distributed) else None)
        self.metrics: dict[str, float] = {}
        self._reset_totals()

    def start(self) -> None:
        """A new run: make its folder (process 0) and write the resolved configuration."""
        from zoo.atomic import write_bytes
        from zoo.engine.init_weights import load_init

        # --init: before a run folder exists, so a wrong file leaves nothing behind
        self.init = load_init(self.net, self.options.init, self.spec.name, say=self.world.is_main and
                              self.options.progress) if self.options.init else None
        run_dir = new_run_dir(self.options.out, self.spec.name) if self.world.is_main else None
        self.run_dir = Path(self.world.broadcast(str(run_dir) if run_dir else None))
        if self.world.is_main:
            self._write_config()
            write_bytes(self.run_dir / RUN_TOML, dump_toml(self._reproducible_options()).encode())

    def restore(self, run_dir: Path, checkpoint: ckpt.Checkpoint) -> None:
        """Put the state of ``checkpoint`` back: weights, optimizers, schedulers, scaler, RNG, position."""
        from zoo.engine.runs import load_weights_dict

        state = checkpoint.state
        load_weights_dict(self.net, checkpoint.prefixed("model/"), checkpoint.path, self.spec.name)
        for name, optimizer in self.optimizers.items():
            ckpt.restore_optimizer(optimizer, checkpoint, name)
        for name, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state["schedulers"][name])
        if self.precision.scaler is not None and state.get("scaler"):
            self.precision.scaler.load_state_dict(state["scaler"])
        self.epoch, self.batch_in_epoch, self.step = state["epoch"], state["batch_in_epoch"], state["step"]
        self.best = tuple(state["best"]) if state.get("best") else None  # type: ignore[assignment]
        self.bad_epochs, self.skipped, self.metrics = state["bad_epochs"], state["skipped"], state["metrics"]
        totals = checkpoint.prefixed("totals/")
        self.totals = {k: v.to(self.device) for k, v in totals.items()}
        self.counts = dict(state["counts"])
        ckpt.restore_rng(checkpoint, self.world.rank)
        self.run_dir = run_dir
        if self.world.is_main:
            truncate_after(run_dir, self.step)
            for stale in (run_dir / ckpt.FOLDER).glob(".*.tmp"):  # half-written by a killed process
                stale.unlink(missing_ok=True)

    def _reproducible_options(self) -> TrainOptions:
        hp = self.config.hyperparameters
        return replace(self.options, epochs=int(hp["epochs"]), batch_size=int(hp["batch_size"]), lr=float(hp["lr"]),
                       optimizer=hp.get("optimizer"), progress=True,
                       hp={k: v for k, v in hp.items() if k not in ("epochs", "batch_size", "lr", "optimizer")},
                       args=dict(self.options.args))

    def _write_config(self) -> None:
        import torch

        from zoo.atomic import write_json
        from zoo.version import __version__

        write_json(self.run_dir / CONFIG, {
            **self.config.to_dict(),
            "plugin": self.spec.plugin,
            "data": self.data.info.to_dict(),
            "run_id": self.run_dir.name,
            "world_size": self.world.size,
            "options": self.options.to_dict(),
            "init": self.init.to_dict() if getattr(self, "init", None) else None,
            "versions": {"zoo": __version__, "torch": torch.__version__, "python": platform.python_version()},
        })

    def _reset_totals(self) -> None:
        self.totals: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    # --- training ---------------------------------------------------------------------------------

    def fit(self) -> dict[str, Any]:
        """Run the remaining epochs; stop early on ``max_steps``, early stopping or a signal."""
        main = self.world.is_main
        self.progress = Progress(self.epochs, self.steps_per_epoch, enabled=self.options.progress and main,
                                 log_every=self.options.log_every)
        self.log = MetricsLog(self.run_dir, self.options.tensorboard and main) if main else None
        self.model = wrap_model(self.net, self.world, self.device, self.family)
        started = time.perf_counter()
        stop_reason = None
        try:
            interrupt = InterruptFlag(abort_on_second=not self.world.distributed)
            with interrupt as self.interrupt, deterministic_mode(self.options.deterministic):
                while self.epoch <= self.epochs and stop_reason is None:
                    stop_reason = self._run_epoch()
                if stop_reason is not None and self.batch_in_epoch > 0:
                    self._save()  # stopped mid-epoch (an epoch end has saved already)
        finally:
            self.progress.close()
            if self.log:
                self.log.close()
        if stop_reason == "interrupt":
            self.world.barrier()
            raise self._interrupted()
        return self._finish(stop_reason, time.perf_counter() - started)

    def _run_epoch(self) -> str | None:
        """Train the rest of this epoch, then evaluate and checkpoint it; why to stop, if so."""
        import torch

        order = epoch_order(len(self.x_train), self.options.seed, self.epoch, self.world.rank, self.world.size)
        if isinstance(self.x_train, torch.Tensor):
            order = order.to(self.device)  # one copy an epoch, not one a step
        self.net.train()
        self.progress.start_epoch(self.epoch, self.batch_in_epoch // self.options.accumulate)
        accumulate, last = self.options.accumulate, self.batches_per_epoch - 1
        stop = None
        batches = epoch_batches(self.x_train, self.y_train, [order[b * self.batch : (b + 1) * self.batch]
                                                            for b in range(self.batch_in_epoch, last + 1)], self.device,
                                 workers=self.options.workers, pin_memory=self.options.pin_memory)
        while self.batch_in_epoch <= last:
            b = self.batch_in_epoch
            boundary = (b + 1) % accumulate == 0 or b == last
            batch = next(batches)
            if self.options.augment:
                batch = augment_batch(batch, seed=self.options.seed + self.world.rank, epoch=self.epoch, index=b)
            batch = prepare_batch(batch, self.options, seed=self.options.seed + self.world.rank, epoch=self.epoch,
                                  index=b)
            self._train_batch(batch, first=b % accumulate == 0, boundary=boundary)
            self.batch_in_epoch += 1
            if not boundary:
                continue
            self.step += 1
            self.progress.step(self.step)
            stop = self._stop_requested()
            if b == last:
                break
            if stop:
                return stop
            if self.options.save_every and self.step % self.options.save_every == 0:
                self._save()
        self._end_epoch()
        return stop or self._early_stop_due()

    def _train_batch(self, batch: Any, *, first: bool, boundary: bool) -> None:
        """Forward and backward for every optimizer; step those at an accumulation boundary."""
        import torch

        options = self.options
        stepped = False
        for name in self.family.optimizer_order:
            optimizer = self.optimizers[name]
            if first:
                optimizer.zero_grad(set_to_none=True)
            no_sync = self.world.distributed and not boundary and self.model is not self.net
            with self.model.no_sync() if no_sync else contextlib.nullcontext():
                with self.precision.autocast():
                    losses = self.family.training_step(self.model, batch, name)
                loss = losses.get("loss") if isinstance(losses, dict) else None
                if loss is None:
                    raise ZooError(f"family training_step returned {losses!r} without 'loss'; fix the family plugin")
                self.precision.backward(loss / options.accumulate if options.accumulate > 1 else loss)
            if self.world.distributed and self.model is self.net and boundary:  # no DDP wrapper: share grads here
                average_gradients(optimizer, self.world)
            if self._deferred is not None:  # looked at one step later: the GPU does not wait
                self._raise_if_non_finite(self._deferred.push(losses, (self.step + 1, self.epoch, name)))
                is_finite = True
            else:
                is_finite = math.isfinite(loss.item())  # one host sync (torch.isfinite costs more on the CPU)
            if not boundary:  # accumulating: remember a bad micro-batch, decide at the boundary
                self._bad_group = self._bad_group or not is_finite
                if is_finite:
                    self._add_totals(name, losses)
                continue
            bad = not is_finite or self._bad_group
            self._bad_group = False
            if self.world.distributed:  # one all-reduce shares the loss check (and, last, the signal flag)
                if name == self.family.optimizer_order[-1]:
                    bad, self._shared_interrupt = self.world.any(bad, self.interrupt.received is not None)
                else:
                    (bad,) = self.world.any(bad)
            if bad:
                self._non_finite(name, losses)
                optimizer.zero_grad(set_to_none=True)
            else:
                self._add_totals(name, losses)
                if options.grad_clip:
                    self.precision.unscale(optimizer)
                    params = [p for group in optimizer.param_groups for p in group["params"]]
                    torch.nn.utils.clip_grad_norm_(params, options.grad_clip)
                self.precision.step(optimizer)
                stepped = True
            if name in self.schedulers:
                self.schedulers[name].step()
        if stepped:
            self.precision.update()  # the grad scaler's once-per-iteration update

    def _add_totals(self, name: str, losses: dict[str, Any]) -> None:
        """Sum every loss part on the device (no sync); averaged at the epoch end."""
        prefix = f"{name}_" if len(self.optimizers) > 1 else ""
        totals, counts = self.totals, self.counts
        for key, value in losses.items():
            label = prefix + key
            total = totals.get(label)
            if total is None:
                totals[label] = value.detach().float().clone()
            else:
                total += value.detach()
            counts[label] = counts.get(label, 0) + 1

    def _non_finite(self, name: str, losses: dict[str, Any]) -> None:
        parts = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
        if self.options.on_nan == "skip":
            self.skipped += 1
            self.progress.message(f"skipped step {self.step + 1} (epoch {self.epoch}, optimizer {name!r}): "
                                  f"non-finite loss ({parts})")
            return
        self._raise_if_non_finite(((self.step + 1, self.epoch, name), parts))

    def _raise_if_non_finite(self, problem: tuple[Any, str] | None) -> None:
        if problem is None:
            return
        (step, epoch, name), parts = problem
        last = self.run_dir / ckpt.FOLDER / ckpt.LAST
        kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
        raise ZooError(f"loss became non-finite at step {step} (epoch {epoch}, optimizer {name!r}): {parts}; "
                       f"{kept}; lower --lr, add --grad-clip, or pass --on-nan skip")

    def _check_deferred(self) -> None:
        """Before anything is written: the last step's loss must have been finite."""
        if self._deferred is not None:
            self._raise_if_non_finite(self._deferred.flush())

    def _stop_requested(self) -> str | None:
        """At a step boundary: a signal (on any process) or ``max_steps`` means stop."""
        interrupted = self._shared_interrupt if self.world.distributed else self.interrupt.received is not None
        if interrupted:
            if self.interrupt.received is None:  # another process got the signal
                import signal

                self.interrupt.received = signal.SIGTERM
            return "interrupt"
        if self.options.max_steps and self.step >= self.options.max_steps:
            return "max_steps"
        return None

    def _end_epoch(self) -> None:
        """Epoch metrics (train averages + the family's validation), logs, best, checkpoint."""
        import torch

        self._check_deferred()
        metrics = self._train_averages()
        if self.world.is_main:
            self.net.eval()
            with torch.no_grad():
                metrics.update(self.family.evaluate(self.net, self.data, self.device))
                # the family's per-epoch work: sample pictures, quality metrics
                metrics.update(self.family.epoch_end(self.net, self.data, self.run_dir, self.epoch, self.device))
            self.net.train()
        metrics = self.world.broadcast(metrics)
        self.metrics = metrics
        monitor, mode = self.family.monitor
        value = metrics.get(monitor)
        improved = value is not None and (self.best is None or (value > self.best[0] if mode == "max"
                                                                 else value < self.best[0]))
        if improved:
            self.best, self.bad_epochs = (value, self.epoch), 0
        else:
            self.bad_epochs += 1
        if self.log:
            self.log.write({"epoch": self.epoch, "step": self.step, **metrics, "skipped_steps": self.skipped})
        self.progress.end_epoch(self.epoch, metrics)
        self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        self._reset_totals()
        finished = self.epoch > self.epochs or self._early_stop_due() is not None
        path = self._save(finished=finished)
        if improved and path is not None:
            ckpt.link_or_copy(path, path.parent / ckpt.BEST)

    def _train_averages(self) -> dict[str, float]:
        labels = sorted(self.totals)
        if not labels:
            return {}
        import torch

        sums = torch.stack([self.totals[k] for k in labels])
        counts = torch.tensor([float(self.counts[k]) for k in labels], device=sums.device)
        if self.world.distributed:
            import torch.distributed as dist

            both = torch.cat([sums, counts])
            dist.all_reduce(both)
            sums, counts = both[: len(labels)], both[len(labels):]
        return {f"train_{k}": float(v) for k, v in zip(labels, (sums / counts).tolist(), strict=True)}

    def _early_stop_due(self) -> str | None:
        patience = self.options.early_stop
        return "early_stop" if patience is not None and self.bad_epochs > patience else None

    # --- saving -----------------------------------------------------------------------------------

    def _save(self, finished: bool = False) -> Path | None:
        """Checkpoint the full state (every process sends its RNG; process 0 writes)."""
        from zoo.version import __version__

        self._check_deferred()
        rng = self.world.gather(ckpt.capture_rng())
        if not self.world.is_main:
            return None
        folder = self.run_dir / ckpt.FOLDER
        path = folder / f"step-{self.step:08d}.safetensors"
        state = {
            "zoo_version": __version__, "model": self.spec.name, "run_id": self.run_dir.name,
            "world_size": self.world.size, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "step": self.step, "finished": finished, "best": list(self.best) if self.best else None,
            "bad_epochs": self.bad_epochs, "skipped": self.skipped, "metrics": self.metrics, "counts": self.counts,
        }
        ckpt.save_checkpoint(path, model=self.net, optimizers=self.optimizers, schedulers=self.schedulers,
                             scaler=self.precision.scaler, rng=rng,
                             extra_tensors={f"totals/{k}": v for k, v in self.totals.items()}, state=state)
        ckpt.rotate(folder, path, self.options.keep_last)
        return path

    def _interrupted(self) -> Interrupted:
        import signal

        sig = self.interrupt.received or signal.SIGINT
        launcher = f" --nproc {self.world.size}" if self.world.distributed else ""
        return Interrupted(
            f"interrupted by {sig.name} at step {self.step} (epoch {self.epoch}); saved "
            f"{self.run_dir / ckpt.FOLDER / ckpt.LAST}; resume with: zoo train --resume {self.run_dir}{launcher}",
            self.interrupt.exit_code,
        )

    def _finish(self, stop_reason: str | None, seconds: float) -> dict[str, Any]:
        """Final weights and summary (process 0); every process returns the summary."""
        import torch

        from zoo.atomic import save_weights, write_json

        self._check_deferred()
        monitor = self.family.monitor[0]
        summary = {
            "model": self.spec.name, "family": self.spec.family, "dataset": self.options.dataset,
            "epochs": self.epochs, "steps": self.step, "seconds": round(seconds, 3),
            "stopped": stop_reason or "completed", "skipped_steps": self.skipped,
            "metrics": self.metrics, "monitor": monitor,
            "best": {"epoch": self.best[1], monitor: self.best[0]} if self.best else None,
        }
        if self.world.is_main:
            save_weights(self.run_dir / WEIGHTS, self.net.state_dict(),
                         metadata={"model": self.spec.name, "run_id": self.run_dir.name})
            self.net.eval()
            with torch.no_grad():  # the family's final metrics (a GAN's sample quality, say)
                summary["metrics"] = {**self.metrics,
                                      **self.family.final_metrics(self.net, self.data, self.run_dir, self.device)}
            write_loss_curve(self.run_dir / METRICS, self.run_dir / LOSS_CURVE)  # every run of every family
            write_json(self.run_dir / SUMMARY, summary)
        self.world.barrier()
        return summary


def _say_adapted(spec: Any, data_args: dict[str, Any]) -> None:
    """Tell the user where the data made the model differ from its defaults."""
    changed = [f"{k} {spec.model_args[k]}→{v}" for k, v in data_args.items()
               if k in spec.model_args and spec.model_args[k] != v]
    if changed:
        print(f"zoo: {spec.name} adapted to the data: {', '.join(changed)}", file=sys.stderr)


def _rank_device(requested: str, world: World) -> str:
    """Under torchrun each process on a node takes its own GPU."""
    if world.distributed and requested in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_device(world.local_rank)
            return f"cuda:{world.local_rank}"
    return requested
