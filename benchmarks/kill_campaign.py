"""kill -9 at random moments of train, resume, export, export --force, deploy and deploy --force; every artefact
must stay usable.

For each command, ``--kills`` runs are killed with SIGKILL at a moment drawn uniformly between 40 % and
105 % of the time an unkilled run of it takes (the first part is Python and torch starting). After each
kill the artefacts are checked in this process, the way the next zoo command sees them:

- a run folder is exactly one of: finished (summary.json; loads for export; resume says "already
  finished"), resumable (its last checkpoint loads; resume accepts it; export says "did not finish"), or
  not started (no checkpoint yet: resume says so); its metrics parse, one row per epoch, CSV in step;
- an export leaves either nothing or a complete bundle that verifies against its test vectors;
- after a killed ``export --force`` (and the recovery the next export does) a complete bundle, old or
  new, is in place and verifies;
- a killed ``zoo deploy`` leaves no folder or a complete one (every file; ``run.py --check`` passes), and
  the same deploy run again afterwards succeeds (no stale "already exists"); after a killed
  ``deploy --force`` (and the next deploy's clean-up) a complete folder, old or new, is in place.

Finally one killed run is resumed to the end and exported, and the result verified.

    python benchmarks/kill_campaign.py --kills 20 --out benchmarks/results/kill_campaign.txt
    python benchmarks/kill_campaign.py --kills 20 --only deploy --out benchmarks/results/kill_campaign_deploy.txt
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ZOO = [sys.executable, "-m", "zoo"]
EXPORT = ["--no-verify", "--exporter", "torchscript"]  # the quicker exporter: publishing is what is tested
TRAIN = ["train", "cnn", "--epochs", "2", "--batch-size", "128"]
PARTS = ("train", "resume", "export", "deploy")
#: What a complete python deploy folder holds (zoo.deploy.PROGRAMS and the files beside them).
DEPLOY_FILES = {"README.md", "deploy.json", "model.onnx", "run.py", "decoding.py", "requirements.txt", "vectors"}


def run(args: list[str], cwd: Path, kill_after: float | None = None) -> tuple[int, str, float]:
    """Run zoo; SIGKILL it after ``kill_after`` seconds if given. (exit code, stderr, seconds)."""
    started = time.perf_counter()
    proc = subprocess.Popen([*ZOO, *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    return proc.returncode, err.strip(), time.perf_counter() - started


def run_state(run_dir: Path) -> str:
    """finished / resumable / not-started, checked the way export and resume see the folder."""
    from zoo.engine.persistence import prepare_resume
    from zoo.errors import ZooError
    from zoo.runs import load_run

    def refusal(call: Any) -> str | None:
        try:
            call()
        except ZooError as exc:
            return str(exc)
        return None

    resume = refusal(lambda: prepare_resume(run_dir, None, {}, 1))
    export = refusal(lambda: load_run(run_dir)) if (run_dir / "config.json").exists() else "no config"
    problem = _metrics_problem(run_dir)
    if problem:
        raise AssertionError(f"{run_dir}: {problem}")
    if resume and "already finished" in resume and export is None:
        return "finished"
    if resume is None and export and "did not finish" in export:
        return "resumable"
    if resume and ("before its first checkpoint" in resume or "not a zoo run directory" in resume):
        return "not-started"
    raise AssertionError(f"{run_dir}: resume says {resume!r}, export says {export!r}")


def _state_or_none(run_dir: Path) -> str | None:
    try:
        return run_state(run_dir)
    except AssertionError:
        return None


def _metrics_problem(run_dir: Path) -> str | None:
    jsonl = run_dir / "metrics.jsonl"
    if not jsonl.exists():
        return None
    rows = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    epochs = [r["epoch"] for r in rows]
    if epochs != sorted(set(epochs)):
        return f"metrics epochs {epochs}"
    csv_rows = (run_dir / "metrics.csv").read_text().splitlines() if (run_dir / "metrics.csv").exists() else [""]
    if len(csv_rows) != len(rows) + 1 and not (len(rows) == 0 and csv_rows in ([], [""])):
        return f"metrics.csv has {len(csv_rows) - 1} rows, metrics.jsonl {len(rows)} (before the next resume)"
    return None


def bundle_ok(bundle: Path) -> bool:
    from zoo.bundles import verify_bundle

    return bool(verify_bundle(bundle, providers=["cpu"], bundle_only=True)["passed"])


def deploy_ok(folder: Path) -> bool:
    """Every file is there and the folder's own program passes its test vectors."""
    if not {p.name for p in folder.iterdir()} >= DEPLOY_FILES:
        return False
    check = subprocess.run([sys.executable, "run.py", "--check"], cwd=folder, capture_output=True, text=True)
    return check.returncode == 0 and json.loads(check.stdout)["passed"]


