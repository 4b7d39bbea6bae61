"""Multi-process training on PyTorch's own engine: torchrun's environment, gloo/NCCL, DDP.

``torchrun --nproc-per-node N -m zoo train ...`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; this
module reads them, joins the process group and answers "who am I" for the loop. A single process
is a world of size 1 and never touches ``torch.distributed``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from zoo.errors import ZooError


@dataclass
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def any(self, *flags: bool) -> list[bool]:
        """For each flag: is it set on any process? (One small all-reduce; free in a single process.)"""
        if not self.distributed:
            return list(flags)
        import torch
        import torch.distributed as dist

        device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        tensor = torch.tensor([float(f) for f in flags], device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return [bool(v) for v in tensor.tolist()]

    def sync_gradients(self, optimizer: Any) -> None:
        """Average the gradients of ``optimizer``'s parameters over all processes (what DDP does for a
        wrapped model; the engine calls this for families that call model parts). Free in one process."""
        if not self.distributed:
            return
        import torch.distributed as dist

        for group in optimizer.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
                    param.grad.div_(self.size)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order, on every process."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out


def world_from_env() -> World:
    """The world torchrun described in the environment (a world of one without torchrun)."""
    size, rank, local = (_env_int(name, default) for name, default in
                         (("WORLD_SIZE", 1), ("RANK", 0), ("LOCAL_RANK", 0)))
    if size < 1 or not 0 <= rank < size:
        raise ZooError(f"WORLD_SIZE={size} and RANK={rank} do not describe a process group; "
                       "let torchrun set them, or unset them")
    return World(rank, size, local)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ZooError(f"environment variable {name}={value!r} is not a whole number; "
                       "let torchrun set it, or unset it") from exc


def init_process_group(world: World, device: Any) -> None:
    """Join the process group: NCCL on CUDA, gloo on the CPU."""
    if not world.distributed:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def shutdown(world: World, *holders: Any, finished: bool = False) -> None:
    """Leave the process group.

    Objects that hold the group (a DDP wrapper and its reducer) are dropped first. After a finished run
    every process also waits for the others before the group goes: one that tears its group down while
    a peer's still runs can abort at exit (gloo's "terminate called without an active exception"). After
    a failure there is no waiting: the peers may be inside another collective.
    """
    if not world.distributed:
        return
    import gc

    import torch.distributed as dist

    for holder in holders:
        if holder is not None and hasattr(holder, "model"):
            holder.model = None
    gc.collect()
    if dist.is_initialized():
        if finished:
            with contextlib.suppress(Exception):  # a peer that failed just now must not hide its own error
                dist.barrier()
        dist.destroy_process_group()


def wrap_model(net: Any, world: World, device: Any, family: Any, optimizers: int = 1) -> Any:
    """``net`` wrapped in DistributedDataParallel when there are several processes, else ``net``.

    A family that calls parts of its model directly (``model.generator``; ``Family.wraps_for_ddp``
    False) gets the plain module, which a DDP wrapper would neither expose nor synchronise; the engine
    then averages its gradients itself (:meth:`World.sync_gradients`). With several optimizers each
    backward pass reaches only part of the model, so DDP looks for unused parameters.
    """
    if not world.distributed or not getattr(family, "wraps_for_ddp", True):
        return net
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(net, device_ids=ids,
                                   find_unused_parameters=optimizers > 1)


def average_gradients(optimizer: Any, world: World) -> None:
    """Kept for old callers: :meth:`World.sync_gradients`."""
    world.sync_gradients(optimizer)


def launch(nproc: int, args: list[str], debug: bool = False) -> int:
    """Run ``zoo train ARGS`` under torchrun with ``nproc`` processes on this machine; its exit code.

    A Ctrl-C reaches torchrun and its workers from the terminal, so this process only waits for them
    to save and stop; a SIGTERM sent to this process alone is passed on to torchrun. The exit code is
    process 0's own (2 for an error, 130/143 for a signal: torchrun itself only says 1), and torchrun's
    own log lines and traceback are left out unless ``debug``.
    """
    import signal
    import tempfile

    from zoo.engine.launcher_output import StderrFilter, pump
    from zoo.faults import EXIT_FILE_VAR

    if "WORLD_SIZE" in os.environ:
        raise ZooError("--nproc was given inside a torchrun process; use either torchrun or --nproc, not both")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
               "--standalone", "-m", "zoo", "train", *args]
    with tempfile.TemporaryDirectory(prefix="zoo-launch-") as folder:
        exit_file = os.path.join(folder, "exit-code")
        env = {**os.environ, EXIT_FILE_VAR: exit_file, **({"ZOO_DEBUG": "1"} if debug else {})}
        proc = subprocess.Popen(command, env=env, stderr=None if debug else subprocess.PIPE)
        stream = StderrFilter(sys.stderr.buffer)
        reader = None if debug else pump(proc.stderr, sys.stderr.buffer, stream)  # type: ignore[arg-type]
        received: list[int] = []

        def forward(signum: int, frame: Any) -> None:
            received.append(signum)
            proc.send_signal(signum)

        previous = signal.signal(signal.SIGTERM, forward)
        try:
            while True:
                try:
                    code = proc.wait()
                    break
                except KeyboardInterrupt:
                    received.append(signal.SIGINT)
        finally:
            signal.signal(signal.SIGTERM, previous)
        if reader is not None:
            reader.join(timeout=10)
        worker = _read_exit_code(exit_file)
    if worker is not None and (code or worker):
        return worker
    if code and not received and not debug and not stream.worker_spoke:  # e.g. kill -9 of one worker
        sys.stderr.write(stream.failure_line() + "\n")
        sys.stderr.flush()
        return 1
    # torchrun exits 1 whenever its workers stopped on a signal; report the signal instead.
    return 128 + received[0] if received and code else code


def _read_exit_code(path: str) -> int | None:
    try:
        with open(path) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None
