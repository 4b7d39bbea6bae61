"""Processes: torchrun's environment, DDP, the ``--nproc`` launcher and its output filter, and FSDP.

Multi-process training on PyTorch's own engine: torchrun's environment, gloo/NCCL, DDP.

``torchrun --nproc-per-node N -m zoo train ...`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; this
module reads them, joins the process group and answers "who am I" for the loop. A single process
is a world of size 1 and never touches ``torch.distributed``.

What ``zoo train --nproc N`` shows of torchrun's stderr: the workers' own lines, not torchrun's chatter.
A worker's ``Error:`` line is held until torchrun ends: when torchrun reports that a worker was killed by a
signal (kill -9, the OOM killer, a crash in C code), the others' errors are consequences (a lost connection)
and one line says who died and how to resume instead.

torchrun logs warnings in glog style (``W1128 12:00:00.123 …``), a banner about ``OMP_NUM_THREADS``, and
on any failure or signal a Python traceback of its own (``ChildFailedError``, ``SignalException``) with a
report block. The workers already said what went wrong in one line, so all of that is dropped (unless
``--debug``); everything else passes through as it comes, progress bars included.

``--strategy fsdp``: FSDP2 (``torch.distributed.fsdp.fully_shard``) on the same engine.

Each big block of the model (a model's own ``fsdp_blocks()``, else every element of a direct child that is a
``ModuleList``/``Sequential`` and every other direct child with parameters) is sharded, then the root: every
process keeps 1/N of the parameters, gradients and optimizer state and gathers a block's weights only while
it runs. The model is built on the CPU and sharded there; only each process's shards move to the device, so
no process ever holds the whole model on it. Checkpoints stay one safetensors file with the layout of a
single-process one: the full model and optimizer state are gathered to process 0 (on the CPU) and written
there; resuming loads the full state and shards it again; the final ``model.safetensors`` is the gathered
state too (so export works unchanged). Evaluation and the family's epoch-end hooks run on the sharded model
on every process (its forward is collective), from the same random state; only process 0's results and
files are kept.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Any, BinaryIO

from zoo.errors import ZooError

# === processes and DDP ===============================================================================================

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


def launch(nproc: int, args: list[str], debug: bool = False) -> int:
    """Run ``zoo train ARGS`` under torchrun with ``nproc`` processes on this machine; its exit code.

    A Ctrl-C reaches torchrun and its workers from the terminal, so this process only waits for them
    to save and stop; a SIGTERM sent to this process alone is passed on to torchrun. The exit code is
    process 0's own (2 for an error, 130/143 for a signal: torchrun itself only says 1), and torchrun's
    own log lines and traceback are left out unless ``debug``.
    """
    import signal
    import tempfile

    from zoo.faults import EXIT_FILE_VAR

    if "WORLD_SIZE" in os.environ:
        raise ZooError("--nproc was given inside a torchrun process; use either torchrun or --nproc, not both")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
               "--standalone", "-m", "zoo", "train", *args]
    with tempfile.TemporaryDirectory(prefix="zoo-launch-") as folder:
        exit_file, run_dir_file = os.path.join(folder, "exit-code"), os.path.join(folder, "run-dir")
        env = {**os.environ, EXIT_FILE_VAR: exit_file, RUN_DIR_VAR: run_dir_file,
               **({"ZOO_DEBUG": "1"} if debug else {})}
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
        run_dir = _read_text(run_dir_file)
    if code and not received and not debug and (stream.killed() or not stream.worker_spoke):
        # kill -9 of one worker: what the others said after it (a lost connection) is a consequence, left out
        sys.stderr.write(stream.failure_line(run_dir, nproc) + "\n")
        sys.stderr.flush()
        return stream.exit_code()
    stream.release()
    if worker is not None and (code or worker):
        return worker
    # torchrun exits 1 whenever its workers stopped on a signal; report the signal instead.
    return 128 + received[0] if received and code else code


def _read_exit_code(path: str) -> int | None:
    try:
        return int(_read_text(path) or "")
    except ValueError:
        return None


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


#: Under the ``--nproc`` launcher: the file where process 0 notes its run folder (for the launcher's message
#: when a worker dies without a word).
RUN_DIR_VAR = "ZOO_RUN_DIR_FILE"


def note_run_dir(run_dir: Any) -> None:
    """Process 0 under the ``--nproc`` launcher: tell the launcher which run folder it trains in."""
    path = os.environ.get(RUN_DIR_VAR)
    if not path or os.environ.get("RANK", "0") != "0":
        return
    with contextlib.suppress(OSError), open(path, "w", encoding="utf-8") as handle:
        handle.write(str(run_dir))


# === the launcher's output ===========================================================================================

_TORCHRUN_LOG = re.compile(rb"^[EWIF]\d{4} \d\d:\d\d:\d\d")
_BANNER = (b"*****", b"Setting OMP_NUM_THREADS environment variable")
_WORKER_LINES = (b"Error: ", b"zoo: ")
#: torchrun's failure report names the first process that failed and how (``exitcode  : -9 (pid: 123)``).
_FAILED_RANK = re.compile(rb"^\s*rank\s*:\s*(\d+)")
_FAILED_CODE = re.compile(rb"^\s*exitcode\s*:\s*(-?\d+)")


class StderrFilter:
    """Feed it torchrun's stderr in chunks; it writes what a user should see to ``sink``."""

    def __init__(self, sink: BinaryIO) -> None:
        self.sink = sink
        self.pending = b""
        self.in_traceback = False
        #: A worker's own "Error: ..." or "zoo: ..." line came (then nothing needs adding).
        self.worker_spoke = False
        #: Workers' "Error: ..." lines, held until torchrun ends (:meth:`release`).
        self.held: list[bytes] = []
        #: From torchrun's report: the first failed process's rank and exit code (negative: killed by a signal);
        #: its "Root Cause" block wins over the processes torchrun stopped itself, listed before it.
        self.failed_rank: int | None = None
        self.failed_code: int | None = None
        self.in_root_cause = False

    def feed(self, chunk: bytes) -> None:
        data = self.pending + chunk
        start = 0
        for match in re.finditer(rb"[\r\n]", data):
            self._line(data[start : match.end()])
            start = match.end()
        self.pending = data[start:]
        if self.pending.startswith(b"\x1b") or (self.pending and not self.in_traceback and len(self.pending) > 4096):
            self._line(self.pending)  # a long partial line (a progress bar): show it now
            self.pending = b""

    def close(self) -> None:
        if self.pending:
            self._line(self.pending)
            self.pending = b""

    def _line(self, line: bytes) -> None:
        stripped = line.lstrip()
        if stripped.startswith(b"Root Cause") and not self.in_root_cause:
            self.in_root_cause, self.failed_rank, self.failed_code = True, None, None
        for pattern, name in ((_FAILED_RANK, "failed_rank"), (_FAILED_CODE, "failed_code")):
            if (found := pattern.match(stripped)) and getattr(self, name) is None:
                setattr(self, name, int(found.group(1)))
        if stripped.startswith(b"Traceback (most recent call last)"):
            self.in_traceback = True  # torchrun's own; a worker's would come only with --debug
        if _TORCHRUN_LOG.match(stripped) or stripped.startswith(_BANNER):
            return
        if self.in_traceback and not stripped.startswith(_WORKER_LINES):
            return
        if stripped.startswith(_WORKER_LINES):
            self.worker_spoke = True
        if stripped.startswith(b"Error: "):
            self.held.append(line)
            return
        self.sink.write(line)
        self.sink.flush()

    def release(self) -> None:
        """Write the held ``Error:`` lines (torchrun has ended and no worker was killed)."""
        for line in self.held:
            self.sink.write(line)
        self.sink.flush()
        self.held = []

    def killed(self) -> bool:
        """Did torchrun report that the first process to fail was killed by a signal?"""
        return self.failed_code is not None and self.failed_code < 0

    def exit_code(self) -> int:
        """What ``zoo train --nproc`` exits with when a worker died without a word: 128 + the signal that killed
        it (as a shell reports a killed process), else 1."""
        return 128 - self.failed_code if self.failed_code is not None and self.failed_code < 0 else 1

    def failure_line(self, run_dir: str | None = None, nproc: int | None = None) -> str:
        """One line for a run that torchrun ended without any worker saying why (a worker killed by a signal,
        or one that crashed in C code), with how to go on from ``run_dir`` (process 0's run folder) if known."""
        import signal

        from zoo.run_layout import CHECKPOINTS, LAST

        who = f"training process {self.failed_rank}" if self.failed_rank is not None else "a training process"
        if self.failed_code is not None and self.failed_code < 0:
            try:
                how = f"was killed by {signal.Signals(-self.failed_code).name}"
            except ValueError:
                how = f"was killed by signal {-self.failed_code}"
        elif self.failed_code is not None:
            how = f"exited with code {self.failed_code} without a message"
        else:
            how = "stopped without a message"
        launcher = f" --nproc {nproc}" if nproc else ""
        if not run_dir:
            after = f"resume from the run's last checkpoint with zoo train --resume RUN_DIR{launcher}"
        elif os.path.exists(os.path.join(run_dir, CHECKPOINTS, LAST)):
            after = f"its last checkpoint is intact: resume with zoo train --resume {run_dir}{launcher}"
        else:
            after = f"{run_dir} has no checkpoint yet: start the run again"
        return f"Error: {who} {how}, so torchrun stopped the others; {after} (zoo --debug shows torchrun's report)"


