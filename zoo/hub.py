"""``--init hf:ORG/NAME[@REVISION]``: a model in the local Hugging Face cache, found offline with ``huggingface_hub``.

Nothing is downloaded: the id is looked up in the cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
``~/.cache/huggingface/hub``) with ``local_files_only=True``, and a model that is not there is one line saying how to
fetch it once. The result is the snapshot folder (``model.safetensors`` and ``config.json``), read like any model
folder given to ``--init``.
"""

from __future__ import annotations

from pathlib import Path

from zoo.errors import ZooError

PREFIX = "hf:"


def is_hub_id(text: str) -> bool:
    """Whether an ``--init`` value names a Hugging Face model (``hf:ORG/NAME``) rather than a path."""
    return str(text).startswith(PREFIX)


def resolve(text: str) -> Path:
    """The local snapshot folder of ``hf:ORG/NAME[@REVISION]`` (one line if it is not in the cache)."""
    repo, _, revision = str(text)[len(PREFIX):].partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ZooError(f"--init {text}: give a Hugging Face model id as hf:ORG/NAME (e.g. hf:ORG/NAME@REVISION)")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as exc:
        raise ZooError("--init hf:... needs huggingface_hub: pip install 'plugzoo[hf]'") from exc
    try:
        folder = snapshot_download(repo, revision=revision or None, local_files_only=True,
                                   allow_patterns=["*.safetensors", "*.json"])
    except LocalEntryNotFoundError as exc:
        raise ZooError(f"--init {text}: {repo} is not in the local Hugging Face cache and zoo downloads nothing; "
                       f"fetch it once where the network is allowed (hf download {repo} --include "
                       f"'*.safetensors' '*.json'), or give its folder as --init PATH") from exc
    except (OSError, ValueError) as exc:
        raise ZooError(f"--init {text}: cannot read the local Hugging Face cache ({exc})") from exc
    return Path(folder)
