"""Group turns: collect the table's actions for a short window, then answer them in ONE reply.

The first action opens a window of ``window`` seconds; each further action pushes the close to at least
``extend`` seconds after it, but never past ``max_window`` seconds after the first; the window closes
early once every party member has acted. ``TurnCollector`` is pure logic over times passed in, so tests
drive it with plain numbers; ``Clock`` is what the session uses to wait (a fake in tests).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from typing import Protocol


class Clock(Protocol):
    """Time source (seconds, monotonic) and a way to wait for an event or a deadline."""

    def now(self) -> float: ...

    async def wait(self, event: asyncio.Event, until: float) -> bool:
        """Wait until ``event`` is set (True) or the clock reaches ``until`` (False)."""
        ...


class MonotonicClock:
    """The real clock: ``time.monotonic`` seconds."""

    def now(self) -> float:
        return time.monotonic()

    async def wait(self, event: asyncio.Event, until: float) -> bool:
        delay = until - time.monotonic()
        if event.is_set():
            return True
        if delay <= 0:
            return False
        try:
            await asyncio.wait_for(event.wait(), delay)
            return True
        except TimeoutError:
            return False


class TurnCollector:
    """The collection window of one channel's next turn.

    Args:
        window: seconds after the first action before the turn closes.
        extend: each new action keeps the window open at least this many seconds after it.
        max_window: hard cap, seconds after the first action.
    """

    def __init__(self, window: float, extend: float, max_window: float) -> None:
        self.window = window
        self.extend = extend
        self.max_window = max(max_window, window)
        self.opened_at: float | None = None
        self.deadline: float | None = None
        self.actors: set[int] = set()

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def add(self, now: float, author_id: int) -> None:
        """Record an action at time ``now`` (seconds) by ``author_id``."""
        if self.opened_at is None or self.deadline is None:
            self.opened_at = now
            self.deadline = now + self.window
        else:
            self.deadline = min(max(self.deadline, now + self.extend), self.opened_at + self.max_window)
        self.actors.add(author_id)

    def ready(self, now: float, party_ids: Collection[int] = ()) -> bool:
        """True when the turn should close: the deadline passed, or every party member acted."""
        if self.deadline is None:
            return False
        if now >= self.deadline:
            return True
        return bool(party_ids) and set(party_ids) <= self.actors

    def reset(self) -> None:
        """Start over for the next turn (actions that arrive later open a new window)."""
        self.opened_at = self.deadline = None
        self.actors = set()
