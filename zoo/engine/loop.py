"""The shared training loop. It knows no family: the family supplies the step and the evaluation.

:func:`zoo.engine.train` turns options into a :class:`Trainer` (new run or resumed one);
:meth:`Trainer.fit` runs the epochs. Per optimizer step the loop does only what it must: forward under autocast,
backward, one finiteness check of the loss, clipping/stepping, on-device metric sums. Everything
that syncs or writes happens at epoch ends, checkpoints and stops. Setting up lives in
``trainer_setup.py``, the run's position in ``state.py``, the run folder's files in ``run_files.py``.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from zoo.data.augment import augment_batch
from zoo.data.torch_data import epoch_batches
from zoo.engine import checkpoint as ckpt
from zoo.engine import finite
from zoo.engine.batches import batch_count, epoch_order, per_rank_batch
from zoo.engine.crash import repair_metrics
from zoo.engine.distributed import World, wrap_model
from zoo.engine.first_batch import check_monitored
from zoo.engine.fsdp import check_strategy, shard_model
from zoo.engine.metrics import MetricsLog
from zoo.engine.options import SMOKE_BATCHES, TrainOptions
from zoo.engine.progress import Progress
from zoo.engine.run_files import summary_of, write_config, write_final
from zoo.engine.scaling import prepare_batch
from zoo.engine.schedules import make_schedulers
from zoo.engine.setup import deterministic_mode, seed_everything
from zoo.engine.signals import Interrupted, InterruptFlag, interrupted
from zoo.engine.state import LossTotals, TrainState
from zoo.engine.trainer_setup import (
    adapt_model,
    optimizers_and_order,
    prepare,
    say_adapted,
    starting_weights,
    training_tensors,
    with_default_dataset,
)
from zoo.errors import ZooError
from zoo.runs import new_run_dir
from zoo.trackers import check_trackers, finish_trackers

__all__ = ["Trainer"]


class Trainer:
    """One run: the model, its optimizers and data, and where training stands (:attr:`state`)."""

    def __init__(self, options: TrainOptions, world: World) -> None:
        from zoo.engine.first_batch import check_first_batch

        options = with_default_dataset(options)
        self.options, self.world = options, world
        parts = prepare(options, world)
        self.spec, self.family, self.config, self.data = parts.spec, parts.family, parts.config, parts.data
        self.device, self.precision, self.epochs, self.ctx = parts.device, parts.precision, parts.epochs, parts.ctx
        self.trackers = check_trackers(options.log) if world.is_main else ()  # before a run folder exists
        check_strategy(options, self.family, self.ctx)  # --strategy fsdp: what it cannot train
        self.batch = per_rank_batch(int(self.config.hyperparameters["batch_size"]), world.size)
        seed_everything(options.seed)
        self.net = self.family.build(self.spec, self.data.info, parts.model_args).to(self.device)
        # Before --compile: a probe through the compiled model would be its first graph, and training's batch
        # shape would then compile as a second, dynamic-shape one (3 % slower steps for vit-small at 224x224).
        check_first_batch(self.family, self.net, self.data, self.spec, options.dataset, self.device)
        adapt_model(self.net, options, self.device, say=world.is_main)  # --freeze-backbone, --compile...
        self.sharded = shard_model(self.net, options, world)  # --strategy fsdp: before the optimizers exist
        if world.rank:  # each process draws its own noise, dropout masks...
            seed_everything(options.seed + world.rank)
        self.optimizers, self.order = optimizers_and_order(self.family, self.net, self.ctx, options.accumulate)
        self.x_train, self.y_train = training_tensors(self.data, self.device)
        batches = batch_count(len(self.x_train), self.batch, world.size)
        self.batches_per_epoch = min(batches, SMOKE_BATCHES) if options.smoke else batches
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / options.accumulate)
        self.schedulers = make_schedulers(self.optimizers, options, self.epochs * self.steps_per_epoch,
                                          self.steps_per_epoch)
        self.state, self.totals = TrainState(), LossTotals()
        self.guard = finite.LossGuard(self.device, options.on_nan, world,
                                      lambda: self.run_dir / ckpt.FOLDER / ckpt.LAST)
        if options.progress and world.is_main:  # only once the model really took the data
            say_adapted(self.spec, parts.data_args)

    # --- a new run or a resumed one -------------------------------------------------------------

    def start(self) -> None:
        """A new run: ``--init`` weights, then its folder (process 0) and the resolved configuration."""
        if self.sharded and self.options.init:
            init = self.sharded.load_init(self.options.init, self.spec.name, say=self.world.is_main)
        else:
            init = starting_weights(self.net, self.options, self.spec.name, say=self.world.is_main)  # no folder yet
        run_dir = new_run_dir(self.options.out, self.spec.name) if self.world.is_main else None
        self._set_run_dir(Path(self.world.broadcast(str(run_dir) if run_dir else None)))
        if self.world.is_main:
            write_config(self.run_dir, self, init)

    def restore(self, run_dir: Path, checkpoint: ckpt.Checkpoint) -> None:
        """Put the state of ``checkpoint`` back: weights, optimizers, schedulers, scaler, RNG, position."""
        from zoo.runs import load_weights_dict

        saved = checkpoint.state
        if self.sharded:
            self.sharded.restore(checkpoint, self.optimizers, self.spec.name)
        else:
            load_weights_dict(self.net, checkpoint.prefixed("model/"), checkpoint.path, self.spec.name)
            for name, optimizer in self.optimizers.items():
                ckpt.restore_optimizer(optimizer, checkpoint, name)
        for name, scheduler in self.schedulers.items():
            scheduler.load_state_dict(saved["schedulers"][name])
        if self.precision.scaler is not None and saved.get("scaler"):
            self.precision.scaler.load_state_dict(saved["scaler"])
        self.state = TrainState.from_dict(saved)
        self.totals.restore_rank(checkpoint, self.world.rank, self.device)  # each process its own sums
        ckpt.restore_rng(checkpoint, self.world.rank)
        self._set_run_dir(run_dir)
        if self.world.is_main:
            repair_metrics(run_dir, self.state.step)
            for stale in (run_dir / ckpt.FOLDER).glob(".*.tmp"):  # half-written by a killed process
                stale.unlink(missing_ok=True)

    def _set_run_dir(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.ctx = replace(self.ctx, run_dir=run_dir)

    def context(self) -> Any:
        """The run context at the current position."""
        return self.ctx.at(epoch=self.state.epoch, step=self.state.step)

    # --- training ---------------------------------------------------------------------------------

    def fit(self) -> dict[str, Any]:
        """Run the remaining epochs; stop early on ``max_steps``, early stopping or a signal."""
        main = self.world.is_main
        self.progress = Progress(self.epochs, self.steps_per_epoch, enabled=self.options.progress and main,
                                 log_every=self.options.log_every)
        tensorboard = bool(self.options.tensorboard) or "tensorboard" in self.trackers
        self.log = MetricsLog(self.run_dir, tensorboard and main, "mlflow" in self.trackers) if main else None
        self.model = self.net if self.sharded else wrap_model(self.net, self.world, self.device, self.family,
                                                              len(self.order))
        started, stop_reason = time.perf_counter(), None
        try:
            interrupt = InterruptFlag(abort_on_second=not self.world.distributed)
            with interrupt as self.interrupt, deterministic_mode(self.options.deterministic):
                while self.state.epoch <= self.epochs and stop_reason is None:
                    stop_reason = self._run_epoch()
                if stop_reason is not None and self.state.batch_in_epoch > 0:
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

        state, accumulate, last = self.state, self.options.accumulate, self.batches_per_epoch - 1
        order = epoch_order(len(self.x_train), self.options.seed, state.epoch, self.world.rank, self.world.size)
        if isinstance(self.x_train, torch.Tensor):
            order = order.to(self.device)  # one copy an epoch, not one a step
        self.net.train()
        self.progress.start_epoch(state.epoch, state.batch_in_epoch // accumulate)
        stop = None
        indices = [order[b * self.batch : (b + 1) * self.batch] for b in range(state.batch_in_epoch, last + 1)]
        batches = epoch_batches(self.x_train, self.y_train, indices, self.device, workers=self.options.workers,
                                pin_memory=self.options.pin_memory)
        while state.batch_in_epoch <= last:
            b = state.batch_in_epoch
            boundary = (b + 1) % accumulate == 0 or b == last
            batch = next(batches)
            seed = self.options.seed + self.world.rank
            if self.options.augment:
                batch = augment_batch(batch, seed=seed, epoch=state.epoch, index=b)
            batch = prepare_batch(batch, self.options, seed=seed, epoch=state.epoch, index=b)  # --crop-flip...
            self._train_batch(batch, first=b % accumulate == 0, boundary=boundary)
            state.batch_in_epoch += 1
            if not boundary:
                continue
            state.step += 1
            self.progress.step(state.step)
            stop = self._stop_requested()
            if b == last:
                break
            if stop:
                return stop
            if self.options.save_every and state.step % self.options.save_every == 0:
                self._save()
        self._end_epoch()
        return stop or self._early_stop_due()

    def _train_batch(self, batch: Any, *, first: bool, boundary: bool) -> None:
        """Forward and backward for every optimizer in order; step them (and every schedule once) at a boundary."""
        ctx, stepped = self.context(), False
        for name in self.order:
            optimizer = self.optimizers[name]
            if first:
                optimizer.zero_grad(set_to_none=True)
            no_sync = self.world.distributed and not boundary and self.model is not self.net
            if self.sharded:  # FSDP: reduce-scatter the gradients at the step's last batch only
                self.net.set_requires_gradient_sync(boundary)
            with self.model.no_sync() if no_sync else contextlib.nullcontext():
                with self.precision.autocast():
                    losses = self.family.training_step(self.model, batch, name, ctx)
                loss = losses.get("loss") if isinstance(losses, dict) else None
                if loss is None:
                    raise ZooError(f"family training_step returned {losses!r} without 'loss'; fix the family plugin")
                self.precision.backward(loss / self.options.accumulate if self.options.accumulate > 1 else loss)
            if boundary and self.model is self.net and not self.sharded:  # no DDP wrapper: share gradients here
                self.world.sync_gradients(optimizer)
            if self._is_good(name, losses, boundary):
                self.totals.add(f"{name}_" if len(self.optimizers) > 1 else "", losses)
                if boundary:
                    self.precision.step(optimizer, self.options.grad_clip)
                    stepped = True
            elif boundary:
                optimizer.zero_grad(set_to_none=True)
        if boundary:
            for scheduler in self.schedulers.values():  # once per optimizer step, however often it repeats
                scheduler.step()
        if stepped:
            self.precision.update()  # the grad scaler's once-per-iteration update

    def _is_good(self, name: str, losses: dict[str, Any], boundary: bool) -> bool:
        """Finite loss? A bad one stops the run (``--on-nan stop``) or is counted and skipped."""
        where = (self.state.step + 1, self.state.epoch, name)
        last = self.world.distributed and name == self.order[-1]
        if self.guard.check(losses, where, boundary=boundary,
                            share_interrupt=self.interrupt.received is not None if last else None):
            return True
        if boundary:
            self.state.skipped += 1
            self.progress.message(f"skipped step {where[0]} (epoch {where[1]}, optimizer {name!r}): "
                                  f"non-finite loss ({finite.loss_parts(losses)})")
        return False

    def _stop_requested(self) -> str | None:
        """At a step boundary: a signal (on any process) or ``max_steps`` means stop."""
        interrupted = self.guard.shared_interrupt if self.world.distributed else self.interrupt.received is not None
        if interrupted:
            if self.interrupt.received is None:  # another process got the signal
                import signal

                self.interrupt.received = signal.SIGTERM
            return "interrupt"
        if self.options.max_steps and self.state.step >= self.options.max_steps:
            return "max_steps"
        return None

    def _end_epoch(self) -> None:
        """Epoch metrics (train averages + the family's validation), logs, best, checkpoint."""
        self.guard.flush()
        metrics = self.totals.averages(self.world)
        net = self._plain_model()
        if self.world.is_main:
            metrics.update(self._family_metrics("evaluate", net))
            metrics.update(self._family_metrics("epoch_end", net))  # pictures, quality metrics
            check_monitored(self.family, metrics, self.spec)  # before a best checkpoint is judged by it
        metrics = self.world.broadcast(metrics)
        epoch, step = self.state.epoch, self.state.step
        improved = self.state.record_epoch(metrics, self.family.monitor)
        if self.log:
            self.log.write({"epoch": epoch, "step": step, **metrics, "skipped_steps": self.state.skipped})
        self.progress.end_epoch(epoch, metrics)
        finished = self.state.epoch > self.epochs or self._early_stop_due() is not None
        path = self._save(finished=finished)
        if improved and path is not None:
            ckpt.link_or_copy(path, path.parent / ckpt.BEST)

    def _family_metrics(self, hook: str, net: Any) -> dict[str, Any]:
        """A family hook on the plain model ``net`` in eval mode without gradients (main process)."""
        import torch

        net.eval()
        with torch.no_grad():
            metrics = getattr(self.family, hook)(net, self.context())
        net.train()
        return metrics

    def _plain_model(self) -> Any:
        """The unwrapped model at this step (on process 0): FSDP's gathered copy or the model itself. Collective."""
        return self.sharded.plain_model(self.state.step) if self.sharded else self.net

    def _early_stop_due(self) -> str | None:
        patience = self.options.early_stop
        return "early_stop" if patience is not None and self.state.bad_epochs > patience else None

    # --- saving -----------------------------------------------------------------------------------

    def _save(self, finished: bool = False) -> Path | None:
        """Checkpoint the full state (every process sends its RNG and loss sums; process 0 writes)."""
        from zoo.version import __version__

        self.guard.flush()
        shared = self.world.gather((ckpt.capture_rng(), self.totals.snapshot()))
        rng = [states for states, _ in shared]
        totals, counts = LossTotals.checkpoint_parts([sums for _, sums in shared])
        model, optimizers = (self.sharded.checkpoint_parts(self.optimizers, self.state.step) if self.sharded
                             else (self.net, self.optimizers))  # FSDP: the full states, gathered to process 0
        if not self.world.is_main:
            return None
        folder = self.run_dir / ckpt.FOLDER
        path = folder / f"step-{self.state.step:08d}.safetensors"
        state = {"zoo_version": __version__, "model": self.spec.name, "run_id": self.run_dir.name,
                 "world_size": self.world.size, "finished": finished, **self.state.to_dict(),
                 **counts}
        ckpt.save_checkpoint(path, model=model, optimizers=optimizers, schedulers=self.schedulers,
                             scaler=self.precision.scaler, rng=rng, extra_tensors=totals, state=state)
        ckpt.rotate(folder, path, self.options.keep_last)
        return path

    def _interrupted(self) -> Interrupted:
        import signal

        return interrupted(self.interrupt.received or signal.SIGINT, self.interrupt.exit_code, step=self.state.step,
                           epoch=self.state.epoch, last=self.run_dir / ckpt.FOLDER / ckpt.LAST, run_dir=self.run_dir,
                           world_size=self.world.size)

    def _finish(self, stop_reason: str | None, seconds: float) -> dict[str, Any]:
        """Final weights and summary (process 0); every process returns the summary."""
        self.guard.flush()
        summary = summary_of(self, stop_reason, seconds)
        net = self._plain_model()
        if self.world.is_main:  # the family's final metrics (a GAN's sample quality, say)
            summary["metrics"] = {**self.state.metrics, **self._family_metrics("final_metrics", net)}
            write_final(self.run_dir, net, self.spec.name, summary)
            finish_trackers(self.run_dir, self.options.log)
        self.world.barrier()
        return summary
