"""Dynamic batching for one graph: requests that arrive within ``max_delay`` run as one ONNX Runtime call.

Each request is a dict of arrays whose first axis is the batch. An idle batcher that gets a request waits up
to ``max_delay`` seconds for others (less when ``max_batch`` rows are waiting); requests that arrived while a
batch ran go as the next batch at once (they have waited already). A batch concatenates the requests whose
other axes and dtypes match the oldest one, runs the graph once in its own thread (on the event loop itself
when the graph's recent batches took under :data:`INLINE_BELOW_S`: then the hand-over costs more than the run)
and hands each request its rows back. The queue is bounded: beyond ``max_queue`` waiting requests,
:meth:`Batcher.submit` raises a 503 at once (never a hang, never unbounded memory). A request whose caller gave
up (timeout, disconnect) before its batch started is dropped. If a batch fails, its requests are run one by one,
so one bad request cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from zoo.serve.errors import ServeError, bad_request, overloaded, timed_out

Feeds = dict[str, np.ndarray]
Outputs = dict[str, np.ndarray]
Runner = Callable[[Feeds], Outputs]

#: A graph whose recent batches ran faster than this runs them on the event loop: handing a batch to a thread and
#: its result back costs more (two thread switches and the GIL each way) than running it there.
INLINE_BELOW_S = 0.001


@dataclass
class _Pending:
    feeds: Feeds
    rows: int
    signature: tuple
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class BatchStats:
    """What one batch was, for metrics: rows run, requests in it, seconds spent queued by the oldest."""

    rows: int
    requests: int
    waited_s: float
    run_s: float


def signature(feeds: Feeds) -> tuple:
    """What must agree for requests to share a batch: each input's name, dtype and non-batch axes."""
    return tuple(sorted((name, a.dtype.str, a.shape[1:]) for name, a in feeds.items()))


class Batcher:
    """Batches requests for one graph; :meth:`submit` from the event loop, :meth:`close` to drain and stop."""

    def __init__(self, name: str, run: Runner, *, max_batch: int, max_delay_s: float, max_queue: int,
                 on_batch: Callable[[BatchStats], None] | None = None,
                 on_depth: Callable[[int], None] | None = None) -> None:
        self.name = name
        self.run = run
        self.max_batch = max(1, max_batch)
        self.max_delay_s = max(0.0, max_delay_s)
        self.max_queue = max(1, max_queue)
        self.on_batch = on_batch
        self.on_depth = on_depth
        self.queue: deque[_Pending] = deque()
        self.wake = asyncio.Event()
        self.full = asyncio.Event()
        self.backlog = False  # requests arrived while the last batch ran
        self.closing = False
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"batch-{name}")
        self.task: asyncio.Task | None = None
        self.queued_rows = 0  # rows of the requests in the queue
        self.recent_run_s = float("inf")  # seconds per batch lately (none run yet: as if slow)

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.name}")

    async def submit(self, feeds: Feeds, timeout_s: float | None = None) -> Outputs:
        """This request's outputs, once its batch ran; 503 at once when the queue is full; 504 when ``timeout_s``
        passes first (the request is dropped from the queue if its batch has not started)."""
        if self.closing:
            raise overloaded(self.name)
        if len(self.queue) >= self.max_queue:
            raise overloaded(self.name)
        rows = {int(a.shape[0]) if a.ndim else -1 for a in feeds.values()}
        if len(rows) != 1 or -1 in rows:
            raise bad_request(f"{self.name}: every input needs the same first (batch) axis; got sizes {sorted(rows)}")
        self.start()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        pending = _Pending(feeds, rows.pop(), signature(feeds), future)
        self.queue.append(pending)
        self.queued_rows += pending.rows
        self._depth()
        self.wake.set()
        if self.queued_rows >= self.max_batch:
            self.full.set()
        if timeout_s is None:
            return await future
        timer = loop.call_later(timeout_s, _expire, future, timeout_s)  # cheaper than a timeout context per request
        try:
            return await future
        finally:
            timer.cancel()

    async def close(self) -> None:
        """Finish what is queued, then stop the thread (a reloaded graph's old batcher)."""
        self.closing = True
        self.wake.set()
        self.full.set()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.executor.shutdown(wait=True)

    def _depth(self) -> None:
        if self.on_depth:
            self.on_depth(len(self.queue))

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                if self.closing:
                    return
                self.wake.clear()
                await self.wake.wait()
            left = self.queue[0].queued_at + self.max_delay_s - time.perf_counter()
            if not self.backlog and left > 0 and self.queued_rows < self.max_batch:
                self.full.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.full.wait(), left)
            batch = self._take()
            self._depth()
            if batch:
                await self._run(loop, batch)
            self.backlog = bool(self.queue)

    def _take(self) -> list[_Pending]:
        """The oldest live request and every later one that fits beside it (same signature, ≤ max_batch rows)."""
        while self.queue and self.queue[0].future.done():  # its caller gave up
            self.queue.popleft()
        if not self.queue:
            self.queued_rows = 0
            return []
        first = self.queue.popleft()
        batch, rows, kept = [first], first.rows, deque()
        while self.queue:
            item = self.queue.popleft()
            if item.future.done():
                continue
            if item.signature == first.signature and rows + item.rows <= self.max_batch:
                batch.append(item)
                rows += item.rows
            else:
                kept.append(item)
        self.queue.extendleft(reversed(kept))
        self.queued_rows = sum(p.rows for p in self.queue)
        return batch

    def _timed(self, feeds: Feeds) -> tuple[Outputs, float]:
        """The graph's outputs and the seconds the run itself took (not the hand-over to a thread)."""
        started = time.perf_counter()
        outputs = self.run(feeds)
        return outputs, time.perf_counter() - started

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        if len(batch) == 1:
            feeds = batch[0].feeds
        else:
            feeds = {name: np.concatenate([p.feeds[name] for p in batch]) for name in batch[0].feeds}
        try:
            if self.recent_run_s < INLINE_BELOW_S:
                outputs, took = self._timed(feeds)
            else:
                outputs, took = await loop.run_in_executor(self.executor, self._timed, feeds)
        except Exception as exc:
            if not refused_input(exc):  # zoo's own bug: every caller gets it (a 500 with the reason)
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                return
            if len(batch) > 1:  # find the request that broke it; the others still get answers
                for item in batch:
                    await self._run(loop, [item])
                return
            _fail(batch[0].future, exc)
            return
        self.recent_run_s = took if self.recent_run_s == float("inf") else 0.8 * self.recent_run_s + 0.2 * took
        if self.on_batch:
            self.on_batch(BatchStats(sum(p.rows for p in batch), len(batch), started - batch[0].queued_at,
                                     time.perf_counter() - started))
        start = 0
        for item in batch:
            if not item.future.done():
                item.future.set_result({k: v[start:start + item.rows] for k, v in outputs.items()})
            start += item.rows


def refused_input(exc: Exception) -> bool:
    """Whether ONNX Runtime refused the inputs (its own exception types), rather than zoo failing."""
    return isinstance(exc, ServeError) or type(exc).__module__.startswith("onnxruntime")


def _expire(future: asyncio.Future, seconds: float) -> None:
    if not future.done():
        future.set_exception(timed_out(seconds))


def _fail(future: asyncio.Future, exc: Exception) -> None:
    if future.done():
        return
    if isinstance(exc, ServeError):
        future.set_exception(exc)
    else:  # ONNX Runtime refusing the inputs (shapes, values): the caller's input, said in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        future.set_exception(bad_request(f"the graph refused the inputs: {first}"))
