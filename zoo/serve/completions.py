"""OpenAI-compatible ``POST /v1/completions`` for language-model bundles (and ``GET /v1/models``).

Generation goes through the bundle's role handlers (:meth:`zoo.role_handlers.RoleHandlers.generate`: the lm
plugin's :class:`~zoo.role_handlers.TextGenerator` is ``zoo generate``'s own loop and key/value cache); one request
runs per bundle per worker at a time (its ``prompt`` a string, or a list of strings decoded together through
:meth:`~zoo.role_handlers.TextGenerator.generate_batch`, one choice each) and the others wait in a bounded queue
(503 beyond ``--max-queue``): no continuous batching across requests. The loop runs in a thread and hands each
token to the event loop; when the client goes away (or the time limit passes, or every row's ``stop`` string
appears) the thread stops before the next step, so the work is freed. The text is the tokenizer's decoding of the
new tokens, exactly what ``zoo generate`` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from zoo.serve import metrics
from zoo.serve.errors import ServeError, bad_request, overloaded
from zoo.serve.models import ServedBundle
from zoo.serve.state import ServerState, state

MAX_STOPS = 4
#: The most prompts one request may list (they decode as one batch).
MAX_PROMPTS = 32


@dataclass(frozen=True)
class CompletionRequest:
    """The fields of a completions request zoo honours (others are ignored, as OpenAI-compatible servers do)."""

    model: str | None
    prompts: tuple[str, ...]
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    stream: bool = False
    seed: int = 0

    @classmethod
    def parse(cls, doc: Any) -> CompletionRequest:
        """Check a decoded body; 400 for a body that is not an object, 422 for a field with a wrong value."""
        if not isinstance(doc, dict):
            raise bad_request("a completions request is a JSON object with at least 'prompt'")
        prompt = doc.get("prompt")
        prompts = (prompt,) if isinstance(prompt, str) else tuple(prompt) if isinstance(prompt, list) else ()
        if not 0 < len(prompts) <= MAX_PROMPTS or not all(isinstance(p, str) and p for p in prompts):
            raise ServeError(422, f"'prompt' must be a non-empty string or a list of 1 to {MAX_PROMPTS} non-empty "
                                  "strings (token-id prompts are not taken)")
        stop = doc.get("stop") or ()
        stop = (stop,) if isinstance(stop, str) else stop
        if not isinstance(stop, (list, tuple)) or len(stop) > MAX_STOPS or not all(
                isinstance(s, str) and s for s in stop):
            raise ServeError(422, f"'stop' must be a string or a list of up to {MAX_STOPS} non-empty strings")
        if doc.get("n", 1) != 1:
            raise ServeError(422, "'n' must be 1 (one completion per request)")
        model = doc.get("model")
        return cls(model=model if isinstance(model, str) and model else None, prompts=prompts,
                   max_tokens=_number(doc, "max_tokens", 16, int, 1, 1 << 20),
                   temperature=_number(doc, "temperature", 1.0, float, 0.0, 100.0),
                   top_p=_number(doc, "top_p", 1.0, float, 1e-9, 1.0), stop=tuple(stop),
                   stream=bool(doc.get("stream", False)), seed=_number(doc, "seed", 0, int, 0, 2**32 - 1))


def _number(doc: dict[str, Any], key: str, default: Any, kind: type, low: float, high: float) -> Any:
    value = doc.get(key)
    if value is None:
        return default
    whole = kind is not int or (isinstance(value, (int, float)) and float(value).is_integer())
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not whole:
        raise ServeError(422, f"'{key}' must be a {'whole ' if kind is int else ''}number, got {value!r}")
    if not low <= value <= high:
        raise ServeError(422, f"'{key}' must be from {low:g} to {high:g}, got {value!r}")
    return kind(value)


@dataclass
class LMSlot:
    """One bundle's language model in this worker: one sequence at a time, a bounded number waiting."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="completions"))


class _Stopped(Exception):
    """Raised inside the generation loop's callback to end it early."""


