"""The one place that tells user-caused failures from zoo's own bugs.

:func:`as_user_error` looks at an exception that escaped a command and, when the user (or a plugin)
caused it, returns a :class:`~zoo.errors.ZooError` naming the file, option or plugin and how to fix it;
``None`` means a bug of zoo's own ("internal error"). The CLI chains the original exception as the
cause, so ``--debug`` still shows the whole story. :func:`interrupted_by_user` answers whether a
Ctrl-C arrived while the command ran (some libraries wrap the ``KeyboardInterrupt`` in their own error).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import sys
import traceback
from types import FrameType
from typing import Any

from zoo.errors import ZooError

#: errno -> how to fix it (the strerror says what is wrong).
_OS_FIXES = {
    errno.ENOSPC: "free some disk space or choose another --out",
    errno.EDQUOT: "free some space or choose another --out",
    errno.EACCES: "check its permissions or choose another path",
    errno.EPERM: "check its permissions or choose another path",
    errno.EROFS: "the file system is read-only; choose another path",
    errno.ENAMETOOLONG: "use a shorter path",
    errno.EISDIR: "it is a folder; give a file",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.ENOENT: "check the path",
    errno.EEXIST: "remove it or choose another path",
    errno.ELOOP: "the path has a symbolic-link loop",
    errno.EMFILE: "too many open files; raise `ulimit -n`",
    errno.EIO: "the disk reported an I/O error; check the device",
    errno.EFBIG: "the file is larger than allowed (`ulimit -f` or the file system); raise the limit or choose "
                 "another --out",
}

#: Top-level packages that are libraries, never a plugin (a frame there is not "the plugin's code").
_LIBRARIES = {"torch", "numpy", "onnx", "onnxruntime", "onnxscript", "PIL", "safetensors", "click", "pluggy",
              "importlib", "functools", "contextlib", "runpy", "tqdm", "matplotlib", "sklearn", "scipy"}

_interrupts: list[int] = []


def watch_interrupts() -> None:
    """Remember every SIGINT (still raising ``KeyboardInterrupt`` as Python does by default)."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        _interrupts.append(signum)
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not the main thread: leave Python's handler
        signal.signal(signal.SIGINT, handler)


def interrupted_by_user(exc: BaseException) -> bool:
    """Did a Ctrl-C cause ``exc`` (directly, through its cause chain, or while it was being raised)?"""
    if _interrupts:
        return True
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def as_user_error(exc: BaseException) -> ZooError | None:
    """A one-line :class:`ZooError` for a failure the user or a plugin caused; ``None`` for zoo's own bugs."""
    if isinstance(exc, ZooError):
        return exc
    if isinstance(exc, OSError) and exc.errno in _OS_FIXES and exc.filename is not None:
        return ZooError(os_error_line(exc))  # a path the user gave, even when a plugin's code opened it
    if isinstance(exc, MemoryError):  # not a plugin's bug, even when its code asked for the memory
        return ZooError(OUT_OF_MEMORY)
    plugin = _plugin_in_traceback(exc)
    if plugin is not None:
        return ZooError(f"plugin {plugin!r} failed in its own code ({type(exc).__name__}: {_first_line(exc)}); "
                        f"fix or update the plugin, or report it to its authors (zoo --debug shows the traceback)")
    if isinstance(exc, OSError) and exc.errno in _OS_FIXES:
        return ZooError(os_error_line(exc))
    wrapped = os_error_in(exc)  # a library's own error around an OS error (safetensors, the ONNX exporter)
    if wrapped is not None and wrapped.errno in _OS_FIXES:
        return ZooError(os_error_line(wrapped))
    return None


#: The line for a MemoryError: what to shrink.
OUT_OF_MEMORY = ("out of memory: the data or model is too large for this machine or its memory limit; use less "
                 "data (a shorter text, fewer images), a smaller --image-size or --batch-size, or raise the limit")


