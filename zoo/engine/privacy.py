"""Differentially private training (``zoo train --dp-epsilon E``): DP-SGD through Opacus (docs/privacy.md).

One object, :class:`Privacy`, is all the loop sees: it checks what DP-SGD can train before a run folder exists,
hooks Opacus' per-sample gradients onto the model, wraps the optimizer in Opacus' ``DPOptimizer`` (each
sample's gradient clipped to ``--dp-max-grad-norm``, Gaussian noise of ``noise_multiplier × clip`` added to
their sum), draws each step's batch by Poisson sampling (every training sample independently with probability
``batch_size / N``: a pure function of seed, epoch and step, so a resumed run draws the same batches), and keeps
Opacus' RDP accountant, whose history is checkpointed: a resumed run spends exactly what an uninterrupted one
does. With several processes (``--nproc``) every process draws the same global Poisson batch and trains on its own
share of it (the samples ``i`` with ``i % world == rank``); Opacus' ``DistributedDPOptimizer`` clips each process's
samples, adds the noise once (in process 0) and sums the gradients over the processes, so the step is the one a
single process would take and the accountant counts the global sampling rate. The noise multiplier is chosen
before training so that the planned steps spend at most ``--dp-epsilon`` at ``--dp-delta``; the loop stops before
a step that would spend more.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from zoo.errors import ZooError

#: δ when ``--dp-delta`` is not given (well below 1 / N for the datasets zoo trains on; the usual choice).
DEFAULT_DELTA = 1e-5
#: Per-sample gradient norm bound when ``--dp-max-grad-norm`` is not given.
DEFAULT_MAX_GRAD_NORM = 1.0
#: The chance of an empty Poisson batch anywhere in a run's plan that is refused (``check_batch_share``).
EMPTY_BATCH_RISK = 0.01
#: The accountant (Rényi DP, Opacus' default and the one its noise calibration uses).
ACCOUNTANT = "rdp"


@dataclass
class PrivacySpent:
    """What a DP run has spent and with which settings (per epoch in metrics, in summary.json, the manifest, the
    card)."""

    epsilon: float
    delta: float
    target_epsilon: float
    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    steps: int
    accountant: str = ACCOUNTANT
    #: Model arguments the family chose so that DP-SGD can train the model (``Family.private_model_args``, e.g.
    #: ``{"norm": "group"}``); they are in the run's ``model_args`` too, so every rebuild builds that variant.
    model_args: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        return asdict(self)

    def metrics(self) -> dict[str, float]:
        """The epoch's metrics: ``dp_epsilon`` and the settings that produced it."""
        return {"dp_epsilon": self.epsilon, "dp_delta": self.delta, "dp_noise_multiplier": self.noise_multiplier,
                "dp_max_grad_norm": self.max_grad_norm, "dp_sample_rate": self.sample_rate}


def wanted(options: Any) -> bool:
    """True when the options ask for DP training."""
    return getattr(options, "dp_epsilon", None) is not None


def check_options(options: Any, family: Any, world_size: int, optimizer_names: tuple[str, ...]) -> None:
    """Refuse, in one line and before a run folder exists, what DP-SGD cannot do here."""
    if not wanted(options):
        if options.dp_delta is not None or options.dp_max_grad_norm is not None:
            raise ZooError("--dp-delta and --dp-max-grad-norm belong to DP training; add --dp-epsilon E")
        return
    delta = options.dp_delta if options.dp_delta is not None else DEFAULT_DELTA
    if not 0 < delta < 1:
        raise ZooError(f"--dp-delta must be between 0 and 1 (usually below 1/N of the training set), got {delta}")
    refusals = [
        (len(optimizer_names) != 1, f"needs a family with one optimizer; this one steps {list(optimizer_names)}"),
        (not family.wraps_for_ddp, "needs a family whose training_step calls model(...)"),
        (options.accumulate > 1, "draws one Poisson batch per step; drop --accumulate"),
        (options.grad_clip is not None, "clips each sample's gradient itself (--dp-max-grad-norm); drop --grad-clip"),
        (options.precision != "32", "trains in fp32; drop --precision"),
        (options.strategy != "ddp", "shares the clipped gradients the DDP way, not sharded; drop --strategy fsdp"),
        (options.compile, "hooks every layer for per-sample gradients, which --compile cannot trace; drop --compile"),
        (any(float(options.hp.get(key, 0) or 0) > 0 for key in ("mixup", "cutmix")),
         "bounds each sample's gradient, and mixup/cutmix blend samples into each other; drop --hp mixup/cutmix"),
    ]
    for refused, why in refusals:
        if refused:
            raise ZooError(f"--dp-epsilon {why}")


