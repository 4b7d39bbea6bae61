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
#: torchrun's failure report names the first process that failed and how (``exitcode  : -9 (pid: 123)``).
_FAILED_RANK = re.compile(rb"^\s*rank\s*:\s*(\d+)")
_FAILED_CODE = re.compile(rb"^\s*exitcode\s*:\s*(-?\d+)")


class StderrFilter:
    """Feed it torchrun's stderr in chunks; it writes what a user should see to ``sink``."""

    def __init__(self, sink: BinaryIO) -> None:
        self.sink = sink
        self.pending = b""
        self.in_traceback = False
        #: A worker's own "Error: ..." or "zoo: ..." line went through (then nothing needs adding).
        self.worker_spoke = False
        #: From torchrun's report: the first failed process's rank and exit code (negative: killed by a signal).
        self.failed_rank: int | None = None
        self.failed_code: int | None = None

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
        for pattern, name in ((_FAILED_RANK, "failed_rank"), (_FAILED_CODE, "failed_code")):
            if (found := pattern.match(stripped)) and getattr(self, name) is None:
                setattr(self, name, int(found.group(1)))
        if stripped.startswith(b"Traceback (most recent call last)"):
            self.in_traceback = True  # torchrun's own; a worker's would come only with --debug
        if _TORCHRUN_LOG.match(stripped) or stripped.startswith(_BANNER):
            return
        if self.in_traceback and not stripped.startswith(_WORKER_LINES):
            return
        if stripped.startswith(_WORKER_LINES):
            self.worker_spoke = True
        self.sink.write(line)
        self.sink.flush()

    def failure_line(self) -> str:
        """One line for a run that torchrun ended without any worker saying why (a worker killed by a signal,
        or one that crashed in C code)."""
        import signal

        who = f"training process {self.failed_rank}" if self.failed_rank is not None else "a training process"
        if self.failed_code is not None and self.failed_code < 0:
            try:
                how = f"was killed by {signal.Signals(-self.failed_code).name}"
            except ValueError:
                how = f"was killed by signal {-self.failed_code}"
        elif self.failed_code is not None:
            how = f"exited with code {self.failed_code} without a message"
        else:
            how = "stopped without a message"
        return (f"Error: {who} {how}, so torchrun stopped the others; the run's last checkpoint is intact: "
                "resume it with zoo train --resume RUN_DIR (zoo --debug shows torchrun's report)")


def pump(source: BinaryIO, sink: BinaryIO, stream: StderrFilter | None = None) -> threading.Thread:
    """Copy ``source`` to ``sink`` through a :class:`StderrFilter` (``stream``, or a new one), in a background
    thread."""
    import os

    stream = stream if stream is not None else StderrFilter(sink)

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
