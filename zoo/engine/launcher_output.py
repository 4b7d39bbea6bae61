"""What ``zoo train --nproc N`` shows of torchrun's stderr: the workers' own lines, not torchrun's chatter.

torchrun logs warnings in glog style (``W1128 12:00:00.123 …``), a banner about ``OMP_NUM_THREADS``, and
on any failure or signal a Python traceback of its own (``ChildFailedError``, ``SignalException``) with a
report block. The workers already said what went wrong in one line, so all of that is dropped (unless
``--debug``); everything else passes through as it comes, progress bars included.
"""

from __future__ import annotations

import re
import threading
from typing import BinaryIO

_TORCHRUN_LOG = re.compile(rb"^[EWIF]\d{4} \d\d:\d\d:\d\d")
_BANNER = (b"*****", b"Setting OMP_NUM_THREADS environment variable")
_WORKER_LINES = (b"Error: ", b"zoo: ")


class StderrFilter:
    """Feed it torchrun's stderr in chunks; it writes what a user should see to ``sink``."""

    def __init__(self, sink: BinaryIO) -> None:
        self.sink = sink
        self.pending = b""
        self.in_traceback = False

    def feed(self, chunk: bytes) -> None:
        data = self.pending + chunk
        start = 0
        for match in re.finditer(rb"[\r\n]", data):
            self._line(data[start : match.end()])
            start = match.end()
        self.pending = data[start:]
        if self.pending.startswith(b"\x1b") or (self.pending and not self.in_traceback and len(self.pending) > 4096):
            self._line(self.pending)  # a long partial line (a progress bar): show it now
            self.pending = b""

    def close(self) -> None:
        if self.pending:
            self._line(self.pending)
            self.pending = b""

    def _line(self, line: bytes) -> None:
        stripped = line.lstrip()
        if stripped.startswith(b"Traceback (most recent call last)"):
            self.in_traceback = True  # torchrun's own; a worker's would come only with --debug
        if _TORCHRUN_LOG.match(stripped) or stripped.startswith(_BANNER):
            return
        if self.in_traceback and not stripped.startswith(_WORKER_LINES):
            return
        self.sink.write(line)
        self.sink.flush()


def pump(source: BinaryIO, sink: BinaryIO) -> threading.Thread:
    """Copy ``source`` to ``sink`` through a :class:`StderrFilter`, in a background thread."""
    import os

    stream = StderrFilter(sink)

    def run() -> None:
        fd = source.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            stream.feed(chunk)
        stream.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread
