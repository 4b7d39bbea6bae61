"""Errors a request can end in: an HTTP status, one line saying what is wrong, and headers (``Retry-After``)."""

from __future__ import annotations


class ServeError(Exception):
    """A request that cannot be answered as asked; ``status`` is the HTTP status to send."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def bad_request(message: str) -> ServeError:
    """400: the body is malformed (not JSON, wrong types, an unreadable image)."""
    return ServeError(400, message)


def not_found(message: str) -> ServeError:
    """404: no such model or graph."""
    return ServeError(404, message)


def overloaded(what: str, retry_after_s: int = 1) -> ServeError:
    """503 with ``Retry-After``: the model's queue is full; the client should come back shortly."""
    return ServeError(503, f"{what} is overloaded (queue full); retry after {retry_after_s} s",
                      {"Retry-After": str(retry_after_s)})


def timed_out(seconds: float) -> ServeError:
    """504: the model did not answer within ``--timeout-s``."""
    return ServeError(504, f"the model did not answer within --timeout-s {seconds:g} s; retry later or raise the limit")
