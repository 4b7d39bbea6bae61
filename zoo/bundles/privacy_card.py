"""The card's and manifest's privacy facts: the ε, δ a DP run spent (``summary.json``) and the membership-inference
audit of the run (``audit.json``, written by ``zoo audit``), when there are any."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo.run_layout import AUDIT


def read_audit(run_dir: Path) -> dict[str, Any] | None:
    """The run's audit results, or ``None`` (not audited, or the file is unreadable)."""
    try:
        return json.loads((Path(run_dir) / AUDIT).read_text())
    except (OSError, ValueError):
        return None


def manifest_privacy(summary: dict[str, Any], run_dir: Path) -> dict[str, Any] | None:
    """The manifest's ``privacy`` entry: the DP accounting (or ``{"dp": false}``) and the audit, if any."""
    spent, audit = summary.get("privacy"), read_audit(run_dir)
    if spent is None and audit is None:
        return None
    return {"dp": spent is not None, **(spent or {}), **({"audit": audit} if audit else {})}


def privacy_text(summary: dict[str, Any], run_dir: Path) -> str:
    """The card's "Privacy" section (empty when the run was neither private nor audited)."""
    spent, audit = summary.get("privacy"), read_audit(run_dir)
    if spent is None and audit is None:
        return ""
    lines = ["## Privacy"]
    if spent:
        lines.append(f"Trained with differential privacy (DP-SGD through Opacus): **ε = {spent['epsilon']:.3f}, "
                     f"δ = {spent['delta']:g}** spent (target ε {spent['target_epsilon']:g}; {spent['accountant']} "
                     f"accountant) over {spent['steps']} steps: each sample's gradient clipped to norm "
                     f"{spent['max_grad_norm']:g}, Gaussian noise multiplier {spent['noise_multiplier']:.4f}, Poisson "
                     f"sampling rate {spent['sample_rate']:.5f}. The guarantee covers the training split only.")
        if spent.get("model_args"):
            chosen = ", ".join(f"{k}={v}" for k, v in spent["model_args"].items())
            lines.append(f"The model was built as the variant DP-SGD can train: {chosen} (chosen by its family; "
                         "this bundle's graph is that variant).")
    else:
        lines.append("Trained without differential privacy: no formal guarantee for the people in the training data.")
    if audit:
        lines.append(f"Membership-inference audit ({audit['attack']}, {audit['members']} training vs "
                     f"{audit['non_members']} held-out samples): AUC {audit['auc']:.3f} (0.5 = the attacker learns "
                     f"nothing; ± {audit.get('auc_null_std', 0):.3f} by chance), TPR "
                     + (f"{audit['tpr_at_fpr_01pct']:.3f} at 0.1 % FPR, " if "tpr_at_fpr_01pct" in audit else "")
                     + f"{audit['tpr_at_fpr_1pct']:.3f} at 1 % FPR, {audit['tpr_at_fpr_10pct']:.3f} at 10 % FPR.")
    return "\n".join(lines) + "\n\n"
