"""Servers for tests/test_serve.py: ``zoo serve`` in a thread of the test process (so a test can slow a model
down) or as a real process tree (signals, kill -9, several workers), always on 127.0.0.1."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from zoo.serve.options import ServeOptions
from zoo.serve.server import HTTP_PROTOCOL

HOST = "127.0.0.1"


class ThreadServer:
    """The app of :func:`zoo.serve.app.create_app` under uvicorn in a thread, on a free loopback port."""

    def __init__(self, options: ServeOptions) -> None:
        import uvicorn

        from zoo.serve.app import create_app

        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}"
        self.app = create_app(options)
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False,
                                                    http=HTTP_PROTOCOL))  # as zoo serve runs it
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        wait_ready(self.url)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


def wait_ready(url: str, limit_s: float = 90.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"zoo serve exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} was not ready within {limit_s} s")


def hidden_torch(folder: Path) -> Path:
    """A folder that, first on PYTHONPATH, makes ``import torch`` fail: a server that imports torch breaks."""
    (folder / "torch").mkdir(parents=True, exist_ok=True)
    message = "raise ImportError('torch is hidden: zoo serve must not import it')\n"
    (folder / "torch" / "__init__.py").write_text(message)
    return folder


class ProcessServer:
    """``python -m zoo serve ARGS --port 0`` with torch hidden; stderr (the log lines) kept in a file."""

    def __init__(self, args: list[str], work: Path) -> None:
        self.log = work / f"serve-{time.monotonic_ns()}.log"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hidden_torch(work / "no-torch")),
                                                            os.environ.get("PYTHONPATH", "")])}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.stream = self.log.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "zoo", "serve", *args, "--port", "0"],
                                     stdout=subprocess.DEVNULL, stderr=self.stream, env=env)
        deadline = time.monotonic() + 60
        while not (found := re.search(r"zoo serve: (http://[\d.]+:\d+)", self.log.read_text())):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"zoo serve did not start: {self.log.read_text()}")
            time.sleep(0.1)
        self.url = found.group(1)
        wait_ready(self.url, proc=self.proc)

    def workers(self) -> list[int]:
        """Worker process ids (the supervisor's children that run uvicorn)."""
        pids = []
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            pids += [int(p) for p in (task / "children").read_text().split()]
        return [p for p in pids if "resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes().decode(
            errors="replace")]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stream.close()
        return self.proc.returncode

    def __enter__(self) -> ProcessServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
