"""uvicorn's httptools HTTP protocol with one socket write per response instead of two.

uvicorn writes a response's status line and headers the moment the app sends ``http.response.start`` and its
body with the next message: two ``send`` system calls, and the client woken twice, for a response of a few
hundred bytes. Under load that was a fifth of a worker's time on small graphs. Here the connection's transport
gathers what is written during one turn of the event loop and hands it to the real transport as one write at
the end of that turn (and before closing), so a response sent in one go leaves in one piece; a streamed
response's pieces still leave as they are sent, a turn later at most. Selected with ``uvicorn.Config(http=...)``,
the documented way to give uvicorn a protocol class.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class GatheringTransport:
    """A transport that joins the writes of one event-loop turn into one write of the transport it wraps."""

    __slots__ = ("loop", "pending", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self.loop = loop
        self.pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self.pending:
            self.loop.call_soon(self.flush)
        self.pending.append(data)

    def flush(self) -> None:
        """Write what was gathered (nothing once the connection is closing)."""
        if self.pending:
            data = self.pending[0] if len(self.pending) == 1 else b"".join(self.pending)
            self.pending.clear()
            if not self.transport.is_closing():
                self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:  # everything else is the real transport's
        return getattr(self.transport, name)


class OneWriteProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a :class:`GatheringTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(GatheringTransport(transport, self.loop))  # type: ignore[arg-type]
