"""A streamed chat completion: text as it arrives, then the whole ``ChatResult`` (``LLMClient.stream_chat``).

One attempt (a stream cannot be retried once text was shown), inside the client's concurrency
limiter and the call's deadline; the SDK's errors become the bot's typed ``LLMError``s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import openai

from bot.llm import errors as E
from bot.llm.failures import to_typed
from bot.llm.types import ChatResult, ToolCall, Usage

if TYPE_CHECKING:
    from bot.llm.client import LLMClient


def usage_of(u: Any) -> Usage:
    """The bot's ``Usage`` (tokens) from an SDK usage object (None: zeros)."""
    if u is None:
        return Usage()
    details = getattr(u, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or 0
    return Usage(int(u.prompt_tokens or 0), int(u.completion_tokens or 0), int(cached))


class ChatStream:
    """Async iterator of text deltas; after it is exhausted ``result`` holds the ``ChatResult``."""

    def __init__(self, client: LLMClient, kwargs: dict[str, Any], model: str, deadline_s: float) -> None:
        self._client = client
        self._kwargs = kwargs
        self._model = model
        self._deadline_s = deadline_s
        self.result: ChatResult | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        return self._run()

    async def _run(self) -> AsyncIterator[str]:
        client = self._client
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._deadline_s):
                async with client.limiter.slot(client.estimate_tokens(self._kwargs)):
                    stream = await client.post_completion(
                        {**self._kwargs, "stream": True, "stream_options": {"include_usage": True}}, stream=True)
                    text: list[str] = []
                    calls: dict[int, dict[str, str]] = {}
                    finish: str | None = None
                    usage = Usage()
                    model = self._model
                    response = getattr(stream, "response", None)
                    request_id = response.headers.get("x-request-id") if response is not None else None
                    async for chunk in stream:
                        model = getattr(chunk, "model", None) or model
                        if getattr(chunk, "usage", None):
                            usage = usage_of(chunk.usage)
                        for choice in chunk.choices or []:
                            delta = choice.delta
                            if delta is not None and delta.content:
                                text.append(delta.content)
                                yield delta.content
                            for tc in (delta.tool_calls if delta is not None else None) or []:
                                slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                                if tc.id:
                                    slot["id"] = tc.id
                                if tc.function is not None:
                                    slot["name"] += tc.function.name or ""
                                    slot["arguments"] += tc.function.arguments or ""
                            if choice.finish_reason:
                                finish = choice.finish_reason
        except TimeoutError:
            raise E.RequestTimedOut("stream passed its deadline") from None
        except openai.OpenAIError as exc:
            raise to_typed(exc, 1) from None
        if finish == "content_filter":
            raise E.ContentRefused("reply stopped by the content filter", request_id=request_id)
        tool_calls = tuple(ToolCall(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items()))
        self.result = client.finish("".join(text), tool_calls, finish, usage, model, started, request_id, 1)