def address_space_left() -> int | None:
    """Bytes this process may still map under its address-space limit (``ulimit -v``, ``RLIMIT_AS``); None when
    there is no limit (or it cannot be read). Libraries written in Rust abort the whole process when an allocation
    fails (exit 134, a backtrace), so code that hands them much data checks this first (:func:`need_memory`)."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/statm") as handle:
            used = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (ImportError, OSError, ValueError):
        return None
    return soft - used


def need_memory(size: int, what: str) -> None:
    """Refuse in one line (a :class:`ZooError`) when the address-space limit leaves less than ``size`` bytes for
    ``what``; nothing happens without a limit."""
    left = address_space_left()
    if left is not None and left < size:
        raise ZooError(f"out of memory: {what} needs about {size >> 20} MB more than the memory limit "
                       f"(ulimit -v) leaves ({max(left, 0) >> 20} MB); use less data or raise the limit")


def os_error_line(exc: OSError, what: str | None = None) -> str:
    """``cannot write /x: No space left on device; free some disk space ...`` for an OS error
    (``file too large: /x; raise the file-size limit ...`` when a file-size limit stopped a write)."""
    name = exc.filename if exc.filename is not None else what
    target = f" {os.fsdecode(name)!s}" if name is not None else ""
    fix = _OS_FIXES.get(exc.errno or 0, "check the path")
    if exc.errno == errno.EFBIG:
        return f"file too large:{target or ' (a file zoo was writing)'}; {fix}"
    reason = exc.strerror or type(exc).__name__
    return f"cannot use{target}: {reason}; {fix}"


#: How Rust libraries (safetensors, tokenizers) and some C++ ones print an OS error inside their own.
_OS_ERROR_TEXT = re.compile(r"\(os error (\d+)\)|\[Errno (\d+)\]")


def os_error_in(exc: BaseException, path: str | os.PathLike[str] | None = None) -> OSError | None:
    """The OS error behind ``exc``: itself, one in its chain of causes, or one a library printed into its own
    message (``... (os error 27)``); named after ``path`` when it names no file. None when there is none."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = None
        if isinstance(current, OSError) and current.errno:
            code, name = current.errno, current.filename
        elif (match := _OS_ERROR_TEXT.search(str(current))) is not None:
            code, name = int(match.group(1) or match.group(2)), None
        if code is not None:
            name = name if name is not None else path
            return OSError(code, os.strerror(code), None if name is None else os.fspath(name))
        current = current.__cause__ or current.__context__
    return None


def silence_stdout() -> None:
    """Point stdout at /dev/null: the reader of a pipe left, and Python's final flush must not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (tests): nothing to silence
        pass


#: Set by ``zoo train --nproc``'s launcher: where process 0 leaves its exit code (torchrun reports only 1).
EXIT_FILE_VAR = "ZOO_EXIT_FILE"


def record_exit(code: Any) -> None:
    """Process 0 under the ``--nproc`` launcher writes its exit code where the launcher reads it."""
    path = os.environ.get(EXIT_FILE_VAR)
    if not path or os.environ.get("RANK", "0") != "0":
        return
    value = code if isinstance(code, int) else (0 if code is None else 1)
    try:
        with open(path, "w") as handle:
            handle.write(str(value))
    except OSError:
        pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""


def _plugin_in_traceback(exc: BaseException) -> str | None:
    """The plugin whose own code raised ``exc``: the innermost frame of zoo's or a plugin's code decides."""
    owners = _plugin_packages()
    if not owners:
        return None
    for frame, _ in reversed(list(traceback.walk_tb(exc.__traceback__))):
        module = str(frame.f_globals.get("__name__", ""))
        top = module.split(".")[0]
        if top == "zoo":
            return None  # zoo's own code raised (or re-raised) it
        if top in owners:
            return owners[top]
        if top in _LIBRARIES or top in sys.stdlib_module_names:
            continue
    return None


def _plugin_packages() -> dict[str, str]:
    """Top-level package -> plugin name, from the specs loaded plugins registered (builders, families, loaders)."""
    from zoo import registry

    if getattr(registry, "_catalog", None) is None:  # nothing loaded: no plugin code can have run
        return {}
    owners: dict[str, str] = {}
    try:
        specs: list[Any] = [*registry.list_models(), *registry.list_families(), *registry.list_datasets()]
    except Exception:  # attributing an error must never raise one
        return owners
    for spec in specs:
        for ref in (getattr(spec, name, None) for name in ("builder", "factory", "loader")):
            module = ref.split(":")[0] if isinstance(ref, str) else getattr(ref, "__module__", None)
            if module and spec.plugin:
                owners.setdefault(module.split(".")[0], spec.plugin)
    return owners