def check_model(net: Any, model_name: str) -> None:
    """Opacus' validator on the model: a layer DP-SGD cannot train (BatchNorm mixes samples) is one line."""
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(net, strict=False)
    if errors:
        first = str(errors[0]).strip().splitlines()[0]
        raise ZooError(f"--dp-epsilon: {model_name} has layers DP-SGD cannot train ({first}); train a model without "
                       "BatchNorm, or one whose family offers a GroupNorm variant (docs/privacy.md)")


def check_batch_share(expected: float, steps: int, world_size: int) -> None:
    """Refuse a plan in which some process would likely draw an empty Poisson batch (a share of ``expected`` samples
    a step, empty with probability exp(-expected)): its loss would be the mean of nothing."""
    import math

    if steps * math.exp(-expected) > EMPTY_BATCH_RISK:
        where = f"each of the {world_size} processes expects" if world_size > 1 else "a step expects"
        raise ZooError(f"--dp-epsilon: {where} {expected:.1f} samples, so some of the {steps} Poisson "
                       "batches would likely be empty; raise --batch-size" + (" or use fewer processes"
                                                                              if world_size > 1 else ""))


def quiet_opacus() -> None:
    """Silence two warnings Opacus repeats that say nothing to a user: the backward hook on the first layer (whose
    input needs no gradient) and the RDP order at the end of its range (a bound slightly looser than possible)."""
    import warnings

    warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
    warnings.filterwarnings("ignore", message="Optimal order is the largest alpha", category=UserWarning)


def opacus() -> Any:
    """The ``opacus`` package, or one line saying how to install it."""
    try:
        import opacus
    except ImportError as exc:
        raise ZooError("--dp-epsilon needs Opacus, which is not installed: pip install 'plugzoo[privacy]'") from exc
    return opacus


