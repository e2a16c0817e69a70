"""In-process doubles for driving the game core without a network or real waiting: a scripted model
(``ModelPort``), a narrator that records replies, and ``settle`` to wait until the core has reacted.

Used by the unit tests; integration tests use
the real ``LLMClient`` against ``tests/support/fake_openai.py`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from bot.game.api import DMReply, TrackerView
from bot.game.memory import SUMMARY_MARKER
from bot.game.turns import ManualClock
from bot.llm.types import ChatResult, ToolCall, Usage
from bot.models import RollRecord

_ids = itertools.count(1)


def reply(text: str = "The DM nods.", *tool_calls: tuple[str, dict[str, Any] | str],
          prompt_tokens: int = 100, completion_tokens: int = 20, model: str = "gpt-4o-mini") -> ChatResult:
    """A ``ChatResult`` with ``text`` and tool calls given as ``(name, arguments)`` (a dict, sent as
    JSON, or raw text to simulate malformed JSON)."""
    calls = tuple(ToolCall(id=f"call_{next(_ids)}", name=name,
                           arguments=args if isinstance(args, str) else json.dumps(args))
                  for name, args in tool_calls)
    return ChatResult(text=text if not calls else "", tool_calls=calls,
                      finish_reason="tool_calls" if calls else "stop",
                      usage=Usage(prompt_tokens, completion_tokens, 0), cost_usd=0.0001, model=model)


@dataclass
class Held:
    """A scripted step that waits until ``release`` is set, then answers with ``result``."""

    result: ChatResult | Exception
    release: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Broken:
    """A scripted step that streams ``text`` (when the call streams) and then fails with ``error``:
    an endpoint that breaks mid-reply."""

    text: str
    error: Exception


Step = ChatResult | Exception | Held | Broken | Callable[[list[dict[str, Any]]], ChatResult | Exception]


@dataclass
class Request:
    """One recorded ``chat`` call: a deep-enough copy of the messages and the keyword arguments."""

    messages: list[dict[str, Any]]
    model: str | None
    temperature: float | None
    max_tokens: int | None
    tools: list[dict[str, Any]] | None

    @property
    def is_summary(self) -> bool:
        """True for a memory-fold request (its system message is the summariser's instructions)."""
        return str(self.messages[0].get("content", "")).startswith(SUMMARY_MARKER)


class ScriptedModel:
    """A ``ModelPort`` answering from a queue of steps, then from ``default(messages)``.

    Steps: a ``ChatResult``, an exception (raised), a ``Held`` step, or a callable
    ``messages -> ChatResult``. Summary requests can be answered separately by ``summarize``
    (default: a short fixed summary), so turn scripts are not consumed by background folds.
    """

    def __init__(self, default: Callable[[list[dict[str, Any]]], ChatResult] | None = None,
                 summarize: Callable[[list[dict[str, Any]]], ChatResult | Exception] | None = None) -> None:
        self.queue: deque[Step] = deque()
        self.default = default or (lambda messages: reply("The DM nods."))
        self.summarize = summarize or (lambda messages: reply("Earlier, the party explored and fought."))
        self.requests: list[Request] = []
        self.stream_piece = 7  # characters per streamed piece
        self.streamed: list[str] = []  # every piece handed to an ``on_text``, in order

    def push(self, *steps: Step) -> None:
        """Queue steps, each answering one turn request, in order."""
        self.queue.extend(steps)

    @property
    def turn_requests(self) -> list[Request]:
        """Requests that were not memory folds."""
        return [r for r in self.requests if not r.is_summary]

    @property
    def summary_requests(self) -> list[Request]:
        """Memory-fold requests."""
        return [r for r in self.requests if r.is_summary]

    async def chat(self, messages: list[dict[str, Any]], *, model: str | None = None,
                   temperature: float | None = None, max_tokens: int | None = None,
                   tools: list[dict[str, Any]] | None = None,
                   on_text: Callable[[str], Awaitable[bool]] | None = None) -> ChatResult:
        """Record the call and answer it from the script (see class docstring). With ``on_text``
        the answer's text is streamed in ``stream_piece``-character pieces (a ``Broken`` step
        streams its text, then raises); a False from ``on_text`` stops it, and the result then
        holds the text streamed so far."""
        request = Request([dict(m) for m in messages], model, temperature, max_tokens, tools)
        self.requests.append(request)
        await asyncio.sleep(0)
        if request.is_summary:
            step: Step = self.summarize
        else:
            step = self.queue.popleft() if self.queue else self.default
        if isinstance(step, Held):
            step.started.set()
            await step.release.wait()
            step = step.result
        if callable(step) and not isinstance(step, (ChatResult, Broken)):
            step = step(request.messages)
        if isinstance(step, Broken):
            if on_text is not None:
                await self._stream(step.text, on_text)
            raise step.error
        if isinstance(step, BaseException):
            raise step
        if on_text is not None and step.text:
            sent = await self._stream(step.text, on_text)
            if sent != step.text:
                return replace(step, text=sent, tool_calls=(), finish_reason=None)
        return step

    async def _stream(self, text: str, on_text: Callable[[str], Awaitable[bool]]) -> str:
        """Hand ``text`` to ``on_text`` in pieces; returns what was handed on before it said stop."""
        sent = ""
        for i in range(0, len(text), self.stream_piece):
            piece = text[i:i + self.stream_piece]
            sent += piece
            self.streamed.append(piece)
            if not await on_text(piece):
                break
            await asyncio.sleep(0)
        return sent


class RecordingStream:
    """A ``ReplyStream`` that records what it was shown: every ``show`` (text, rolls), then how it
    ended (``finished`` with the reply, or ``abandoned`` with the notice)."""

    def __init__(self, narrator: RecordingNarrator, head: DMReply) -> None:
        self.narrator = narrator
        self.head = head
        self.shows: list[tuple[str, tuple[RollRecord, ...]]] = []
        self.finished: DMReply | None = None
        self.abandoned: str | None = None

    @property
    def texts(self) -> list[str]:
        """The texts shown, in order."""
        return [text for text, _ in self.shows]

    async def show(self, text: str, rolls: tuple[RollRecord, ...] = ()) -> None:
        """Record the text and dice shown."""
        assert self.finished is None and self.abandoned is None, "shown after the stream ended"
        self.shows.append((text, rolls))
        self.narrator._changed.set()

    async def finish(self, reply: DMReply) -> None:
        """Record the final reply (it also counts as a delivered reply of the narrator)."""
        assert self.finished is None and self.abandoned is None, "the stream ended twice"
        self.finished = reply
        await self.narrator.deliver(reply)

    async def abandon(self, text: str) -> bool:
        """Record the notice that replaced the stream (it also counts as a notice of the narrator)."""
        assert self.finished is None and self.abandoned is None, "the stream ended twice"
        self.abandoned = text
        await self.narrator.deliver(DMReply(channel_id=self.head.channel_id, text=text, kind="notice"))
        return True


class RecordingNarrator:
    """A ``Narrator`` that records every reply and every tracker shown (``trackers``) and counts
    ``thinking`` entries; ``await wait_for(n)`` until ``n`` replies (or notices) arrived. With
    ``streaming`` it streams (``streams``: one ``RecordingStream`` per streamed reply); without, it
    says it cannot, and every reply comes whole through ``deliver``."""

    def __init__(self, streaming: bool = False) -> None:
        self.streaming = streaming
        self.streams: list[RecordingStream] = []
        self.replies: list[DMReply] = []
        self.thinking_entered = 0
        self.trackers: list[tuple[int, int, TrackerView]] = []
        self._changed = asyncio.Event()

    @property
    def turns(self) -> list[DMReply]:
        """Replies that are not notices (turn, retry, recovered)."""
        return [r for r in self.replies if r.kind != "notice"]

    @property
    def notices(self) -> list[DMReply]:
        """Notices to the table."""
        return [r for r in self.replies if r.kind == "notice"]

    async def deliver(self, reply: DMReply) -> None:
        """Record ``reply``."""
        self.replies.append(reply)
        self._changed.set()

    def stream(self, head: DMReply) -> RecordingStream | None:
        """A ``RecordingStream`` when ``streaming``, else None."""
        if not self.streaming:
            return None
        self.streams.append(RecordingStream(self, head))
        return self.streams[-1]

    async def show_tracker(self, channel_id: int, campaign_id: int, view: TrackerView) -> None:
        """Record the tracker shown, as ``(channel_id, campaign_id, view)``."""
        self.trackers.append((channel_id, campaign_id, view))
        self._changed.set()

    @contextlib.asynccontextmanager
    async def thinking(self, channel_id: int) -> AsyncIterator[None]:
        """Count the entry; do nothing else."""
        self.thinking_entered += 1
        yield

    async def wait_for(self, count: int, *, notices: bool = False, timeout: float = 10.0) -> None:
        """Wait (real time, at most ``timeout`` seconds) until ``count`` non-notice replies, or with
        ``notices`` that many notices, were delivered. Raises ``TimeoutError``."""
        async def wait() -> None:
            while len(self.notices if notices else self.turns) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)


async def settle(game: Any, clock: ManualClock | None = None, timeout: float = 5.0) -> None:
    """Wait (briefly, real time) until ``game`` has reacted to everything that is due at the
    clock's current time: no session running a turn or fold, none woken but not yet running, no
    clock waiter due. Raises ``TimeoutError`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    calm = 0
    while True:
        await asyncio.sleep(0)
        if all(live.quiet for live in game.registry.sessions.values()) and (clock is None or clock.due() == 0):
            calm += 1
            if calm >= 3:
                return
        else:
            calm = 0
            await asyncio.sleep(0.001)
        if loop.time() > end:
            raise TimeoutError("the game core did not settle")


async def advance(game: Any, clock: ManualClock, seconds: float) -> None:
    """Move ``clock`` forward by ``seconds`` and ``settle``."""
    clock.advance(seconds)
    await settle(game, clock)


async def until(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Wait (real time, at most ``timeout`` seconds) until ``predicate()`` is true, yielding to the
    event loop between looks. Raises ``TimeoutError`` naming ``what`` did not happen."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise TimeoutError(f"waited {timeout:g} s for {what}")
        await asyncio.sleep(0.001)