def campaign(kills: int, seed: int, work: Path, parts: tuple[str, ...] = PARTS) -> list[str]:
    from zoo.bundles.publish import recover

    rng = random.Random(seed)
    lines: list[str] = []
    failures: list[str] = []
    code, err, t_train = run([*TRAIN, "--out", "base"], work)
    assert code == 0, err
    base = next((work / "base").iterdir())
    code, err, t_export = run(["export", str(base), "--out", "published", *EXPORT], work)
    assert code == 0, err
    lines.append(f"unkilled: train {t_train:.1f}s, export {t_export:.1f}s")

    def moment(total: float) -> float:
        return rng.uniform(0.4 * total, 1.05 * total)

    def tally(kind: str, outcomes: list[str]) -> None:
        counts = {o: outcomes.count(o) for o in sorted(set(outcomes))}
        lines.append(f"{kind}: {len(outcomes)} kills -> " + ", ".join(f"{k} {v}" for k, v in counts.items()))

    # train
    outcomes, resumable = [], []
    for i in range(kills if "train" in parts else 0):
        out = work / "train" / str(i)
        run([*TRAIN, "--out", str(out)], work, kill_after=moment(t_train))
        folders = list(out.iterdir()) if out.exists() else []
        try:
            state = run_state(folders[0]) if folders else "no run folder yet"
        except AssertionError as exc:
            failures.append(f"train kill {i}: {exc}")
            state = "BROKEN"
        outcomes.append(state)
        if state == "resumable":
            resumable.append(folders[0])
    if "train" in parts:
        tally("train", outcomes)

    # resume (of the killed runs, again and again)
    outcomes = []
    for i in range(kills if "resume" in parts else 0):
        if not resumable:
            break
        run_dir = resumable[i % len(resumable)]
        code, err, _ = run(["train", "--resume", str(run_dir)], work, kill_after=moment(t_train))
        try:
            state = run_state(run_dir)
        except AssertionError as exc:
            failures.append(f"resume kill {i}: {exc}")
            state = "BROKEN"
        outcomes.append(state if code == -9 else f"{state} (exit {code} before the kill)")
        if state != "resumable":
            resumable.remove(run_dir)
    if "resume" in parts:
        tally("resume", outcomes)

    # export
    outcomes = []
    for i in range(kills if "export" in parts else 0):
        out = work / "exports" / str(i)
        run(["export", str(base), "--out", str(out), *EXPORT], work, kill_after=moment(t_export))
        final = out / base.name
        if not final.exists():
            outcomes.append("nothing published")
        elif bundle_ok(final):
            outcomes.append("complete bundle")
        else:
            failures.append(f"export kill {i}: {final} is published but does not verify")
            outcomes.append("BROKEN")
        shutil.rmtree(out, ignore_errors=True)
    if "export" in parts:
        tally("export", outcomes)

    # export --force over the published bundle
    outcomes = []
    final = work / "published" / base.name
    for i in range(kills if "export" in parts else 0):
        run(["export", str(base), "--out", "published", *EXPORT, "--force"], work, kill_after=moment(t_export))
        recover(final)  # what the next export into the folder does first
        before = (final / "manifest.json").stat().st_mtime_ns if final.exists() else None
        if final.exists() and bundle_ok(final):
            outcomes.append("complete bundle")
        else:
            failures.append(f"export --force kill {i}: no complete bundle in place ({before})")
            outcomes.append("BROKEN")
    left = [p.name for p in final.parent.iterdir() if ".old-" in p.name]
    if left:
        failures.append(f"export --force: leftovers {left}")
    if "export" in parts:
        tally("export --force", outcomes)
    if "deploy" in parts:
        deploy_kills(kills, work, final, moment, tally, failures, lines)

    # one killed run, resumed to the end and exported
    victims = [p for p in (work / "train").glob("*/*") if _state_or_none(p) in ("resumable", "finished")]
    victims = victims if "train" in parts else []
    if victims:
        victim = victims[0]
        if run_state(victim) == "resumable":
            code, err, _ = run(["train", "--resume", str(victim)], work)
            if code != 0:
                failures.append(f"final resume: exit {code}: {err}")
        code, err, _ = run(["export", str(victim), "--out", "final", *EXPORT], work)
        ok = code == 0 and bundle_ok(work / "final" / victim.name)
        lines.append(f"a killed run resumed to the end and exported: {'ok' if ok else 'FAILED'}")
        if not ok:
            failures.append(f"final export: exit {code}: {err}")
    lines += [f"FAIL {f}" for f in failures]
    lines.append(f"failures: {len(failures)}")
    return lines


