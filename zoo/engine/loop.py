"""The step loop: the :class:`Trainer`, where a run stands, the non-finite loss guard and clean interrupts.

The shared training loop. It knows no family: the family supplies the step and the evaluation.

:func:`zoo.engine.train` turns options into a :class:`Trainer` (new run or resumed one);
:meth:`Trainer.fit` runs the epochs. Per optimizer step the loop does only what it must: forward under autocast,
backward, one finiteness check of the loss, clipping/stepping, on-device metric sums. Everything
that syncs or writes happens at epoch ends, checkpoints and stops. Setting up lives in
``assembly.py``, the run folder's files in ``persistence.py``.

Where a run stands (:class:`TrainState`) and the running sums of its loss parts (:class:`LossTotals`).

Catching a non-finite loss without making the GPU wait for the CPU every step.

Immediate (CPU, ``--on-nan skip``, several processes): ``loss.item()`` at the step, which costs
next to nothing on the CPU. Deferred (one CUDA process, ``--on-nan stop``): the loss parts are copied
to pinned host memory without waiting and looked at one step later, or before anything is written,
so the last checkpoint on disk is always one from before the bad step.

Clean interrupts: SIGINT/SIGTERM only set a flag; the loop saves at the next step boundary.

A second signal aborts at once (``KeyboardInterrupt``): the checkpoints on disk are written
atomically, so even that never leaves a broken one. Under torchrun a process gets each Ctrl-C twice
(from the terminal, then relayed by torchrun's agent), so there the second one is not an abort:
torchrun's own grace period (30 s, then SIGKILL) is the hard stop.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from zoo.data.augment import augment_batch
from zoo.data.torch_data import epoch_batches
from zoo.engine.adapt import prepare_batch
from zoo.engine.assembly import (
    adapt_model,
    check_first_batch,
    check_monitored,
    deterministic_mode,
    optimizers_and_order,
    prepare,
    say_adapted,
    seed_everything,
    starting_weights,
    training_tensors,
    with_default_dataset,
)
from zoo.engine.batches import batch_count, epoch_order, per_rank_batch
from zoo.engine.distributed import World, check_strategy, note_run_dir, shard_model, shards, wrap_model
from zoo.engine.ema import PREFIX as EMA_PREFIX
from zoo.engine.ema import WeightAverage
from zoo.engine.options import TrainOptions
from zoo.engine.persistence import (
    Checkpoint,
    capture_rng,
    link_or_copy,
    repair_metrics,
    restore_optimizer,
    restore_rng,
    rotate,
    save_checkpoint,
    summary_of,
    write_config,
    write_final,
)
from zoo.engine.privacy import private_training
from zoo.engine.reporting import MetricsLog, Progress
from zoo.engine.schedules import choose_schedule, make_schedulers, step_budget
from zoo.errors import ZooError
from zoo.run_layout import BEST, CHECKPOINTS, LAST, step_checkpoint
from zoo.runs import new_run_dir
from zoo.trackers import check_trackers, finish_trackers

# === the trainer =====================================================================================================


class Trainer:
    """One run: the model, its optimizers and data, and where training stands (:attr:`state`)."""

    def __init__(self, options: TrainOptions, world: World) -> None:
        options = with_default_dataset(options)
        self.options, self.world = options, world
        parts = prepare(options, world)
        self.spec, self.family, self.config, self.data = parts.spec, parts.family, parts.config, parts.data
        self.device, self.precision, self.epochs, self.ctx = parts.device, parts.precision, parts.epochs, parts.ctx
        self.trackers = check_trackers(options.log) if world.is_main else ()  # before a run folder exists
        check_strategy(options, self.family, self.ctx)  # --strategy fsdp: what it cannot train
        self.batch = per_rank_batch(int(self.config.hyperparameters["batch_size"]), world.size)
        seed_everything(options.seed)
        built_on = "cpu" if shards(options, world) else self.device  # FSDP: only the shards go to the device
        self.net = self.family.build(self.spec, self.data.info, parts.model_args).to(built_on)
        # Before --compile: a probe through the compiled model would be its first graph, and training's batch
        # shape would then compile as a second, dynamic-shape one (3 % slower steps for vit-small at 224x224).
        check_first_batch(self.family, self.net, self.data, self.spec, options.dataset, built_on)
        adapt_model(self.net, options, self.device, say=world.is_main)  # --freeze-backbone, --compile...
        # --strategy fsdp: sharded before the optimizers exist
        self.sharded = shard_model(self.net, options, world, self.device)
        if world.rank:  # each process draws its own noise, dropout masks...
            seed_everything(options.seed + world.rank)
        self.budget = step_budget(batch_count(len(self.data.x_train), self.batch, world.size), epochs=self.epochs,
                                  accumulate=options.accumulate, smoke=options.smoke, max_steps=options.max_steps)
        self.batches_per_epoch, self.steps_per_epoch = self.budget.batches_per_epoch, self.budget.steps_per_epoch
        self.ctx = replace(self.ctx, budget=self.budget)
        self.optimizers, self.order = optimizers_and_order(self.family, self.net, self.ctx, options.accumulate)
        self.schedule = choose_schedule(options, self.family.lr_schedule(self.ctx), self.spec.family,
                                        say=world.is_main)
        self.ema: WeightAverage | None = None  # --ema: made once the starting weights are in (start, restore)
        self.x_train, self.y_train = training_tensors(self.data, self.device)
        self.privacy = private_training(options, self.family, self.net, self.optimizers, self.order, world,
                                        len(self.x_train), self.batch * world.size, self.batches_per_epoch, self.epochs,
                                        self.spec.name, parts.private_args)  # --dp-epsilon: zoo/engine/privacy.py
        self.schedulers = make_schedulers(self.optimizers, self.schedule, self.budget)
        self.state, self.totals = TrainState(), LossTotals()
        self.guard = LossGuard(self.device, options.on_nan, world, lambda: self.run_dir / CHECKPOINTS / LAST)
        if options.progress and world.is_main:  # only once the model really took the data
            say_adapted(self.spec, parts.data_args)

    # --- a new run or a resumed one -------------------------------------------------------------

    def start(self) -> None:
        """A new run: ``--init`` weights, then its folder (process 0) and the resolved configuration."""
        if self.sharded and self.options.init:
            init = self.sharded.load_init(self.options.init, self.spec.name, say=self.world.is_main)
        else:
            init = starting_weights(self.net, self.options, self.spec.name, say=self.world.is_main)  # no folder yet
        if self.options.ema is not None:  # the average starts from the starting weights, --init's included
            self.ema = WeightAverage(self.net, self.options.ema)
        run_dir = new_run_dir(self.options.out, self.spec.name) if self.world.is_main else None
        self._set_run_dir(Path(self.world.broadcast(str(run_dir) if run_dir else None)))
        if self.world.is_main:
            write_config(self.run_dir, self, init)

    def restore(self, run_dir: Path, checkpoint: Checkpoint) -> None:
        """Put the state of ``checkpoint`` back: weights, optimizers, schedulers, scaler, RNG, position."""
        from zoo.runs import load_weights_dict

        saved = checkpoint.state
        if self.sharded:
            self.sharded.restore(checkpoint, self.optimizers, self.spec.name)
        else:
            load_weights_dict(self.net, checkpoint.prefixed("model/"), checkpoint.path, self.spec.name)
            for name, optimizer in self.optimizers.items():
                restore_optimizer(optimizer, checkpoint, name)
        for name, scheduler in self.schedulers.items():
            if name not in saved.get("schedulers", {}):
                raise ZooError(f"checkpoint {checkpoint.path} has no learning-rate schedule for optimizer {name!r}, "
                               "but this run has one (it was saved by an older zoo); start a new run")
            scheduler.load_state_dict(saved["schedulers"][name])
        if self.precision.scaler is not None and saved.get("scaler"):
            self.precision.scaler.load_state_dict(saved["scaler"])
        if self.options.ema is not None:
            self.ema = WeightAverage(self.net, self.options.ema)
            self.ema.restore(checkpoint.prefixed(EMA_PREFIX), checkpoint.path)
        self.state = TrainState.from_dict(saved)
        self.totals.restore_rank(checkpoint, self.world.rank, self.device)  # each process its own sums
        restore_rng(checkpoint, self.world.rank)
        if self.privacy:
            self.privacy.restore(saved.get("privacy"), checkpoint.path)
        self._set_run_dir(run_dir)
        if self.world.is_main:
            repair_metrics(run_dir, self.state.step)
            for stale in (run_dir / CHECKPOINTS).glob(".*.tmp"):  # half-written by a killed process
                stale.unlink(missing_ok=True)

    def _set_run_dir(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.ctx = replace(self.ctx, run_dir=run_dir)
        if self.world.is_main:
            note_run_dir(run_dir)  # for the --nproc launcher's line if a worker is killed

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
        # DP-SGD shares clipped, noised gradients in its own optimizer (zoo/engine/privacy.py), not through DDP
        self.model = self.net if self.sharded or self.privacy else wrap_model(self.net, self.world, self.device,
                                                                              self.family, len(self.order))
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
        indices = ([i.to(order.device) for i in self.privacy.batch_indices(state.epoch, state.batch_in_epoch)]
                   if self.privacy else
                   [order[b * self.batch : (b + 1) * self.batch] for b in range(state.batch_in_epoch, last + 1)])
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
            if self.privacy:
                self.privacy.account_step()
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
            if boundary and self.model is self.net and not (self.sharded or self.privacy):  # no DDP: share here
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
            if self.ema is not None:
                self.ema.update(self.net)

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
                                  f"non-finite loss ({loss_parts(losses)})")
        return False

    def _stop_requested(self) -> str | None:
        """At a step boundary: a signal (on any process) or ``max_steps`` means stop."""
        interrupted = self.guard.shared_interrupt if self.world.distributed else self.interrupt.received is not None
        if interrupted:
            if self.interrupt.received is None:  # another process got the signal
                self.interrupt.received = signal.SIGTERM
            return "interrupt"
        if self.options.max_steps and self.state.step >= self.options.max_steps:
            return "max_steps"
        if self.privacy and self.privacy.exhausted():
            return "privacy_budget"
        return None

    def _end_epoch(self) -> None:
        """Epoch metrics (train averages + the family's validation), logs, best, checkpoint."""
        self.guard.flush()
        metrics = self.totals.averages(self.world)
        if self.privacy:
            metrics.update(self.privacy.spent().metrics())
        if self.world.is_main or self.sharded:  # FSDP: every process runs the hooks on its shards
            with self._averaged(self.net):  # --ema: the average is what is validated
                metrics.update(self._family_metrics("evaluate"))
                metrics.update(self._family_metrics("epoch_end"))  # pictures, quality metrics
        if self.world.is_main:
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
            link_or_copy(path, path.parent / BEST)

    def _family_metrics(self, hook: str) -> dict[str, Any]:
        """A family hook on the model in eval mode without gradients: on process 0, or under FSDP on every
        process, each on its shards (process 0's metrics and files are the ones kept)."""
        import torch

        net = self.net
        net.eval()
        with torch.no_grad(), (self.sharded.evaluating(self.context(), seed=self.options.seed + self.state.epoch)
                               if self.sharded else contextlib.nullcontext(self.context())) as ctx:
            metrics = getattr(self.family, hook)(net, ctx)
        net.train()
        return metrics

    def _averaged(self, net: Any) -> Any:
        """Inside it, ``net`` holds the ``--ema`` averages (nothing changes without ``--ema``)."""
        return self.ema.applied(net) if self.ema is not None else contextlib.nullcontext()

    def _early_stop_due(self) -> str | None:
        patience = self.options.early_stop
        return "early_stop" if patience is not None and self.state.bad_epochs > patience else None

    # --- saving -----------------------------------------------------------------------------------

    def _save(self, finished: bool = False) -> Path | None:
        """Checkpoint the full state (every process sends its RNG and loss sums; process 0 writes)."""
        from zoo.version import __version__

        self.guard.flush()
        shared = self.world.gather((capture_rng(), self.totals.snapshot()))
        rng = [states for states, _ in shared]
        totals, counts = LossTotals.checkpoint_parts([sums for _, sums in shared])
        if self.ema is not None:
            totals = {**totals, **self.ema.tensors()}
        model, optimizers = (self.sharded.checkpoint_parts(self.optimizers, self.state.step) if self.sharded
                             else (self.net, self.optimizers))  # FSDP: the full states, gathered to process 0
        if not self.world.is_main:
            return None
        folder = self.run_dir / CHECKPOINTS
        path = folder / step_checkpoint(self.state.step)
        state = {"zoo_version": __version__, "model": self.spec.name, "run_id": self.run_dir.name,
                 "world_size": self.world.size, "finished": finished, **self.state.to_dict(),
                 **counts, **({"privacy": self.privacy.state()} if self.privacy else {})}
        save_checkpoint(path, model=model, optimizers=optimizers, schedulers=self.schedulers,
                             scaler=self.precision.scaler, rng=rng, extra_tensors=totals, state=state)
        rotate(folder, path, self.options.keep_last)
        return path

    def _interrupted(self) -> Interrupted:
        return interrupted(self.interrupt.received or signal.SIGINT, self.interrupt.exit_code, step=self.state.step,
                           epoch=self.state.epoch, last=self.run_dir / CHECKPOINTS / LAST, run_dir=self.run_dir,
                           world_size=self.world.size)

    def _finish(self, stop_reason: str | None, seconds: float) -> dict[str, Any]:
        """Final weights and summary (process 0); every process returns the summary."""
        self.guard.flush()
        summary = summary_of(self, stop_reason, seconds)
        if self.world.is_main or self.sharded:  # the family's final metrics (a GAN's sample quality, say)
            with self._averaged(self.net):  # --ema: the final weights are the average
                summary["metrics"] = {**self.state.metrics, **self._family_metrics("final_metrics")}
                weights = self.sharded.final_weights(self.state.step) if self.sharded else self.net
                if self.world.is_main:
                    write_final(self.run_dir, weights, self.spec.name, summary)
        if self.world.is_main:
            finish_trackers(self.run_dir, self.options.log)
        self.world.barrier()
        return summary


# === where a run stands ==============================================================================================

@dataclass
class TrainState:
    """The run's position and history: what a checkpoint needs besides tensors to resume exactly."""

    #: The next epoch to run (from 1) and how many of its batches are done.
    epoch: int = 1
    batch_in_epoch: int = 0
    #: Optimizer steps done (one per batch, or per ``--accumulate`` batches).
    step: int = 0
    #: The best monitored value and its epoch, epochs since it improved, steps skipped for a bad loss.
    best: tuple[float, int] | None = None
    bad_epochs: int = 0
    skipped: int = 0
    #: The last epoch's metrics.
    metrics: dict[str, float] = field(default_factory=dict)

    def record_epoch(self, metrics: dict[str, float], monitor: tuple[str, str]) -> bool:
        """Take this epoch's metrics and move to the next epoch; True when the monitored metric improved."""
        name, mode = monitor
        value = metrics.get(name)
        improved = value is not None and (self.best is None or (value > self.best[0] if mode == "max"
                                                                 else value < self.best[0]))
        if improved:
            self.best, self.bad_epochs = (value, self.epoch), 0
        else:
            self.bad_epochs += 1
        self.metrics = metrics
        self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        return improved

    def to_dict(self) -> dict[str, Any]:
        """The JSON part of a checkpoint."""
        return {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "step": self.step,
                "best": list(self.best) if self.best else None, "bad_epochs": self.bad_epochs,
                "skipped": self.skipped, "metrics": self.metrics}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TrainState:
        best = tuple(state["best"]) if state.get("best") else None
        return cls(state["epoch"], state["batch_in_epoch"], state["step"], best,  # type: ignore[arg-type]
                   state["bad_epochs"], state["skipped"], dict(state["metrics"]))


class LossTotals:
    """Every loss part summed on the device (no host sync); averaged over all processes at the epoch end."""

    def __init__(self) -> None:
        self.totals: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def add(self, prefix: str, losses: dict[str, Any]) -> None:
        for key, value in losses.items():
            label = prefix + key
            total = self.totals.get(label)
            if total is None:
                self.totals[label] = value.detach().float().clone()
            else:
                total += value.detach()
            self.counts[label] = self.counts.get(label, 0) + 1

    def restore(self, totals: dict[str, Any], counts: dict[str, int], device: Any) -> None:
        self.totals = {k: v.to(device) for k, v in totals.items()}
        self.counts = dict(counts)

    def snapshot(self) -> tuple[dict[str, Any], dict[str, int]]:
        """This process's sums (on the CPU) and counts, to be gathered for a checkpoint."""
        return {k: v.cpu() for k, v in self.totals.items()}, dict(self.counts)

    @staticmethod
    def checkpoint_parts(snapshots: list[tuple[dict[str, Any], dict[str, int]]]) -> tuple[dict[str, Any], dict]:
        """Every process's :meth:`snapshot` as checkpoint tensors and JSON: process 0's as ``totals/NAME`` and
        ``counts``, process R's as ``totals@R/NAME`` and ``rank_counts[R-1]``."""
        tensors = {f"totals/{k}": v for k, v in snapshots[0][0].items()}
        for rank, (totals, _) in enumerate(snapshots[1:], start=1):
            tensors.update({f"totals@{rank}/{k}": v for k, v in totals.items()})
        return tensors, {"counts": snapshots[0][1], "rank_counts": [counts for _, counts in snapshots[1:]]}

    def restore_rank(self, checkpoint: Any, rank: int, device: Any) -> None:
        """Process ``rank``'s own sums and counts from a checkpoint (a checkpoint from before they were kept
        per process gives every process process 0's)."""
        per_rank = checkpoint.state.get("rank_counts")
        if rank == 0 or not per_rank:
            self.restore(checkpoint.prefixed("totals/"), checkpoint.state["counts"], device)
        else:
            self.restore(checkpoint.prefixed(f"totals@{rank}/"), per_rank[rank - 1], device)

    def averages(self, world: Any) -> dict[str, float]:
        """``train_<part>`` means over the epoch and every process; then the sums start again."""
        labels = sorted(self.totals)
        if not labels:
            return {}
        import torch

        sums = torch.stack([self.totals[k] for k in labels])
        counts = torch.tensor([float(self.counts[k]) for k in labels], device=sums.device)
        if world.distributed:
            import torch.distributed as dist

            both = torch.cat([sums, counts])
            dist.all_reduce(both)
            sums, counts = both[: len(labels)], both[len(labels):]
        self.__init__()  # type: ignore[misc]
        return {f"train_{k}": float(v) for k, v in zip(labels, (sums / counts).tolist(), strict=True)}


# === non-finite losses ===============================================================================================

class DeferredLossCheck:
    """Holds one step's loss parts until the next step (or a write) looks at them."""

    def __init__(self) -> None:
        self._pending: tuple[Any, Any, list[str], Any] | None = None

    def push(self, losses: dict[str, Any], where: Any) -> tuple[Any, str] | None:
        """Queue these losses; returns ``(where, parts)`` if the previously queued ones were not finite."""
        import torch

        problem = self.flush()
        values = torch.stack([v.detach().float().reshape(()) for v in losses.values()])
        event = None
        if values.is_cuda:
            host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
            host.copy_(values, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            values = host
        self._pending = (values, event, list(losses), where)
        return problem

    def flush(self) -> tuple[Any, str] | None:
        """Look at the queued losses now; ``(where, parts)`` if they were not finite."""
        if self._pending is None:
            return None
        values, event, names, where = self._pending
        self._pending = None
        if event is not None:
            event.synchronize()
        numbers = values.tolist()
        if math.isfinite(numbers[names.index("loss")]):
            return None
        return where, ", ".join(f"{name}={value:.4g}" for name, value in zip(names, numbers, strict=True))


def defer_wanted(device: Any, on_nan: str, distributed: bool) -> bool:
    """Defer only where it pays and is safe: one CUDA process that stops on a bad loss."""
    return device.type == "cuda" and on_nan == "stop" and not distributed


def non_finite_error(problem: tuple[Any, str], last_checkpoint: Any) -> Exception:
    """The one-line error for a non-finite loss at ``((step, epoch, optimizer), parts)``."""
    (step, epoch, name), parts = problem
    kept = (f"the last good checkpoint is {last_checkpoint}" if last_checkpoint.exists()
            else "no checkpoint was written yet")
    return ZooError(f"loss became non-finite at step {step} (epoch {epoch}, optimizer {name!r}): {parts}; "
                    f"{kept}; lower --lr, add --grad-clip, or pass --on-nan skip")


def loss_parts(losses: dict[str, Any]) -> str:
    """``loss=nan, kl=3.2``: the loss parts for a message (one host sync each; only on a bad step)."""
    return ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())


class LossGuard:
    """Per optimizer step: was the loss finite (here, in its accumulation group and on every process)?

    A bad loss raises the one-line error (``--on-nan stop``) or returns False (``skip``). Under torchrun one
    all-reduce shares the verdict and, with the last optimizer of a batch, the interrupt flag
    (:attr:`shared_interrupt`).
    """

    def __init__(self, device: Any, on_nan: str, world: Any, last_checkpoint: Any) -> None:
        self.deferred = DeferredLossCheck() if defer_wanted(device, on_nan, world.distributed) else None
        self.on_nan, self.world, self.last_checkpoint = on_nan, world, last_checkpoint
        self.bad_group = False
        self.shared_interrupt = False

    def check(self, losses: dict[str, Any], where: tuple[int, int, str], *, boundary: bool,
              share_interrupt: bool | None = None) -> bool:
        """``where`` is (step, epoch, optimizer); ``share_interrupt`` (last optimizer, torchrun) this
        process's interrupt flag to share."""
        if self.deferred is not None:  # looked at one step later: the GPU does not wait
            self.raise_if(self.deferred.push(losses, where))
            is_finite = True
        else:
            is_finite = math.isfinite(losses["loss"].item())  # one host sync (torch.isfinite costs more on CPU)
        if not boundary:  # accumulating: remember a bad micro-batch, decide at the boundary
            self.bad_group = self.bad_group or not is_finite
            return is_finite
        bad, self.bad_group = not is_finite or self.bad_group, False
        if self.world.distributed:
            if share_interrupt is not None:
                bad, self.shared_interrupt = self.world.any(bad, share_interrupt)
            else:
                (bad,) = self.world.any(bad)
        if bad and self.on_nan != "skip":
            self.raise_if((where, loss_parts(losses)))
        return not bad

    def flush(self) -> None:
        """Before anything is written: the last step's loss must have been finite."""
        if self.deferred is not None:
            self.raise_if(self.deferred.flush())

    def raise_if(self, problem: tuple[Any, str] | None) -> None:
        if problem is not None:
            raise non_finite_error(problem, self.last_checkpoint())


# === interrupts ======================================================================================================

#: The shell's convention: 128 + the signal number.
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted(ZooError):
    """Training stopped on a signal after saving; ``exit_code`` is 130 (SIGINT) or 143 (SIGTERM)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def interrupted(sig: Any, exit_code: int, *, step: int, epoch: int, last: Any, run_dir: Any,
                world_size: int) -> Interrupted:
    """The error a run stopped by ``sig`` ends with: where it stopped, what it saved, how to resume."""
    launcher = f" --nproc {world_size}" if world_size > 1 else ""
    return Interrupted(f"interrupted by {sig.name} at step {step} (epoch {epoch}); saved {last}; "
                       f"resume with: zoo train --resume {run_dir}{launcher}", exit_code)


class InterruptFlag:
    """Context manager: while active, SIGINT and SIGTERM set :attr:`received` instead of killing."""

    def __init__(self, abort_on_second: bool = True) -> None:
        self.abort_on_second = abort_on_second
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, object] = {}

    def __enter__(self) -> InterruptFlag:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            for sig in EXIT_CODES:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            if not self.abort_on_second:
                return
            raise KeyboardInterrupt  # the second signal: stop now
        self.received = signal.Signals(signum)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.received, 130) if self.received else 0