def pump(source: BinaryIO, sink: BinaryIO, stream: StderrFilter | None = None) -> threading.Thread:
    """Copy ``source`` to ``sink`` through a :class:`StderrFilter` (``stream``, or a new one), in a background
    thread."""
    stream = stream if stream is not None else StderrFilter(sink)

    def run() -> None:
        fd = source.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            stream.feed(chunk)
        stream.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# === FSDP ============================================================================================================

FSDP = "fsdp"


def check_strategy(options: Any, family: Any, ctx: Any) -> None:
    """Refuse what ``--strategy fsdp`` cannot train, before a run folder exists (in one process too, so
    a command that works in one process also works in several)."""
    if options.strategy != FSDP:
        return
    family_name = ctx.spec.family if ctx.spec else type(family).__name__
    optimizers = len(family.optimizer_steps(ctx))
    why = None
    if not getattr(family, "wraps_for_ddp", True):
        why = "calls parts of its model directly (model.generator, model.encoder...)"
    elif optimizers > 1:
        why = f"steps {optimizers} optimizers"
    if why:
        raise ZooError(f"--strategy fsdp: family {family_name!r} {why}; FSDP shards one model called as a whole "
                       "with one optimizer. Train it with --strategy ddp")
    if options.channels_last:
        raise ZooError("--strategy fsdp does not combine with --channels-last (FSDP2 shards contiguous parameters "
                       "only); drop --channels-last or use --strategy ddp")
    if options.ema is not None:
        raise ZooError("--strategy fsdp does not combine with --ema yet (the average would need sharding too); "
                       "drop --ema or use --strategy ddp")
    if options.compile:
        raise ZooError("--strategy fsdp does not combine with --compile yet (the model would train uncompiled: "
                       "FSDP2 needs per-block compilation); drop --compile or use --strategy ddp")