class Privacy:
    """DP-SGD for one run: the hooked model, the private optimizer, Poisson batches and the accountant."""

    def __init__(self, options: Any, net: Any, optimizers: dict[str, Any], num_samples: int, batch_size: int,
                 steps_per_epoch: int, epochs: int, model_name: str, rank: int = 0, world_size: int = 1,
                 model_args: dict[str, Any] | None = None) -> None:
        """``batch_size`` is the global (expected) batch, over all ``world_size`` processes; ``model_args`` the
        arguments the family chose for DP-SGD (recorded)."""
        opacus()
        from opacus import GradSampleModule
        from opacus.accountants import RDPAccountant
        from opacus.accountants.utils import get_noise_multiplier
        from opacus.optimizers import DistributedDPOptimizer, DPOptimizer

        check_model(net, model_name)
        quiet_opacus()
        self.seed = int(options.seed)
        self.target_epsilon = float(options.dp_epsilon)
        self.delta = float(options.dp_delta if options.dp_delta is not None else DEFAULT_DELTA)
        self.max_grad_norm = float(options.dp_max_grad_norm or DEFAULT_MAX_GRAD_NORM)
        self.num_samples, self.batch_size, self.steps_per_epoch = num_samples, batch_size, steps_per_epoch
        self.rank, self.world_size = rank, world_size
        self.model_args = dict(model_args or {})
        self.sample_rate = min(1.0, batch_size / num_samples)
        self.planned_steps = steps_per_epoch * epochs
        check_batch_share(self.sample_rate * num_samples / world_size, self.planned_steps, world_size)
        try:
            self.noise_multiplier = float(get_noise_multiplier(
                target_epsilon=self.target_epsilon, target_delta=self.delta, sample_rate=self.sample_rate,
                steps=self.planned_steps, accountant=ACCOUNTANT))
        except ValueError as exc:
            raise ZooError(f"--dp-epsilon {self.target_epsilon:g} is too small for {self.planned_steps} steps at "
                           f"sampling rate {self.sample_rate:.4f} ({exc}); raise it, or train fewer epochs") from exc
        self.accountant = RDPAccountant()
        self.budget_steps = self._budget_steps()
        self.hooks = GradSampleModule(net, batch_first=True, loss_reduction="mean")  # per-sample gradients
        (name,) = optimizers
        # Each process divides by its share of the expected batch; the distributed optimizer then averages over the
        # processes: the sum of every clipped gradient plus one noise draw, over the global expected batch.
        private = DistributedDPOptimizer if world_size > 1 else DPOptimizer
        optimizers[name] = private(optimizers[name], noise_multiplier=self.noise_multiplier,
                                   max_grad_norm=self.max_grad_norm, expected_batch_size=batch_size // world_size,
                                   loss_reduction="mean")

    # --- batches ------------------------------------------------------------------------------------

    def batch_indices(self, epoch: int, first: int) -> list[Any]:
        """This process's batches of this epoch from batch ``first`` on: Poisson sampling, every sample independently
        with probability ``sample_rate``, drawn from a generator seeded by seed and epoch only (resumable anywhere);
        with several processes each takes its share (``i % world == rank``) of the same global batch."""
        import torch

        from zoo.engine.batches import epoch_seed

        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch) ^ 0x5EED_D9)
        chosen = torch.rand(self.steps_per_epoch, self.num_samples, generator=generator) < self.sample_rate
        if self.world_size > 1:
            chosen &= (torch.arange(self.num_samples) % self.world_size == self.rank)[None, :]
        return [torch.nonzero(row).flatten() for row in chosen[first:]]

    # --- accounting -----------------------------------------------------------------------------------

    def account_step(self) -> None:
        """One private optimizer step was taken."""
        self.accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)

    @property
    def steps(self) -> int:
        """Private steps accounted so far."""
        return sum(int(n) for _, _, n in self.accountant.history)

    def exhausted(self) -> bool:
        """True when one more step would spend more than ``--dp-epsilon`` before the planned steps are done (the
        noise is calibrated for the planned steps, so this guards against steps the plan did not count)."""
        return self.budget_steps <= self.steps < self.planned_steps

    def spent(self) -> PrivacySpent:
        """ε spent so far (0 before the first step) and the settings."""
        epsilon = float(self.accountant.get_epsilon(delta=self.delta)) if self.accountant.history else 0.0
        return PrivacySpent(epsilon, self.delta, self.target_epsilon, self.noise_multiplier, self.max_grad_norm,
                            self.sample_rate, self.steps, model_args=dict(self.model_args))

    def _epsilon_after(self, steps: int) -> float:
        from opacus.accountants import RDPAccountant

        probe = RDPAccountant()
        probe.history = [(self.noise_multiplier, self.sample_rate, steps)]
        return float(probe.get_epsilon(delta=self.delta))

    def _budget_steps(self) -> int:
        """The most steps whose ε stays within the target (ε grows with the steps: a bisection)."""
        low, high = 0, max(1, self.planned_steps)
        if self._epsilon_after(high) <= self.target_epsilon:
            return high
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if self._epsilon_after(middle) <= self.target_epsilon else (low, middle)
        return low

    # --- checkpoints ----------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The accountant's history, for the checkpoint's JSON state (floats round-trip exactly through JSON)."""
        return {"accountant": ACCOUNTANT, "history": [[float(s), float(q), int(n)] for s, q, n
                                                      in self.accountant.history]}

    def restore(self, saved: dict[str, Any] | None, where: Any) -> None:
        """Put the accountant's history back; a checkpoint without one is one clear line."""
        if not saved or "history" not in saved:
            raise ZooError(f"checkpoint {where} holds no privacy accountant state; it is not from a --dp-epsilon run")
        self.accountant.history = [(float(s), float(q), int(n)) for s, q, n in saved["history"]]


def private_training(options: Any, family: Any, net: Any, optimizers: dict[str, Any], order: tuple[str, ...],
                     world: Any, num_samples: int, batch_size: int, batches_per_epoch: int, epochs: int,
                     model_name: str, model_args: dict[str, Any] | None = None) -> Privacy | None:
    """The run's :class:`Privacy` when ``--dp-epsilon`` is given (``optimizers`` then holds the private one),
    else ``None``; what DP-SGD cannot train is refused first, in one line. ``batch_size`` is the global batch and
    ``world`` the processes (:class:`zoo.engine.distributed.World`), ``model_args`` those the family chose for DP."""
    check_options(options, family, world.size, order)
    if not wanted(options):
        return None
    return Privacy(options, net, optimizers, num_samples, batch_size, batches_per_epoch, epochs, model_name,
                   rank=world.rank, world_size=world.size, model_args=model_args)
