"""A lean closed-loop HTTP/1.1 load generator for benchmarks/serve_load.py, so that it measures servers, not itself.

Each of ``concurrency`` clients holds one keep-alive connection and sends one pre-encoded request (the same bytes
every time), waits for the whole answer, and sends the next; no HTTP library, one small ``asyncio.Protocol`` per
connection on uvloop where it is installed. It reads a response's status line and ``Content-Length`` (every server
here answers with one; chunked answers are counted as errors) and counts ``200`` as answered, anything else
(another status, a dropped connection) as an error; a connection the server closed is reopened. Bounded by
``seconds`` and ``max_requests``. Loopback use only.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Result:
    """One closed-loop run: seconds per answered request, errors, the wall time it took and the CPU seconds the
    client itself spent (this process: the generator's own cost, to tell it apart from the server's)."""

    latencies: list[float]
    errors: int
    elapsed: float
    client_cpu_s: float = 0.0


def encode_post(url: str, body: bytes, content_type: str = "application/json") -> tuple[str, int, bytes]:
    """Host, port and the request bytes of a keep-alive POST of ``body`` to ``url``."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = (f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n")
    return host, port, head.encode() + body


class _Connection(asyncio.Protocol):
    """One keep-alive connection: :meth:`send` the request, await the answer's status."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None or self.waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            self.waiter.set_result(-1)  # chunked or unframed: not a server this client measures
            return
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17:stop if stop > 0 else len(head)])
        total = end + 4 + length
        if len(self.buffer) >= total:
            status = int(head[9:12])
            del self.buffer[:total]
            self.waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(0)

    def send(self, request: bytes) -> asyncio.Future:
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(request)
        return self.waiter


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(-2)  # no answer in time: an error, and the connection is dropped


async def _drive(host: str, port: int, request: bytes, concurrency: int, seconds: float, max_requests: int,
                 timeout_s: float) -> Result:
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors = sent = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def one_client() -> None:
        nonlocal errors, sent
        connection: _Connection | None = None
        while time.perf_counter() < deadline and sent < max_requests:
            sent += 1
            if connection is None or connection.closed:
                try:
                    _, connection = await loop.create_connection(_Connection, host, port)
                except OSError:
                    errors += 1
                    await asyncio.sleep(0.01)
                    continue
            begun = time.perf_counter()
            waiter = connection.send(request)
            timer = loop.call_later(timeout_s, _expire, waiter)
            status = await waiter
            timer.cancel()
            if status == 200:
                latencies.append(time.perf_counter() - begun)
            else:
                errors += 1
                if status <= 0 and connection.transport is not None:
                    connection.transport.close()
                    connection = None
        if connection is not None and connection.transport is not None:
            connection.transport.close()

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return Result(latencies, errors, time.perf_counter() - started)


def drive(url: str, body: bytes, concurrency: int, seconds: float, max_requests: int, timeout_s: float = 30
          ) -> Result:
    """Closed loop: ``concurrency`` clients, each sends its next POST of ``body`` when the last one was answered
    (an answer later than ``timeout_s`` is an error)."""
    host, port, request = encode_post(url, body)
    work = _drive(host, port, request, concurrency, seconds, max_requests, timeout_s)
    cpu = time.process_time()
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(work)
    else:
        result = uvloop.run(work)
    result.client_cpu_s = time.process_time() - cpu
    return result
