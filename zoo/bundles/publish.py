"""Putting a finished folder (a bundle, a deploy folder) in place: never replacing one without ``force``,
never losing one.

The folder is built in a hidden staging folder beside its final place (:func:`make_staging`; staging
folders of killed processes are removed then), so a kill -9 at any moment leaves either the old folder
or the new complete one. Every step that looks at or renames ``<out>/<name>`` holds the parent folder's
lock, so checking that the name is free and renaming into it is one step for every zoo process. ``force`` swaps the new
bundle and the old one in one atomic exchange (``renameat2(RENAME_EXCHANGE)`` on Linux); where that is
not available the old bundle is first moved aside to ``.<name>.old-<pid>``, and a process killed
between the two renames leaves that folder, which :func:`recover` puts back (or removes, when a
bundle is in place) at the next export into the folder.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import sys
from pathlib import Path

from zoo.errors import ZooError
from zoo.locks import exclusive

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def make_staging(final: Path) -> Path:
    """A fresh, empty hidden folder beside ``final`` to build it in (``.<name>.staging-<pid>``).

    Staging folders that killed processes left for the same name are removed first. The caller
    publishes it with :func:`publish` and removes it in a ``finally`` (after a swap it holds the old folder).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(final)
    staging = final.with_name(f".{final.name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def publish(staging: Path, final: Path, force: bool, *, what: str = "bundle", command: str = "export") -> None:
    """Rename ``staging`` to ``final``; an existing ``final`` only with ``force``, atomically swapped.

    ``what`` and ``command`` name the folder and the command in the refusal ("bundle", "export").
    """
    with _folder_lock(final.parent):
        _recover_locked(final)
        if not (final.exists() or final.is_symlink()):
            staging.rename(final)
            return
        if not force:
            raise ZooError(f"{what} {final} appeared while this {command} ran (another {command} into the same "
                           "folder?); it was left as it is: pass --force to replace it, or --out another folder")
        if _exchange(staging, final):  # staging now holds the old bundle; the caller removes it
            return
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.rename(old)
        staging.rename(final)
        shutil.rmtree(old, ignore_errors=True)


def recover(final: Path) -> None:
    """Undo what a killed ``--force`` left: put the old bundle back if none is in place, else remove it."""
    if not final.parent.is_dir() or not any(final.parent.glob(f".{final.name}.old-*")):
        return
    with _folder_lock(final.parent):
        _recover_locked(final)


def _recover_locked(final: Path) -> None:
    for old in sorted(final.parent.glob(f".{final.name}.old-*")):
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.rename(final)


def _folder_lock(folder: Path) -> object:
    return exclusive(folder, f"folder {folder} is busy", wait=True)


def _remove_abandoned_staging(final: Path) -> None:
    """Remove staging folders of commands that were killed (their process is gone)."""
    for folder in final.parent.glob(f".{final.name}.staging-*"):
        pid = folder.name.rsplit("-", 1)[-1]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass  # alive (or not ours to judge): leave it


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); ``False`` where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return result == 0