def deploy_kills(kills: int, work: Path, bundle: Path, moment: Any, tally: Any, failures: list[str],
                 lines: list[str]) -> None:
    """``zoo deploy`` (python target) killed into a new folder, then ``--force`` over a complete one."""
    from zoo.bundles.publish import recover

    deploy = ["deploy", str(bundle), "--target", "python", "--out"]
    code, err, t_deploy = run([*deploy, "deployed"], work)
    assert code == 0 and deploy_ok(work / "deployed"), err
    lines.append(f"unkilled: deploy {t_deploy:.1f}s")
    outcomes = []
    for i in range(kills):
        out = work / "deploys" / str(i)
        run([*deploy, str(out)], work, kill_after=moment(t_deploy))
        if not out.exists():
            outcomes.append("nothing published")
        elif deploy_ok(out):
            outcomes.append("complete folder")
        else:
            failures.append(f"deploy kill {i}: {out} is published but half-written")
            outcomes.append("HALF-WRITTEN")
        code, err, _ = run([*deploy, str(out), *(["--force"] if out.exists() else [])], work)
        if code != 0 or not deploy_ok(out):
            failures.append(f"deploy after kill {i}: exit {code}: {err}")
    tally("deploy", outcomes)
    outcomes = []
    final = work / "deployed"
    for i in range(kills):
        run([*deploy, str(final), "--force"], work, kill_after=moment(t_deploy))
        recover(final)  # what the next deploy into the folder does first
        if final.exists() and deploy_ok(final):
            outcomes.append("complete folder")
        else:
            failures.append(f"deploy --force kill {i}: no complete folder in place")
            outcomes.append("HALF-WRITTEN")
    code, err, _ = run([*deploy, str(work / "deploys" / "last")], work)  # cleans up what the kills left
    left = [p.name for p in work.iterdir() if p.name.startswith(".deployed.")]
    left += [p.name for p in (work / "deploys").iterdir() if p.name.startswith(".")]
    if code != 0 or left:
        failures.append(f"deploy --force: exit {code} {err}; leftovers {left}")
    tally("deploy --force", outcomes)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="kills per command")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the results to this file")
    parser.add_argument("--only", action="append", choices=PARTS, help="only these commands (repeatable)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zoo-kill-") as folder:
        started = time.perf_counter()
        lines = campaign(args.kills, args.seed, Path(folder), tuple(args.only or PARTS))
        lines.append(f"kills per command: {args.kills}, seed {args.seed}, {time.perf_counter() - started:.0f}s")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    sys.exit(1 if "FAIL" in text else 0)


if __name__ == "__main__":
    main()
