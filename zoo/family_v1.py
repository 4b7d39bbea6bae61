"""Families written for contract 1 (positional hook arguments) keep working, with a deprecation line.

Contract 1 hooks: ``configure_optimizers(model, hp)``, ``training_step(model, batch, optimizer)``,
``evaluate(model, data, device)``, ``epoch_end(model, data, run_dir, epoch, device)``,
``final_metrics(model, data, run_dir, device)``, and ``optimizer_order`` possibly rewritten inside
``configure_optimizers``. :func:`adapt_family` recognises such a family by its signatures and wraps it
so the engine only ever sees contract 2 (:class:`zoo.family.RunContext`). Removed in contract 3.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

from zoo.family import Family, RunContext

#: Contract-1 parameter counts (without ``self``) of the hooks whose shape changed.
_V1_ARITY = {"training_step": 3, "evaluate": 3, "epoch_end": 5, "final_metrics": 4}
_warned: set[tuple[str, str]] = set()


def v1_hooks(family: Family) -> list[str]:
    """The hooks ``family`` implements with their contract-1 signature (a family may mix: a v1 subclass
    of a v2 family keeps the parent's v2 hooks)."""
    found = [name for name, count in _V1_ARITY.items()
             if _arity(getattr(family, name)) == count and "ctx" not in _names(getattr(family, name))]
    params = list(inspect.signature(family.configure_optimizers).parameters.values())
    if len(params) >= 2 and (params[1].name == "hp" or "dict" in str(params[1].annotation)):
        found.append("configure_optimizers")
    return found


def is_v1(family: Family) -> bool:
    """True when ``family`` implements a hook with its contract-1 signature."""
    return bool(v1_hooks(family))


def adapt_family(family: Family, name: str, plugin: str) -> Family:
    """``family`` itself when it speaks contract 2, else a contract-2 wrapper (warned once per family)."""
    old = v1_hooks(family)
    if not old:
        return family
    if (plugin, name) not in _warned:
        _warned.add((plugin, name))
        print(f"zoo: warning: family {name!r} of plugin {plugin!r} uses the contract-1 signature of "
              f"{', '.join(old)} (deprecated, removed in contract 3); take a RunContext (docs/plugins.md, Family)",
              file=sys.stderr)
    return V1Family(family)


def _names(method: Any) -> list[str]:
    return list(inspect.signature(method).parameters)


def _arity(method: Any) -> int:
    return len([p for p in inspect.signature(method).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])


class V1Family(Family):
    """A contract-1 family seen through contract 2."""

    def __init__(self, inner: Family) -> None:
        self.inner = inner
        self.v1 = set(v1_hooks(inner))

    def __getattr__(self, name: str) -> Any:  # monitor, hyperparameters, wraps_for_ddp, own helpers
        return getattr(self.inner, name)

    @property
    def monitor(self) -> tuple[str, str]:  # type: ignore[override]
        return self.inner.monitor

    @property
    def hyperparameters(self) -> dict[str, Any]:  # type: ignore[override]
        return self.inner.hyperparameters

    @property
    def wraps_for_ddp(self) -> bool:  # type: ignore[override]
        return self.inner.wraps_for_ddp

    @property
    def optimizer_order(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.inner.optimizer_order)

    def prepare_data(self, ctx: RunContext, model_args: dict[str, Any]) -> Any:
        return self.inner.prepare_data(ctx, model_args)

    def data_args(self, spec: Any, data: Any) -> dict[str, Any]:
        return self.inner.data_args(spec, data)

    def build(self, spec: Any, data: Any, model_args: dict[str, Any]) -> Any:
        return self.inner.build(spec, data, model_args)

    def graphs(self, model: Any, data: Any) -> list[Any]:
        return self.inner.graphs(model, data)

    def configure_optimizers(self, model: Any, ctx: RunContext) -> dict[str, Any]:
        if "configure_optimizers" in self.v1:
            return self.inner.configure_optimizers(model, dict(ctx.hyperparameters))
        return self.inner.configure_optimizers(model, ctx)

    def lr_schedule(self, ctx: RunContext) -> Any:
        return self.inner.lr_schedule(ctx)

    def optimizer_steps(self, ctx: RunContext) -> tuple[str, ...]:
        if type(self.inner).optimizer_steps is not Family.optimizer_steps:
            return self.inner.optimizer_steps(ctx)
        return tuple(self.inner.optimizer_order)  # read after configure_optimizers, which may rewrite it

    def training_step(self, model: Any, batch: Any, optimizer: str, ctx: RunContext) -> dict[str, Any]:
        if "training_step" in self.v1:
            return self.inner.training_step(model, batch, optimizer)
        return self.inner.training_step(model, batch, optimizer, ctx)

    def evaluate(self, model: Any, ctx: RunContext) -> dict[str, float]:
        if "evaluate" in self.v1:
            return self.inner.evaluate(model, ctx.data, ctx.device)
        return self.inner.evaluate(model, ctx)

    def epoch_end(self, model: Any, ctx: RunContext) -> dict[str, float]:
        if "epoch_end" in self.v1:
            return self.inner.epoch_end(model, ctx.data, ctx.run_dir, ctx.epoch, ctx.device)
        return self.inner.epoch_end(model, ctx)

    def final_metrics(self, model: Any, ctx: RunContext) -> dict[str, Any]:
        if "final_metrics" in self.v1:
            return self.inner.final_metrics(model, ctx.data, ctx.run_dir, ctx.device)
        return self.inner.final_metrics(model, ctx)