def block_modules(net: Any) -> list[Any]:
    """The modules sharded one by one before the root (see the module docstring). A child whose parameters
    are shared with another one (tied weights) is left to the root."""
    import torch

    if hasattr(net, "fsdp_blocks"):
        return list(net.fsdp_blocks())
    blocks = []
    for child in net.children():
        if isinstance(child, (torch.nn.ModuleList, torch.nn.Sequential)):
            blocks += [m for m in child if any(True for _ in m.parameters())]
        elif any(True for _ in child.parameters()):
            blocks.append(child)
    owners: dict[int, int] = {}
    for block in blocks:
        for param in block.parameters():
            owners[id(param)] = owners.get(id(param), 0) + 1
    everywhere: dict[int, int] = {}
    for _, param in net.named_parameters(remove_duplicate=False):
        everywhere[id(param)] = everywhere.get(id(param), 0) + 1
    return [b for b in blocks if all(owners[id(p)] == everywhere[id(p)] == 1 for p in b.parameters())]


def _options(on_cpu: bool = True) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=on_cpu)


def shards(options: Any, world: Any) -> bool:
    """Will the model be sharded (``--strategy fsdp`` over several processes)? Then it is built on the CPU and
    :class:`Sharded` moves only each process's shards to the device."""
    return options.strategy == FSDP and world.distributed


