"""``--strategy fsdp``: FSDP2 (``torch.distributed.fsdp.fully_shard``) on the same engine.

Each big block of the model (a model's own ``fsdp_blocks()``, else every element of a direct child that is a
``ModuleList``/``Sequential`` and every other direct child with parameters) is sharded, then the root: every
process keeps 1/N of the parameters, gradients and optimizer state and gathers a block's weights only while
it runs. Checkpoints stay one safetensors file with the layout of a single-process one: the full model and
optimizer state are gathered to process 0 (on the CPU) and written there; resuming loads the full state and
shards it again. Evaluation, the family's epoch-end hooks and the final ``model.safetensors`` use a plain
copy of the model on process 0 that takes the gathered weights (so export works unchanged).
"""

from __future__ import annotations

import copy
import sys
from typing import Any

from zoo.errors import ZooError

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


class Sharded:
    """A model sharded with FSDP2, and what the engine needs from it: the full state for checkpoints,
    evaluation and final weights (gathered by every process, kept by process 0), and loading one back."""

    def __init__(self, net: Any, is_main: bool) -> None:
        from torch.distributed.fsdp import fully_shard

        self.net = net
        self.plain = copy.deepcopy(net) if is_main else None  # takes gathered weights; never trained itself
        for block in block_modules(net):
            fully_shard(block)
        fully_shard(net)
        self._gathered: tuple[int, dict[str, Any]] | None = None

    def model_state(self, step: int) -> dict[str, Any]:
        """The full model state dict on process 0 (on the CPU; empty elsewhere). Collective; kept per step."""
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        if self._gathered is None or self._gathered[0] != step:
            self._gathered = (step, get_model_state_dict(self.net, options=_options()))
        return self._gathered[1]

    def plain_model(self, step: int) -> Any:
        """Process 0: the plain model holding the weights at ``step``; others: None. Collective."""
        state = self.model_state(step)
        if self.plain is not None:
            self.plain.load_state_dict(state, strict=True)
        return self.plain

    def checkpoint_parts(self, optimizers: dict[str, Any], step: int) -> tuple[Any, dict[str, Any]]:
        """What :func:`zoo.engine.checkpoint.save_checkpoint` takes as ``model`` and ``optimizers``: the full
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

        from zoo.engine.checkpoint import optimizer_state
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
        from torch.distributed.checkpoint.state_dict import get_model_state_dict, set_model_state_dict

        from zoo.engine.init_weights import load_init

        view = _FullView(self.net, get_model_state_dict(self.net, options=_options(on_cpu=False)))
        record = load_init(view, path, model_name, say=say)
        set_model_state_dict(self.net, view.full, options=_options(on_cpu=False))
        return record

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
    """The sharded model as :func:`zoo.engine.init_weights.load_init` sees it: full tensors to copy into."""

    def __init__(self, net: Any, full: dict[str, Any]) -> None:
        self.net, self.full = net, full

    def state_dict(self) -> dict[str, Any]:
        return self.full

    def __getattr__(self, name: str) -> Any:
        return getattr(self.net, name)


def shard_model(net: Any, options: Any, world: Any) -> Sharded | None:
    """``net`` sharded when ``--strategy fsdp`` runs in several processes; None otherwise (one process trains
    the whole model, as FSDP over one process would, and says so)."""
    if options.strategy != FSDP:
        return None
    if not world.distributed:
        if world.is_main and options.progress:
            print("zoo: --strategy fsdp in one process: nothing to shard, training the whole model "
                  "(launch with --nproc N or torchrun to shard it)", file=sys.stderr)
        return None
    return Sharded(net, world.is_main)