class Generation:
    """One completion request (one or several prompts, one row each): :meth:`start` waits for the bundle's slot
    and starts the loop in a thread, :meth:`pieces` yields each row's new text, :meth:`close` stops the loop before
    its next step and frees the slot."""

    def __init__(self, served: ServerState, bundle: ServedBundle, request: CompletionRequest) -> None:
        self.served, self.bundle, self.request = served, bundle, request
        self.lm = bundle.lm
        self.prompt_ids: list[list[int]] = [self.lm.encode(prompt) for prompt in request.prompts]
        self.tokens: list[list[int]] = [[] for _ in request.prompts]
        self.finish = ["length" for _ in request.prompts]
        self.stopped: set[int] = set()  # rows ended by a stop string (the loop drops them from its batch)
        self.queue: asyncio.Queue[tuple[int, int] | None] = asyncio.Queue()
        self.cancel = threading.Event()
        self.error: BaseException | None = None
        self.future: asyncio.Future | None = None
        self.slot = bundle.extras.setdefault("lm_slot", LMSlot())
        self.active = metrics.LM_ACTIVE.labels(bundle.name)

    async def start(self) -> None:
        """Take the sequence slot (503 when too many wait, 504 past the time limit) and start generating."""
        from zoo.role_handlers import GenerateRequest

        for number, ids in enumerate(self.prompt_ids):
            if len(ids) >= self.lm.context:
                which = f"prompt {number} " if len(self.prompt_ids) > 1 else "the prompt "
                raise ServeError(422, f"{which}is {len(ids)} tokens; this model's context is "
                                      f"{self.lm.context}: shorten it")
        if self.slot.waiting >= self.served.options.max_queue:
            raise overloaded(self.bundle.name)  # counted in zoo_serve_rejected_total by the app's error handler
        self.slot.waiting += 1
        try:
            await self.served.within_time(self.slot.lock.acquire())
        finally:
            self.slot.waiting -= 1
        loop = asyncio.get_running_loop()
        counter = metrics.LM_TOKENS.labels(self.bundle.name)
        asked = [GenerateRequest(tuple(ids), self.request.max_tokens, self.request.temperature,
                                 top_p=self.request.top_p, seed=self.request.seed) for ids in self.prompt_ids]

        def on_token(row: int, token: int) -> None:
            counter.inc()
            loop.call_soon_threadsafe(self.queue.put_nowait, (row, token))
            if self.cancel.is_set():
                raise _Stopped

        def work() -> None:
            try:
                if len(asked) == 1:
                    self.lm.generate(asked[0], lambda token: on_token(0, token))
                else:
                    self.lm.generate_batch(asked, on_token, lambda row: row in self.stopped)
            except _Stopped:
                pass
            except Exception as exc:  # handed to the request, which turns it into a response
                self.error = exc
            finally:
                loop.call_soon_threadsafe(self.queue.put_nowait, None)

        self.active.inc(len(asked))
        self.future = loop.run_in_executor(self.slot.executor, work)

    async def pieces(self) -> AsyncIterator[tuple[int, str]]:
        """``(row, new text)`` as tokens arrive, held back where a stop string might be starting; a row ends at a
        stop string, and the loop stops once every row has."""
        stops, sent = self.request.stop, [0 for _ in self.tokens]
        hold = max((len(s) for s in stops), default=1) - 1
        while (item := await self.queue.get()) is not None:
            row, token = item
            if row in self.stopped:  # chosen before the loop saw that the row had ended
                continue
            self.tokens[row].append(token)
            text = self.lm.decode(self.tokens[row])
            cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
            if cut >= 0:
                self.finish[row] = "stop"
                self.stopped.add(row)
                if cut > sent[row]:
                    yield row, text[sent[row]:cut]
                if len(self.stopped) == len(self.tokens):
                    self.cancel.set()
                    return
                continue
            safe = len(text.rstrip("\ufffd")) - hold
            if safe > sent[row]:
                yield row, text[sent[row]:safe]
                sent[row] = safe
        if self.error is not None:
            raise self.error
        for row, tokens in enumerate(self.tokens):
            text = self.lm.decode(tokens)
            if row not in self.stopped and len(text) > sent[row]:
                yield row, text[sent[row]:]

    async def close(self) -> None:
        """Stop the loop before its next step, wait for the thread, free the slot (safe to call twice)."""
        self.cancel.set()
        if self.future is not None:
            future, self.future = self.future, None
            await asyncio.shield(future)
            self.active.dec(len(self.tokens))
            self.slot.lock.release()

    def usage(self) -> dict[str, int]:
        prompt, completion = sum(map(len, self.prompt_ids)), sum(map(len, self.tokens))
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class EventStream(StreamingResponse):
    """Server-sent events that stop the moment the client goes away: the stream is cancelled and its generator
    closed at once (whatever the ASGI server's version does about writes to a closed connection), so the
    generator's ``finally`` frees the work."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        streaming = asyncio.ensure_future(self.stream_response(send))
        listening = asyncio.ensure_future(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait({streaming, listening}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            listening.cancel()
            if not streaming.done():
                streaming.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await streaming
            await self.body_iterator.aclose()  # type: ignore[attr-defined]


def _lm_bundle(served: ServerState, name: str | None) -> ServedBundle:
    if name is None:
        found = [b for b in served.table.bundles.values() if b.lm is not None]
        if len(found) != 1:
            raise ServeError(422, f"name the 'model'; language models here: {', '.join(b.name for b in found)}")
        return found[0]
    bundle = served.table.bundle(name)
    if bundle.lm is None:
        raise ServeError(404, f"model {name!r} is not a language model (roles: "
                              f"{', '.join(bundle.bundle.manifest.roles())}); completions need a graph whose role "
                              "generates text (its handlers implement generate)")
    return bundle


def _choice(text: str, finish: str | None, index: int = 0) -> dict[str, Any]:
    return {"index": index, "text": text, "logprobs": None, "finish_reason": finish}


def _event(doc: dict[str, Any]) -> str:
    return f"data: {json.dumps(doc)}\n\n"


async def completions(request: Request) -> Response:
    """OpenAI's completions: a prompt or a list of them (one batch, one choice each), greedy at temperature 0;
    ``stream`` sends server-sent events."""
    served = state(request)
    body = await request.body()
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"the request body is not JSON ({exc})") from None
    parsed = CompletionRequest.parse(doc)
    bundle = _lm_bundle(served, parsed.model)
    head = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": bundle.name}
    job = Generation(served, bundle, parsed)
    if not parsed.stream:
        texts = await run_to_end(served, job)
        choices = [_choice(text, finish, row) for row, (text, finish) in enumerate(zip(texts, job.finish, strict=True))]
        return JSONResponse({**head, "choices": choices, "usage": job.usage()})
    await start_streaming(job)

    async def events() -> AsyncIterator[str]:
        try:
            async for row, piece in job.pieces():
                yield _event({**head, "choices": [_choice(piece, None, row)]})
            last = len(job.finish) - 1
            for row, finish in enumerate(job.finish):  # each choice's end; the usage with the last
                yield _event({**head, "choices": [_choice("", finish, row)],
                              **({"usage": job.usage()} if row == last else {})})
            yield "data: [DONE]\n\n"
        finally:  # also when the client went away: the loop stops before its next step
            await job.close()

    return EventStream(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


async def run_to_end(served: ServerState, job: Generation) -> list[str]:
    """Start ``job``, collect each row's text within the server's time limit, and free it whatever happens."""
    try:
        await job.start()
        return await served.within_time(_collect(job))
    finally:
        await job.close()


async def start_streaming(job: Generation) -> None:
    """Start ``job`` for a stream; free it if it cannot start (once started, the stream's own end frees it)."""
    try:
        await job.start()
    except BaseException:
        await job.close()
        raise


async def _collect(job: Generation) -> list[str]:
    texts = ["" for _ in job.tokens]
    async for row, piece in job.pieces():
        texts[row] += piece
    return texts


async def list_models(request: Request) -> Response:
    """OpenAI's model list: every served language model."""
    served = state(request)
    return JSONResponse({"object": "list", "data": [
        {"id": b.name, "object": "model", "created": 0, "owned_by": "zoo"}
        for b in served.table.bundles.values() if b.lm is not None]})


ROUTES = [Route("/v1/completions", completions, methods=["POST"]), Route("/v1/models", list_models)]