class Sharded:
    """A model sharded with FSDP2, and what the engine needs from it: the full state for checkpoints and the
    final weights (gathered to process 0, on the CPU), loading one back, and evaluation on the shards.

    ``net`` is built on the CPU: each block is sharded there and only this process's shards move to ``device``
    (``fully_shard`` moves a block's parameters to the mesh's device as it shards them), so no process ever holds
    the whole model on the device, only its shards and, while a block runs, that block's gathered weights.
    """

    def __init__(self, net: Any, device: Any, world_size: int, is_main: bool) -> None:
        import torch
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

        self.net, self.is_main = net, is_main
        self.device = torch.device(device)
        mesh = init_device_mesh(self.device.type, (world_size,))
        blocks = block_modules(net)
        for block in blocks:
            fully_shard(block, mesh=mesh)
        fully_shard(net, mesh=mesh)
        for module in (*blocks, net):  # methods called instead of forward (a GPT's forward_cached when sampling)
            for name in getattr(module, "fsdp_forward_methods", ()):
                register_fsdp_forward_method(module, name)
        self._gathered: tuple[int, dict[str, Any]] | None = None

    def model_state(self, step: int) -> dict[str, Any]:
        """The full model state dict on process 0 (on the CPU; empty elsewhere). Collective; kept per step."""
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        if self._gathered is None or self._gathered[0] != step:
            self._gathered = (step, get_model_state_dict(self.net, options=_options()))
        return self._gathered[1]

    def final_weights(self, step: int) -> Any:
        """What :func:`zoo.engine.persistence.write_final` takes as the model: the gathered state. Collective."""
        return _Saved(self.model_state(step))

    @contextlib.contextmanager
    def evaluating(self, ctx: Any, seed: int) -> Any:
        """Run a family hook on the sharded model on every process: its forward is collective, so every process
        calls it the same way, from the same random state (``seed``; the training random state is untouched).
        The context to hand the hook is yielded: process 0's writes into the run folder, the others' into a
        scratch folder removed afterwards. The model's gathered weights are freed at the end."""
        import tempfile
        from dataclasses import replace
        from pathlib import Path

        import torch

        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []))
            torch.manual_seed(seed)
            if not self.is_main and ctx.run_dir is not None:
                scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="zoo-fsdp-eval-"))
                ctx = replace(ctx, run_dir=Path(scratch))
            yield ctx
        self.net.reshard()  # the root's own weights stay gathered after a forward without backward

    def checkpoint_parts(self, optimizers: dict[str, Any], step: int) -> tuple[Any, dict[str, Any]]:
        """What :func:`zoo.engine.persistence.save_checkpoint` takes as ``model`` and ``optimizers``: the full
        states in the single-process layout (optimizer state by parameter index). Collective."""
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        model = _Saved(self.model_state(step))
        optims = {}
        for name, optimizer in optimizers.items():
            full = get_optimizer_state_dict(self.net, optimizer, options=_options())
            optims[name] = _Saved(self._by_index(optimizer, full))
        return model, optims

    def restore(self, checkpoint: Any, optimizers: dict[str, Any], model_name: str) -> None:
        """Load a checkpoint's full model and optimizer states into the sharded ones (every process reads it)."""
        from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

        from zoo.engine.persistence import optimizer_state
        from zoo.state_dicts import mismatch

        state = checkpoint.prefixed("model/")
        problem = mismatch(self.net.state_dict(), state)
        if problem:
            raise ZooError(f"weights in {checkpoint.path} do not fit model {model_name!r} ({problem}); "
                           "use the run directory these weights were trained in")
        set_model_state_dict(self.net, state, options=_options(on_cpu=False))
        for name, optimizer in optimizers.items():
            saved = optimizer_state(optimizer, checkpoint, name)
            try:
                set_optimizer_state_dict(self.net, optimizer, self._by_name(optimizer, saved),
                                         options=_options(on_cpu=False))
            except (ValueError, KeyError, TypeError, RuntimeError) as exc:
                raise ZooError(f"checkpoint {checkpoint.path}: optimizer {name!r} does not fit this model ({exc}); "
                               "the checkpoint is damaged or from another model") from exc

    def load_init(self, path: str, model_name: str, say: bool) -> Any:
        """``--init``: the file's weights into the sharded model (each process reads it); its InitRecord."""
        from torch.distributed.checkpoint.state_dict import set_model_state_dict

        from zoo.engine.adapt import load_init

        view = _FullView(self.net, self._full_on_cpu())
        record = load_init(view, path, model_name, say=say)
        set_model_state_dict(self.net, view.full, options=_options(on_cpu=False))
        return record

    def _full_on_cpu(self) -> dict[str, Any]:
        """The full state on every process, on the CPU, gathered one tensor at a time (never the whole model on
        the device, as ``get_model_state_dict`` without ``cpu_offload`` would). Collective."""
        from torch.distributed.tensor import DTensor

        return {key: (value.full_tensor() if isinstance(value, DTensor) else value).to("cpu")
                for key, value in self.net.state_dict().items()}

    # --- optimizer state: parameter names (torch's full state dict) <-> indices (the checkpoint) ----------

    def _names(self, optimizer: Any) -> list[str]:
        names = {id(p): name for name, p in self.net.named_parameters()}
        return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]

    def _by_index(self, optimizer: Any, full: dict[str, Any]) -> dict[str, Any]:
        if not full:  # not process 0
            return {"state": {}, "param_groups": []}
        index = {name: i for i, name in enumerate(self._names(optimizer))}
        groups = [{**group, "params": [index[n] for n in group["params"]]} for group in full["param_groups"]]
        return {"state": {index[n]: values for n, values in full["state"].items()}, "param_groups": groups}

    def _by_name(self, optimizer: Any, saved: dict[str, Any]) -> dict[str, Any]:
        names = self._names(optimizer)
        groups = [{**group, "params": [names[i] for i in group["params"]]} for group in saved["param_groups"]]
        return {"state": {names[i]: values for i, values in saved["state"].items()}, "param_groups": groups}


class _Saved:
    """A gathered state dict where a module or optimizer is expected (``state_dict()``)."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def state_dict(self) -> dict[str, Any]:
        return self.state


class _FullView:
    """The sharded model as :func:`zoo.engine.adapt.load_init` sees it: full tensors to copy into."""

    def __init__(self, net: Any, full: dict[str, Any]) -> None:
        self.net, self.full = net, full

    def state_dict(self) -> dict[str, Any]:
        return self.full

    def __getattr__(self, name: str) -> Any:
        return getattr(self.net, name)


def shard_model(net: Any, options: Any, world: Any, device: Any) -> Sharded | None:
    """``net`` (built on the CPU) sharded onto ``device`` when ``--strategy fsdp`` runs in several processes
    (:func:`shards`); None otherwise (one process trains the whole model, as FSDP over one process would, and
    says so)."""
    if options.strategy != FSDP:
        return None
    if not world.distributed:
        if world.is_main and options.progress:
            print("zoo: --strategy fsdp in one process: nothing to shard, training the whole model "
                  "(launch with --nproc N or torchrun to shard it)", file=sys.stderr)
        return None
    return Sharded(net, device, world.size, world.is_main)
