"""OpenAI-compatible ``POST /v1/chat/completions``: the messages rendered by a chat template, then a completion.

The template is a Hugging Face ``tokenizer_config.json``'s ``chat_template`` (or a bare Jinja file), given with
``zoo serve --chat-template FILE``; it is rendered the way Hugging Face tokenizers render theirs (a sandboxed
Jinja environment with ``trim_blocks`` and ``lstrip_blocks``, the ``loopcontrols`` extension, a ``tojson`` filter
that keeps non-ASCII characters, ``raise_exception`` and ``strftime_now``; ``messages``,
``add_generation_prompt=True`` and the config's special tokens such as ``bos_token``) and the text it gives is the
prompt of an ordinary completion (:mod:`zoo.serve.completions`: same sampling fields, same queue, same streaming).
Without a template the route answers 404 saying how to give one.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from zoo.errors import ZooError
from zoo.serve.completions import CompletionRequest, EventStream, Generation, _lm_bundle, run_to_end, start_streaming
from zoo.serve.errors import ServeError, bad_request
from zoo.serve.state import state

ROLES = ("system", "user", "assistant", "tool", "developer")


@dataclass(frozen=True)
class ChatTemplate:
    """A compiled chat template and the special tokens it is rendered with (``bos_token``, ``eos_token``, …)."""

    source: str
    tokens: dict[str, str] = field(default_factory=dict)

    def render(self, messages: list[dict[str, Any]]) -> str:
        """The prompt for ``messages``, ending where the assistant's answer starts; 400 when the template refuses."""
        from jinja2 import TemplateError

        try:
            return _compile(self.source).render(messages=messages, add_generation_prompt=True, **self.tokens)
        except TemplateError as exc:
            raise bad_request(f"the chat template refused the messages: {exc}") from None


def load_template(path: str) -> ChatTemplate:
    """The chat template in ``path`` (a ``tokenizer_config.json`` with ``chat_template``, or a Jinja file), checked
    by compiling it; ZooError in one line otherwise."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ZooError(f"--chat-template {path}: cannot read it ({exc.__class__.__name__}); give a "
                       "tokenizer_config.json or a Jinja template file") from None
    tokens: dict[str, str] = {}
    if file.suffix == ".json":
        try:
            config = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ZooError(f"--chat-template {path} is not JSON ({exc})") from None
        source = config.get("chat_template") if isinstance(config, dict) else None
        if isinstance(source, list):  # several named templates: the default one
            source = next((t.get("template") for t in source if isinstance(t, dict) and t.get("name") == "default"),
                          None)
        if not isinstance(source, str) or not source.strip():
            raise ZooError(f"--chat-template {path} has no 'chat_template'; give a tokenizer_config.json that has one "
                           "or a Jinja template file")
        tokens = {key: _token_text(value) for key, value in config.items()
                  if key.endswith("_token") and _token_text(value) is not None}
    else:
        source = text
    from jinja2 import TemplateError

    try:
        _compile(source)
    except TemplateError as exc:
        raise ZooError(f"--chat-template {path}: the template does not compile ({exc})") from None
    return ChatTemplate(source, tokens)


def _token_text(value: Any) -> str | None:
    """A special token as the config gives it: a string, or an ``AddedToken`` object's ``content``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


_COMPILED: dict[str, Any] = {}


def _compile(source: str) -> Any:
    if source not in _COMPILED:
        from jinja2.exceptions import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise TemplateError(message)

        def tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False) -> str:
            return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                            extensions=["jinja2.ext.loopcontrols"])
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = lambda format: datetime.now().strftime(format)
        _COMPILED[source] = env.from_string(source)
    return _COMPILED[source]


def parse_messages(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's ``messages``: a non-empty list of ``{"role", "content"}`` with text content (422 otherwise)."""
    messages = doc.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ServeError(422, "'messages' must be a non-empty list of {\"role\", \"content\"} objects")
    checked = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ServeError(422, f"messages[{i}] needs a 'role', one of {', '.join(ROLES)}")
        content = message.get("content")
        if isinstance(content, list):  # OpenAI's content parts: text only
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                raise ServeError(422, f"messages[{i}].content: only text parts are supported")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise ServeError(422, f"messages[{i}].content must be text")
        checked.append({**message, "content": content})
    return checked


def _chunk(head: dict[str, Any], delta: dict[str, Any], finish: str | None) -> str:
    doc = {**head, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta,
                                                                  "finish_reason": finish}]}
    return f"data: {json.dumps(doc)}\n\n"


async def chat_completions(request: Request) -> Response:
    """OpenAI's chat completions: the messages through the chat template, then a completion of that prompt."""
    served = state(request)
    template: ChatTemplate | None = served.table.chat_template
    try:
        doc = json.loads(await request.body())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"the request body is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise bad_request("a chat completions request is a JSON object with 'messages'")
    model = doc.get("model") if isinstance(doc.get("model"), str) and doc.get("model") else None
    bundle = _lm_bundle(served, model)
    if template is None:
        raise ServeError(404, f"model {bundle.name!r} has no chat template; start zoo serve with --chat-template "
                              "FILE (a tokenizer_config.json with 'chat_template', or a Jinja file), or use "
                              "/v1/completions")
    prompt = template.render(parse_messages(doc))
    if not prompt:
        raise bad_request("the chat template made an empty prompt of these messages")
    max_tokens = doc.get("max_completion_tokens", doc.get("max_tokens"))
    parsed = CompletionRequest.parse({**doc, "prompt": prompt, "max_tokens": max_tokens})
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": bundle.name}
    job = Generation(served, bundle, parsed)
    if not parsed.stream:
        text = (await run_to_end(served, job))[0]
        return JSONResponse({**head, "object": "chat.completion", "usage": job.usage(), "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
             "finish_reason": job.finish[0]}]})
    await start_streaming(job)

    async def events() -> AsyncIterator[str]:
        try:
            yield _chunk(head, {"role": "assistant", "content": ""}, None)
            async for _, piece in job.pieces():  # one prompt: row 0
                yield _chunk(head, {"content": piece}, None)
            yield _chunk(head, {}, job.finish[0])
            yield "data: [DONE]\n\n"
        finally:  # also when the client went away: the loop stops before its next step
            await job.close()

    return EventStream(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


ROUTES = [Route("/v1/chat/completions", chat_completions, methods=["POST"])]
