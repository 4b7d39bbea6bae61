"""What one worker holds while it serves: the options, the model table, readiness; reached from each request."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from starlette.requests import Request

from zoo.serve.errors import timed_out
from zoo.serve.models import ModelTable
from zoo.serve.options import ServeOptions

T = TypeVar("T")


@dataclass
class ServerState:
    """The worker's options, its bundles and whether it accepts work (false while starting and stopping)."""

    options: ServeOptions
    table: ModelTable
    ready: bool = False
    handlers: ThreadPoolExecutor | None = None

    def handler_threads(self) -> ThreadPoolExecutor:
        """Threads for role handlers' predict calls (each waits on a batcher; as many as requests may wait)."""
        if self.handlers is None:
            self.handlers = ThreadPoolExecutor(max(4, self.options.max_queue), thread_name_prefix="role-handler")
        return self.handlers

    async def within_time(self, work: Awaitable[T]) -> T:
        """``work``'s result, or 504 once ``--timeout-s`` has passed (the work is cancelled, its batch slot freed)."""
        try:
            return await within(work, self.options.timeout_s)
        except asyncio.TimeoutError:
            raise timed_out(self.options.timeout_s) from None


async def within(work: Awaitable[T], seconds: float) -> T:
    """``await work`` with a time limit (``asyncio.timeout`` where there is one: no extra task per request)."""
    if hasattr(asyncio, "timeout"):  # Python 3.11+
        async with asyncio.timeout(seconds):
            return await work
    return await asyncio.wait_for(work, seconds)


def state(request: Request) -> ServerState:
    """The worker's :class:`ServerState`."""
    return request.app.state.zoo
