"""Where a deploy folder may go, and putting it there the way bundles are published.

``zoo deploy`` never deletes or modifies its input: ``--out`` may not be the bundle, a folder inside it,
a folder that holds it, the current folder (or one holding it), the home folder or the root, and an
existing folder is replaced (with ``--force`` only) when zoo made it, which its ``deploy.json`` says.
The folder is built in a hidden staging folder beside its final place and published with the same lock
and atomic swap as a bundle (:mod:`zoo.bundles.publish`), so a kill -9 at any moment leaves the old
folder or the new complete one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from zoo.errors import ZooError

#: The file every deploy folder has, and its key that says zoo wrote it (folders from before the key: the
#: keys of image deployments); a folder without them is not zoo's to replace.
MARKER = "deploy.json"
MARKER_KEY = "zoo_deploy"
_LEGACY_KEYS = ("model", "graph", "pregraph")


def is_deploy_folder(folder: Path) -> bool:
    """Did ``zoo deploy`` make ``folder``? (a real folder with a readable ``deploy.json`` of its keys)."""
    marker = folder / MARKER
    if folder.is_symlink() or not folder.is_dir() or marker.is_symlink() or not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and (MARKER_KEY in info or all(key in info for key in _LEGACY_KEYS))


def check_out(bundle: Path, folder: Path, force: bool) -> None:
    """Refuse, in one line, an ``--out`` that would touch the input or a folder zoo did not make."""
    from zoo.bundles.publish import recover

    where = folder.resolve()
    source = bundle.resolve()
    if where == source or source in where.parents:
        raise ZooError(f"--out {folder} is {'the bundle' if where == source else 'inside the bundle'} being "
                       "deployed; choose a folder outside it")
    if where in source.parents:
        raise ZooError(f"--out {folder} holds the bundle being deployed ({bundle}); choose a new folder for "
                       "the deployment")
    cwd = Path.cwd().resolve()
    if where == cwd or where in cwd.parents:
        raise ZooError(f"--out {folder} is the current folder or holds it; choose a new folder for the deployment")
    if where == Path.home().resolve() or where == Path(where.anchor):
        raise ZooError(f"--out {folder} is the home or root folder; choose a new folder for the deployment")
    recover(folder)  # a --force killed between its two renames: put the old folder back first
    if folder.is_symlink():
        raise ZooError(f"--out {folder} is a symbolic link; give the folder itself or a new one")
    if not folder.exists():
        return
    if not is_deploy_folder(folder):
        what = "a file" if not folder.is_dir() else "a folder zoo deploy did not make (it has no deploy.json)"
        raise ZooError(f"--out {folder} exists and is {what}; it is left as it is: choose a new folder")
    if not force:
        raise ZooError(f"{folder} already exists; pass --force to replace it, or --out another folder")


@contextlib.contextmanager
def staged(folder: Path, force: bool) -> Iterator[Path]:
    """A hidden staging folder to write the deployment in; published as ``folder`` when the block succeeds.

    An OS error while writing (disk full, ``ulimit -f``) names the file in ``folder``, not the staging folder.
    """
    from zoo.bundles.publish import make_staging, publish

    staging = make_staging(folder)
    try:
        try:
            yield staging
        except OSError as exc:
            error = _in_final_folder(exc, staging, folder)
            if error is None:
                raise
            raise error from exc
        publish(staging, folder, force, what="deploy folder", command="deploy")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _in_final_folder(exc: OSError, staging: Path, folder: Path) -> ZooError | None:
    """``exc`` as the user's one-line error naming the file under ``folder`` (``None``: not the user's)."""
    from zoo.faults import as_user_error

    name = exc.filename if exc.filename is not None else staging
    with contextlib.suppress(ValueError):
        name = folder / Path(os.fsdecode(name)).relative_to(staging)
    return as_user_error(OSError(exc.errno, exc.strerror, str(name)))
