"""``zoo hf-export RUN_DIR --out DIR``: a trained GPT as a folder ``transformers`` loads with ``from_pretrained``.

The folder holds ``model.safetensors`` (GPT-2's names and Conv1D layout, :mod:`zoo_lm.hf_gpt2`), ``config.json``
(a ``GPT2LMHeadModel`` config) and the run's ``tokenizer.json``. It is written into a hidden folder beside the
target and renamed into place, so a killed export leaves nothing half-written; an existing folder is replaced only
with ``--force``, and only when it is an earlier export (it holds this command's ``zoo_export.json``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import click

from zoo.errors import ZooError

MARKER = "zoo_export.json"


def export_hf(run_dir: str | Path, out: str | Path, *, force: bool = False) -> Path:
    """Write the run's GPT as a ``transformers`` GPT-2 folder at ``out``; returns it."""
    from safetensors.torch import save_file

    import zoo
    from zoo_lm.hf_gpt2 import hf_config, to_hf
    from zoo_lm.model import GPT

    out = Path(out)
    if out.exists() and not (force and (out / MARKER).is_file()):
        why = "pass --force to replace it" if (out / MARKER).is_file() else "it is not an earlier zoo hf-export"
        raise ZooError(f"{out} already exists; {why} (or choose another --out)")
    run = zoo.load_run(run_dir)
    model = run.model
    if not isinstance(model, GPT):
        raise ZooError(f"{run_dir} trained {run.spec.name!r}, not a GPT of the lm plugin; hf-export writes GPTs only")
    if run.data_info.text is None:
        raise ZooError(f"{run_dir} has no tokenizer recorded; train it again with this zoo")
    config = hf_config(vocab_size=model.vocab_size, context=model.context, layers=model.layers, heads=model.heads,
                       width=model.width, activation=model.activation)
    state = to_hf(model.state_dict(), model.layers)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})
        (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        (staging / "tokenizer.json").write_text(run.data_info.text.tokenizer_json, encoding="utf-8")
        (staging / MARKER).write_text(json.dumps({"run": str(Path(run_dir).resolve()), "model": run.spec.name,
                                                  "tokenizer": run.data_info.text.tokenizer}, indent=2) + "\n")
        os.chmod(staging, 0o755)
        if out.exists():  # --force over an earlier export: the old one goes only once the new one is complete
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
            os.replace(out, old / "previous")
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


@click.command("hf-export")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), required=True,
              help="folder to write (model.safetensors, config.json, tokenizer.json)")
@click.option("--force", is_flag=True, help="replace an earlier hf-export at --out")
def hf_export_command(run_dir: Path, out: Path, force: bool) -> None:
    """Write a trained GPT as a Hugging Face transformers GPT-2 folder (GPT2LMHeadModel.from_pretrained loads it)."""
    path = export_hf(run_dir, out, force=force)
    click.echo(f"wrote {path} (GPT2LMHeadModel.from_pretrained({str(path)!r}) loads it)")
