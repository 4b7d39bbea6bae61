"""Clean interrupts: SIGINT/SIGTERM only set a flag; the loop saves at the next step boundary.

A second signal aborts at once (``KeyboardInterrupt``): the checkpoints on disk are written
atomically, so even that never leaves a broken one. Under torchrun a process gets each Ctrl-C twice
(from the terminal, then relayed by torchrun's agent), so there the second one is not an abort:
torchrun's own grace period (30 s, then SIGKILL) is the hard stop.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

from zoo.errors import ZooError

#: The shell's convention: 128 + the signal number.
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted(ZooError):
    """Training stopped on a signal after saving; ``exit_code`` is 130 (SIGINT) or 143 (SIGTERM)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def interrupted(sig: Any, exit_code: int, *, step: int, epoch: int, last: Any, run_dir: Any,
                world_size: int) -> Interrupted:
    """The error a run stopped by ``sig`` ends with: where it stopped, what it saved, how to resume."""
    launcher = f" --nproc {world_size}" if world_size > 1 else ""
    return Interrupted(f"interrupted by {sig.name} at step {step} (epoch {epoch}); saved {last}; "
                       f"resume with: zoo train --resume {run_dir}{launcher}", exit_code)


class InterruptFlag:
    """Context manager: while active, SIGINT and SIGTERM set :attr:`received` instead of killing."""

    def __init__(self, abort_on_second: bool = True) -> None:
        self.abort_on_second = abort_on_second
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, object] = {}

    def __enter__(self) -> InterruptFlag:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            for sig in EXIT_CODES:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            if not self.abort_on_second:
                return
            raise KeyboardInterrupt  # the second signal: stop now
        self.received = signal.Signals(signum)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.received, 130) if self.received else 0
