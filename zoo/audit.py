"""``zoo audit RUN``: a loss-threshold membership-inference attack (Yeom et al., 2018) on a trained classifier.

The attacker sees one sample's loss and guesses "it was in the training set" when the loss is low. Members are
training samples, non-members the held-out validation samples (and, for a run on ``--train-samples``, the
training-split samples it left out), up to ``--samples`` of each (drawn by seed). The attack's
ROC over every threshold gives its AUC (0.5: it learns nothing) and its true-positive rate at 0.1 %, 1 % and 10 %
false positives (what matters in practice: a few people identified with confidence). The results go to
``audit.json`` in the run folder, and from there into the manifest and card of later exports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError

#: Members and non-members compared at most (each); fewer when a split is smaller.
DEFAULT_SAMPLES = 1000
ATTACK = "loss threshold"


@dataclass
class AttackScores:
    """What the attack achieved on one set of members and non-members."""

    auc: float
    tpr_at_fpr_1pct: float
    tpr_at_fpr_10pct: float
    #: Resolved only with 1,000 or more non-members: with fewer it is the share of members scoring above every one.
    tpr_at_fpr_01pct: float
    #: The AUC's standard deviation if the attacker learnt nothing (Mann-Whitney under the null): an AUC within
    #: about two of these of 0.5 is indistinguishable from a coin at this sample size.
    auc_null_std: float
    member_loss: float
    non_member_loss: float


@dataclass
class AuditResult(AttackScores):
    """What the attack achieved on one run: its scores, and what was attacked."""

    run: str
    attack: str
    members: int
    non_members: int
    dp_epsilon: float | None
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        return asdict(self)


def roc_auc(member_scores: np.ndarray, non_member_scores: np.ndarray) -> float:
    """The probability that a random member scores above a random non-member (ties count half): the ROC AUC."""
    from scipy.stats import rankdata

    scores = np.concatenate([member_scores, non_member_scores])
    ranks = rankdata(scores)
    m, n = len(member_scores), len(non_member_scores)
    return float((ranks[:m].sum() - m * (m + 1) / 2) / (m * n))


def auc_null_std(members: int, non_members: int) -> float:
    """The standard deviation of the ROC AUC when members and non-members score alike: sqrt((m + n + 1) / 12mn)."""
    return float(np.sqrt((members + non_members + 1) / (12.0 * members * non_members)))


def tpr_at_fpr(member_scores: np.ndarray, non_member_scores: np.ndarray, fpr: float) -> float:
    """The share of members flagged by the strictest threshold that flags at most ``fpr`` of the non-members."""
    ordered = np.sort(non_member_scores)[::-1]
    allowed = int(np.floor(fpr * len(ordered)))
    # flag scores strictly above the (allowed+1)-th highest non-member score: at most `allowed` non-members pass
    threshold = ordered[allowed] if allowed < len(ordered) else -np.inf
    return float(np.mean(member_scores > threshold))


def per_sample_loss(model: Any, x: Any, y: Any) -> np.ndarray:
    """The model's cross-entropy on each sample (``x`` N×..., ``y`` N class indices), in batches, without grad."""
    import torch
    import torch.nn.functional as F

    out = []
    with torch.no_grad():
        for start in range(0, len(y), 256):
            logits = model(torch.from_numpy(np.asarray(x[start:start + 256], np.float32)))
            labels = torch.from_numpy(np.asarray(y[start:start + 256], np.int64))
            out.append(F.cross_entropy(logits.float(), labels, reduction="none").numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def loss_attack(model: Any, members: tuple[Any, Any], non_members: tuple[Any, Any]) -> AttackScores:
    """The loss-threshold attack on ``members`` and ``non_members`` (each ``(x, y)``): a lower loss says "member"."""
    member_loss, non_member_loss = per_sample_loss(model, *members), per_sample_loss(model, *non_members)
    if len(member_loss) < 2 or len(non_member_loss) < 2:
        raise ZooError("the audit needs at least 2 members and 2 non-members; the run's splits are too small")
    m, n = -member_loss, -non_member_loss
    return AttackScores(auc=roc_auc(m, n), tpr_at_fpr_1pct=tpr_at_fpr(m, n, 0.01),
                        tpr_at_fpr_10pct=tpr_at_fpr(m, n, 0.10), tpr_at_fpr_01pct=tpr_at_fpr(m, n, 0.001),
                        auc_null_std=auc_null_std(len(m), len(n)), member_loss=float(member_loss.mean()),
                        non_member_loss=float(non_member_loss.mean()))


@dataclass
class Pool:
    """Candidate samples, read only when drawn: part ``k`` holds the samples ``x[indices]`` of ``(x, y, indices)``,
    the parts one after the other (``x`` may be an image folder read lazily)."""

    parts: list[tuple[Any, Any, np.ndarray]]

    def __len__(self) -> int:
        return sum(len(indices) for _, _, indices in self.parts)

    def take(self, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of the pool's samples at the sorted positions ``chosen``, in that order."""
        xs, ys, offset = [], [], 0
        for x, y, indices in self.parts:
            mine = indices[chosen[(chosen >= offset) & (chosen < offset + len(indices))] - offset]
            if len(mine):
                xs.append(np.asarray(x[mine], np.float32))
                ys.append(np.asarray(y[mine]))
            offset += len(indices)
        return np.concatenate(xs), np.concatenate(ys)


def membership_pools(config: dict[str, Any]) -> tuple[Pool, Pool]:
    """The members and the non-members of a run: members are the training samples it kept, non-members its
    validation samples and, when it trained on ``--train-samples`` only, the training-split samples it left out
    (never seen either: more of them resolve lower false-positive rates)."""
    from zoo.data import load_run_data, subset_indices

    kept = (config.get("data_options") or {}).get("train_samples")
    if not kept:
        data = load_run_data(config)
        return (Pool([(data.x_train, data.y_train, np.arange(len(data.y_train)))]),
                Pool([(data.x_val, data.y_val, np.arange(len(data.y_val)))]))
    full = load_run_data({**config, "data_options": {**config["data_options"], "train_samples": None}})
    chosen = subset_indices(len(full.y_train), int(kept), int(config["seed"]))
    left_out = np.setdiff1d(np.arange(len(full.y_train)), chosen)
    return (Pool([(full.x_train, full.y_train, chosen)]),
            Pool([(full.x_val, full.y_val, np.arange(len(full.y_val))), (full.x_train, full.y_train, left_out)]))


def audit_run(run_dir: str | Path, samples: int = DEFAULT_SAMPLES, seed: int = 0, write: bool = True) -> AuditResult:
    """Attack the run's classifier with per-sample cross-entropy; write ``audit.json`` into the run.

    Up to ``samples`` of each, drawn by ``seed`` from :func:`membership_pools`."""

    from zoo.atomic import write_json
    from zoo.roles import GraphRole
    from zoo.run_layout import AUDIT, SUMMARY
    from zoo.runs import load_run, read_json

    if samples < 10:
        raise ZooError(f"--samples must be at least 10, got {samples}")
    run = load_run(run_dir)
    graphs = [g for g in run.family.graphs(run.model, run.data_info)
              if g.role == GraphRole.CLASSIFIER and len(g.input_names) == 1]
    if not graphs:
        raise ZooError(f"zoo audit attacks classifiers through their per-sample loss; {run.spec.name} (family "
                       f"{run.spec.family!r}) exports no classifier graph")
    model = graphs[0].module.cpu().eval()
    inside, outside = membership_pools(run.config)
    rng = np.random.default_rng(seed)
    members = np.sort(rng.choice(len(inside), min(samples, len(inside)), replace=False))
    non_members = np.sort(rng.choice(len(outside), min(samples, len(outside)), replace=False))
    scores = loss_attack(model, inside.take(members), outside.take(non_members))
    spent = read_json(run.run_dir / SUMMARY, "run summary").get("privacy") or {}
    result = AuditResult(run=run.run_dir.name, attack=ATTACK, members=len(members), non_members=len(non_members),
                         dp_epsilon=spent.get("epsilon"), seed=seed, **asdict(scores))
    if write:
        write_json(run.run_dir / AUDIT, result.to_dict())
    return result


def format_result(result: AuditResult) -> str:
    """A few plain lines for the terminal."""
    private = f"DP, ε = {result.dp_epsilon:.3f}" if result.dp_epsilon is not None else "not DP-trained"
    return (f"run {result.run} ({private}): {result.attack} attack, {result.members} training vs "
            f"{result.non_members} held-out samples\n"
            f"  AUC {result.auc:.4f} (0.5 = no better than a coin; ± {result.auc_null_std:.4f} by chance alone)\n"
            f"  TPR at 0.1 % FPR {result.tpr_at_fpr_01pct:.4f}, at 1 % FPR {result.tpr_at_fpr_1pct:.4f}, "
            f"at 10 % FPR {result.tpr_at_fpr_10pct:.4f}\n"
            f"  mean loss: training {result.member_loss:.4f}, held out {result.non_member_loss:.4f}")
