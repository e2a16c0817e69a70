"""Streamed chat completions: text handed on as it arrives, then the whole ``ChatResult``.

``streamed_chat`` (behind ``LLMClient.chat(on_text=...)``) opens the stream under the client's one
retry layer: a failure before any text was handed on (a refused connection, a 429 or 5xx answer to
the request) is retried like any call; once text was handed on, nothing is retried (the table has
seen it) and the failure propagates as a typed ``LLMError``.

Endpoints differ, and each difference falls back rather than fails:

- a server that answers a streamed request with a plain JSON completion (some OpenAI-compatible
  servers ignore ``stream``): its whole text is handed on at once;
- a server that refuses ``stream_options`` (HTTP 400 naming it): asked again without it, and not
  asked with it again by this client;
- a stream without a usage chunk (servers that ignore ``include_usage``), or one stopped early by the
  caller: usage is counted locally by tiktoken (prompt and the text received) and marked
  ``Usage.estimated``.

The caller's ``on_text(delta) -> bool`` returns False to stop the stream (the output guard cut the
reply): the response is closed at once, so the endpoint stops generating.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import openai
from openai.types.chat import ChatCompletion

from bot.llm import errors as E
from bot.llm.failures import is_transient
from bot.llm.tokens import count_message_tokens, count_tokens
from bot.llm.types import ChatResult, ToolCall, Usage

if TYPE_CHECKING:
    from bot.llm.client import LLMClient

log = logging.getLogger(__name__)

OnText = Callable[[str], Awaitable[bool]]
"""``delta -> keep going``: receives each piece of the reply's text as it arrives; False stops the stream."""


def usage_of(u: Any) -> Usage:
    """The bot's ``Usage`` (tokens) from an SDK usage object (None: zeros)."""
    if u is None:
        return Usage()
    details = getattr(u, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or 0
    return Usage(int(u.prompt_tokens or 0), int(u.completion_tokens or 0), int(cached))


def estimated_usage(kwargs: dict[str, Any], text: str, calls: tuple[ToolCall, ...], model: str) -> Usage:
    """Usage counted locally (tiktoken) for a call whose endpoint reported none: the prompt's tokens
    (messages and tool schemas of the request ``kwargs``) and the tokens of the text and tool calls
    received; ``estimated=True``."""
    completion = count_tokens(text, model) + sum(count_tokens(c.name + c.arguments, model) for c in calls)
    prompt = count_message_tokens(kwargs["messages"], model)
    if kwargs.get("tools"):
        prompt += count_tokens(json.dumps(kwargs["tools"]), model)
    return Usage(prompt, completion, 0, estimated=True)


class CallbackFailed(Exception):
    """The caller's ``on_text`` raised: carried through the retry layer untouched (it is the
    caller's error, not the endpoint's) and re-raised as the original exception."""


def _refuses_stream_options(exc: BaseException) -> bool:
    """True for a 400/422 answer that names ``stream_options`` (older compatible servers)."""
    status = getattr(exc, "status_code", None)
    return status in (400, 422) and "stream_options" in str(getattr(exc, "message", "") or exc)


@dataclass
class _Received:
    """What one attempt received (kept across the attempt, so a retry knows whether text was shown)."""

    text: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, str]] = field(default_factory=dict)
    finish: str | None = None
    usage: Usage | None = None
    model: str = ""
    request_id: str | None = None
    shown: bool = False
    stopped: bool = False
    keys: dict[int, int] = field(default_factory=dict)  # the delta's index -> the slot it fills now


async def _hand_on(on_text: OnText, delta: str) -> bool:
    try:
        return await on_text(delta)
    except Exception as exc:
        raise CallbackFailed() from exc


def _slot(got: _Received, tc: Any) -> dict[str, str]:
    """The tool call a streamed tool-call delta belongs to. Calls are told apart by ``index``, except
    that a delta bringing a new ``id`` for an index whose call already has one opens a new call:
    Ollama's compatible API sends index 0 for every parallel call."""
    index = tc.index if isinstance(getattr(tc, "index", None), int) else -1
    key = got.keys.get(index)
    if key is None or (tc.id and got.calls[key]["id"] and got.calls[key]["id"] != tc.id):
        key = len(got.calls)
        got.keys[index] = key
    return got.calls.setdefault(key, {"id": "", "name": "", "arguments": ""})


