"""Exclusive locks between zoo processes: one per run folder, one per export folder.

A lock is ``fcntl.flock`` on the folder itself (or a file); the kernel drops it when the process dies (even on
``kill -9``), so a lock is never left behind. Where ``fcntl`` does not exist (Windows) the locks are
no-ops and concurrent commands are not guarded.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from zoo.errors import ZooError


@contextlib.contextmanager
def exclusive(path: Path, busy: str, *, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed); ``busy`` is the error when another holds it.

    ``wait=True`` blocks until the lock is free instead of refusing.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    try:  # a folder is locked through itself (nothing is left in it); a file is created if needed
        fd = os.open(path, os.O_RDONLY) if path.is_dir() else os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ZooError(f"cannot create the lock file {path} ({exc.strerror}); check the folder's permissions") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError as exc:
            raise ZooError(busy) from exc
        yield
    finally:
        os.close(fd)  # closing drops the lock


def run_lock(run_dir: Path) -> contextlib.AbstractContextManager[None]:
    """The run folder's lock: one training process (a run or its resume) per folder at a time."""
    return exclusive(Path(run_dir),
                     f"run {run_dir} is being trained by another zoo process right now; wait for it to stop "
                     f"(or stop it), then resume")


def is_locked(path: Path) -> bool:
    """Does a live process hold the lock on ``path`` right now (a run that is training)? Never takes it.

    On Linux ``/proc/locks`` is read (the folder's device and inode against every flock), so a
    ``zoo train --resume`` starting at the same moment is never refused because of this question.
    Elsewhere a shared lock is tried and dropped at once.
    """
    try:
        info = os.stat(path)
    except OSError:
        return False
    try:
        with open("/proc/locks") as handle:
            table = handle.read()
    except OSError:
        return _probe(path)
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    return any(line.split()[1:2] == ["FLOCK"] and wanted in line.split() for line in table.splitlines())


def _probe(path: Path) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no locks, nothing is known to be running
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
