"""Atomic file writes: write a temporary file beside the target, fsync, then rename over it.

A crash mid-write leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` and move the result to ``path`` atomically."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; artefacts get the usual permissions
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        from zoo.faults import os_error_in

        os_error = os_error_in(exc) if isinstance(exc, Exception) else None
        if os_error is not None:  # name the file the user asked for, never the hidden temporary one
            raise OSError(os_error.errno, os_error.strerror, str(path)) from exc
        raise


@cache
def _umask() -> int:
    """The process umask (read once: reading it means setting it, which is not thread-safe)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def write_json(path: str | Path, data: Any) -> None:
    write_bytes(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode())


def save_weights(path: str | Path, state: dict[str, Any], metadata: dict[str, str] | None = None) -> None:
    """Save a state dict as safetensors, atomically (tensors made contiguous, shared storage split)."""
    from safetensors.torch import save_file

    tensors = {name: tensor.detach().cpu().contiguous().clone() for name, tensor in state.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
