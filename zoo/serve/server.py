"""Starting ``zoo serve``: bundles checked up front, one socket, N uvicorn worker processes under a supervisor.

The supervisor (uvicorn's ``Multiprocess``) binds the socket once, starts ``--workers`` processes that each load
every bundle, replaces a worker that dies (even by ``kill -9``), and on SIGTERM/SIGINT asks each worker to stop:
a worker stops accepting, finishes the requests it holds, and exits; then the supervisor exits 0. SIGHUP replaces
the workers one by one (each new one ready before the old one goes).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from zoo.errors import ZooError
from zoo.serve.options import ServeOptions

#: uvicorn's httptools protocol writing each response in one piece (:mod:`zoo.serve.protocol`).
HTTP_PROTOCOL = "zoo.serve.protocol:OneWriteProtocol"
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def parse_bundles(arguments: list[str]) -> dict[str, str]:
    """``FOLDER`` or ``NAME=FOLDER`` arguments → name → folder (names unique, without dots or slashes)."""
    bundles: dict[str, str] = {}
    for argument in arguments:
        name, sep, folder = argument.partition("=")
        if not sep:
            folder, name = argument, Path(argument.rstrip("/")).name
        if not name or not set(name) <= NAME_CHARS:
            raise ZooError(f"model name {name!r} (from {argument!r}) may hold only letters, digits, '-' and '_'; "
                           "name it with NAME=FOLDER")
        if name in bundles:
            raise ZooError(f"two bundles are named {name!r}; name them apart with NAME=FOLDER")
        bundles[name] = str(Path(folder).resolve())
    if not bundles:
        raise ZooError("name at least one bundle folder: zoo serve exports/cnn-<timestamp>")
    return bundles


def check_bundles(options: ServeOptions) -> list[str]:
    """Open every bundle once here, so a bad one is one line and exit 2 before any worker starts; the model names."""
    from zoo.bundles.manifest import Bundle
    from zoo.serve.models import primary_graph

    names = []
    for name, folder in options.bundles.items():
        bundle = Bundle.open(folder)
        primary = primary_graph(bundle)
        names += [name if graph == primary else f"{name}.{graph}" for graph in bundle.manifest.graphs]
    return names


def check_options(options: ServeOptions) -> None:
    for flag, value, low in (("--workers", options.workers, 1), ("--max-batch", options.max_batch, 1),
                             ("--max-queue", options.max_queue, 1)):
        if value < low:
            raise ZooError(f"{flag} must be at least {low}, got {value}")
    for flag, value in (("--max-delay-ms", options.max_delay_ms), ("--timeout-s", options.timeout_s),
                        ("--max-body-mb", options.max_body_mb)):
        if not value >= 0 or (flag != "--max-delay-ms" and value == 0):
            raise ZooError(f"{flag} must be {'0 or more' if flag == '--max-delay-ms' else 'more than 0'}, got {value}")
    if not 0 <= options.port <= 65535:
        raise ZooError(f"--port must be from 0 to 65535, got {options.port}")
    if options.chat_template:
        from zoo.serve.chat import load_template

        load_template(options.chat_template)


def serve(options: ServeOptions) -> None:
    """Run the server until SIGTERM/SIGINT; returns when every worker has finished its requests."""
    try:
        import orjson  # noqa: F401
        import prometheus_client  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn
        from uvicorn.supervisors import Multiprocess
    except ImportError as exc:
        raise ZooError(f"zoo serve needs the serve extra ({exc.name} is missing): pip install 'plugzoo[serve]'"
                       ) from None
    from zoo.serve.metrics import MULTIPROC_ENV

    check_options(options)
    names = check_bundles(options)
    with tempfile.TemporaryDirectory(prefix="zoo-serve-metrics-") as metrics_dir:
        os.environ.setdefault(MULTIPROC_ENV, metrics_dir)
        config = uvicorn.Config("zoo.serve.app:create_app", factory=True, host=options.host, port=options.port,
                                workers=options.workers, access_log=False, log_level="warning",
                                timeout_worker_healthcheck=5, http=HTTP_PROTOCOL)
        try:
            sock = config.bind_socket()
        except SystemExit:
            raise ZooError(f"cannot listen on {options.host}:{options.port} (in use or not allowed); "
                           "pick another --port") from None
        host, port = sock.getsockname()[:2]
        options = ServeOptions(**{**options.__dict__, "port": port})
        options.to_env()
        print(f"zoo serve: http://{host}:{port} ({options.workers} worker{'s' * (options.workers > 1)}, pid "
              f"{os.getpid()}): {', '.join(names)}", file=sys.stderr, flush=True)
        try:
            Multiprocess(config, sockets=[sock]).run()
        finally:
            sock.close()
