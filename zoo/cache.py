"""A small on-disk cache of numpy arrays in ``$ZOO_CACHE_DIR`` (default ``~/.cache/zoo``).

Each entry is one ``.npz`` file stamped with a key (say, the version of the package the arrays came
from). A stale key, a missing file or a file that cannot be read (truncated, corrupt) means the
arrays are built again and the file rewritten atomically; nothing is ever unpickled.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from zoo.atomic import write_bytes

KEY = "__cache_key__"
CACHE_ENV = "ZOO_CACHE_DIR"


def cache_dir() -> Path:
    """Where reusable artefacts go (the digits here, the quality judges in ``classifiers/``): ``$ZOO_CACHE_DIR``,
    else ``~/.cache/zoo``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "zoo")


def cached_arrays(name: str, key: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays stored under ``name`` if they were stored with ``key``; else ``build()``'s, stored for next time.

    A cache that cannot be written (read-only home, full disk) is not an error: the built arrays are returned.
    """
    path = cache_dir() / f"{name}.npz"
    stored = _read(path, key)
    if stored is not None:
        return stored
    arrays = build()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, **{KEY: np.array(key)})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, buffer.getvalue())
    except OSError:
        pass
    return arrays


def _read(path: Path, key: str) -> dict[str, np.ndarray] | None:
    """The arrays in ``path`` when it holds ``key``; None when missing, stale or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            if KEY not in stored.files or str(stored[KEY]) != key:
                return None
            return {name: stored[name] for name in stored.files if name != KEY}
    except Exception:  # truncated or corrupt: rebuilt by the caller
        return None