async def _consume(stream: Any, got: _Received, on_text: OnText) -> None:
    """Read an SDK ``AsyncStream`` (or the plain completion a non-streaming server sent) into ``got``,
    handing text to ``on_text``; closes the response when done or stopped."""
    response = getattr(stream, "response", None)
    if response is not None:
        got.request_id = response.headers.get("x-request-id")
    try:
        ctype = (response.headers.get("content-type") or "") if response is not None else "text/event-stream"
        if response is not None and not ctype.startswith("text/event-stream"):
            completion = ChatCompletion.model_validate(json.loads(await response.aread()))
            if not completion.choices:
                raise ValueError("a completion without choices")
            choice = completion.choices[0]
            got.model = completion.model or got.model
            got.usage = usage_of(completion.usage) if completion.usage else None
            got.finish = choice.finish_reason
            for i, tc in enumerate(choice.message.tool_calls or []):
                function = getattr(tc, "function", None)
                if function is not None:
                    got.calls[i] = {"id": tc.id, "name": function.name, "arguments": function.arguments or ""}
            if choice.message.content:
                got.text.append(choice.message.content)
                got.shown = True
                await _hand_on(on_text, choice.message.content)  # the whole text is here: nothing to stop
            return
        async for chunk in stream:
            got.model = getattr(chunk, "model", None) or got.model
            if getattr(chunk, "usage", None):
                got.usage = usage_of(chunk.usage)
            for choice in chunk.choices or []:
                delta = choice.delta
                if delta is not None and delta.content:
                    got.text.append(delta.content)
                    got.shown = True
                    if not await _hand_on(on_text, delta.content):
                        got.stopped = True
                        return
                for tc in (delta.tool_calls if delta is not None else None) or []:
                    slot = _slot(got, tc)
                    if tc.id:
                        slot["id"] = tc.id
                    if tc.function is not None:
                        slot["name"] += tc.function.name or ""
                        slot["arguments"] += tc.function.arguments or ""
                if choice.finish_reason:
                    got.finish = choice.finish_reason
    finally:  # a broken connection mid-stream: the SDK raises APIConnectionError / APITimeoutError
        close = getattr(stream, "close", None)
        if close is not None:
            try:
                await close()
            except Exception:  # closing a broken connection must not hide the reason it broke
                log.debug("closing a stream failed", exc_info=True)


async def streamed_chat(client: LLMClient, kwargs: dict[str, Any], on_text: OnText, *,
                        deadline_s: float) -> ChatResult:
    """One streamed completion of ``kwargs`` (the client's request body, without ``stream``) with
    ``on_text`` receiving the text (see the module docstring). ``deadline_s``: the whole call's time
    limit, seconds, retries and the stream included.

    Returns the ``ChatResult`` (its ``finish_reason`` is None when ``on_text`` stopped the stream).
    Raises the ``LLMError`` subclasses of ``LLMClient.chat``; ``ContentRefused`` for a stream the
    content filter ended.
    """
    got = _Received(model=kwargs["model"])

    async def send() -> None:
        nonlocal got
        if got.shown:  # never reached: text shown makes a failure final (see ``retryable``)
            raise E.ServiceUnavailable("stream failed after text was shown")
        got = _Received(model=kwargs["model"])
        body = {**kwargs, "stream": True}
        if client.stream_usage:
            body["stream_options"] = {"include_usage": True}
        try:
            stream = await client.post_completion(body, stream=True)
        except openai.APIStatusError as exc:
            if not (client.stream_usage and _refuses_stream_options(exc)):
                raise
            log.warning("the endpoint refuses stream_options: usage of streamed replies will be estimated")
            client.stream_usage = False
            body.pop("stream_options")
            stream = await client.post_completion(body, stream=True)
        await _consume(stream, got, on_text)

    def retryable(exc: BaseException) -> bool:
        return not got.shown and is_transient(exc)

    try:
        _, attempts, started = await client.retrying(send, deadline_s=deadline_s,
                                                     estimate=client.estimate_tokens(kwargs), retryable=retryable)
    except CallbackFailed as exc:
        raise exc.__cause__ or exc from None
    except E.LLMError as exc:
        if got.shown:  # the endpoint bills what it wrote: keep the call for the usage ledger and budgets
            text = "".join(got.text)
            calls = tuple(ToolCall(c["id"], c["name"], c["arguments"]) for _, c in sorted(got.calls.items()))
            model = got.model or kwargs["model"]
            exc.partial = client.finish(text, calls, None, got.usage or estimated_usage(kwargs, text, calls, model),
                                        model, time.perf_counter(), got.request_id, exc.attempts)
        raise
    if got.finish == "content_filter":
        raise E.ContentRefused("reply stopped by the content filter", request_id=got.request_id, attempts=attempts)
    text = "".join(got.text)
    calls = tuple(ToolCall(c["id"], c["name"], c["arguments"]) for _, c in sorted(got.calls.items()))
    usage = got.usage
    if usage is None:  # no usage chunk: the endpoint sends none, or the caller stopped the stream first
        usage = estimated_usage(kwargs, text, calls, got.model or kwargs["model"])
    return client.finish(text, calls, None if got.stopped else got.finish, usage, got.model or kwargs["model"],
                         started, got.request_id, attempts)
