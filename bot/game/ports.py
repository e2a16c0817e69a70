"""What the game core needs from outside it, as protocols: the model, its moderation API and a token
counter.

``bot.llm.LLMClient`` satisfies ``ModelPort`` and ``ModerationPort``; ``bot.llm.tokens.count_tokens`` is the default
``TokenCounter``. Tests pass scripted doubles (tests/support/doubles.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from bot.llm.types import ChatResult, ModerationResult


class ModelPort(Protocol):
    """What the game needs of the model client.

    ``chat`` takes OpenAI chat messages and function-tool schemas and returns a ``ChatResult``; it
    raises ``bot.llm.errors.LLMError`` subclasses (all ``BotError``) for endpoint trouble. With
    ``on_text`` the reply is streamed: each piece of its text is awaited through ``on_text(delta)``
    as it arrives, and a False answer stops the stream (``bot.llm.stream``).
    """

    async def chat(self, messages: list[dict[str, Any]], *, model: str | None = None,
                   temperature: float | None = None, max_tokens: int | None = None,
                   tools: list[dict[str, Any]] | None = None,
                   on_text: Callable[[str], Awaitable[bool]] | None = None) -> ChatResult: ...


@runtime_checkable
class ModerationPort(Protocol):
    """The endpoint's moderation API (``bot.llm.LLMClient.moderate``): one ``TextModeration`` per
    text, in order. Raises ``ModerationUnavailable`` when the endpoint has none, other
    ``bot.llm.errors.LLMError`` subclasses for endpoint trouble. ``deadline_s``: seconds."""

    async def moderate(self, texts: list[str], *, model: str = ...,
                       deadline_s: float | None = None) -> ModerationResult: ...


TokenCounter = Callable[[str, str], int]
"""``(text, model name) -> tokens``."""


class LazyTokenCounter:
    """``bot.llm.tokens.count_tokens`` (tiktoken, offline), imported on the first count so that
    start-up does not pay for loading the encodings until a message needs counting."""

    def __init__(self) -> None:
        self._count: TokenCounter | None = None

    def __call__(self, text: str, model: str) -> int:
        """Tokens of ``text`` for ``model``."""
        if self._count is None:
            from bot.llm.tokens import count_tokens

            self._count = count_tokens
        return self._count(text, model)
