"""Plain data the model client returns. No behaviour, no I/O: shared by the client and the game core."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one model call, as reported by the endpoint (tokens).

    ``cached_prompt_tokens`` is the part of ``prompt_tokens`` served from the endpoint's prompt cache
    (OpenAI's ``usage.prompt_tokens_details.cached_tokens``; 0 where the endpoint does not say).
    ``estimated``: counted locally by tiktoken because the endpoint reported none (a stream without a
    usage chunk, or one stopped early).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call the model asked for. ``arguments`` is the raw JSON text the model wrote (it may be
    malformed: the caller parses it and reports errors back to the model)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ChatResult:
    """The outcome of one chat call.

    Attributes:
        text: the assistant's text ("" when it only called tools).
        tool_calls: tool calls requested, in order.
        finish_reason: "stop", "length", "tool_calls", "content_filter" or None if unknown.
        usage: token usage (tokens).
        cost_usd: price of the call in US dollars, or None when the model has no known price.
        model: the model name the endpoint reported (or the one asked for).
        latency_s: wall time of the successful attempt, seconds.
        request_id: the endpoint's ``x-request-id``, if any.
        attempts: how many HTTP attempts the call took (1 = no retry).
    """

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = "stop"
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = None
    model: str = ""
    latency_s: float = 0.0
    request_id: str | None = None
    attempts: int = 1

    def assistant_message(self) -> dict[str, Any]:
        """This reply as an OpenAI chat message dict, to append to the conversation before tool results."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        return message


@dataclass(frozen=True, slots=True)
class TextModeration:
    """The moderation endpoint's answer for one text.

    Attributes:
        flagged: the endpoint's own overall verdict (any category over its own threshold).
        categories: the endpoint's own per-category verdicts, by OpenAI's category names
            (``"sexual"``, ``"sexual/minors"``, ``"violence/graphic"``, ...).
        scores: per-category confidence, 0.0 .. 1.0, same names.
    """

    flagged: bool
    categories: dict[str, bool] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModerationResult:
    """The outcome of one moderation call: one ``TextModeration`` per text sent, in order.

    Attributes:
        results: per text, in the order given.
        model: the moderation model the endpoint reported (or the one asked for).
        usage: tokens (the moderation endpoint reports none: zeros).
        cost_usd: US dollars; 0.0 unless the price table prices the model (OpenAI's is free).
        latency_s: wall time of the successful attempt, seconds.
        request_id: the endpoint's ``x-request-id``, if any.
        attempts: HTTP attempts the call took (1 = no retry).
    """

    results: tuple[TextModeration, ...]
    model: str = ""
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = 0.0
    latency_s: float = 0.0
    request_id: str | None = None
    attempts: int = 1

    @property
    def flagged(self) -> bool:
        """True when the endpoint flagged any of the texts."""
        return any(r.flagged for r in self.results)
