"""Group turns: collect the table's actions for a short window, then answer them in ONE reply.

The first action opens a window of ``window`` seconds; each further action pushes the close to at least
``extend`` seconds after it, but never past ``max_window`` seconds after the first; the window closes
early once every party member has acted, and, while a fight runs and it is a player character's turn
in the initiative order, as soon as that character's player has acted (the "spotlight"; others'
actions before it still join the turn). ``TurnCollector`` is pure logic over times passed in, so tests
drive it with plain numbers.

``Clock`` is how the session reads the time and waits for a window to close: ``MonotonicClock`` in
production, ``ManualClock`` in tests and replays, where time only moves when the test calls
``advance``/``set`` (no real sleeping, fully deterministic).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from typing import Any, Protocol


class Clock(Protocol):
    """Time source (seconds, monotonic) and a way to wait for an event or a deadline."""

    def now(self) -> float:
        """The current time, seconds (any fixed origin)."""
        ...

    def wall(self) -> float:
        """The current UNIX time, seconds (for what outlives the process: a round's deadline)."""
        ...

    async def wait(self, event: asyncio.Event, until: float) -> bool:
        """Wait until ``event`` is set (returns True) or the clock reaches ``until`` seconds (False).
        Always suspends at least once, so a caller looping on it never starves the event loop."""
        ...


class MonotonicClock:
    """The real clock: ``time.monotonic`` seconds."""

    def now(self) -> float:
        """``time.monotonic()`` seconds."""
        return time.monotonic()

    def wall(self) -> float:
        """``time.time()`` seconds."""
        return time.time()

    async def wait(self, event: asyncio.Event, until: float) -> bool:
        """See ``Clock.wait``."""
        delay = until - time.monotonic()
        if event.is_set() or delay <= 0:
            await asyncio.sleep(0)
            return event.is_set()
        try:
            await asyncio.wait_for(event.wait(), delay)
            return True
        except TimeoutError:
            return event.is_set()


class ManualClock:
    """A clock that only moves when told to: for tests and compressed replays.

    ``wait`` registers a waiter that wakes when its event is set or when ``advance``/``set`` moves the
    time to or past its deadline. ``due()`` says how many waiters are due but have not resumed yet,
    so a test can tell "the session has reacted to the new time" from "not yet".

    Args:
        start: the initial time, seconds.
        wall_origin: the UNIX time (seconds) that time 0 stands for (``wall()``); default
            2026-01-01 00:00 UTC.
    """

    def __init__(self, start: float = 0.0, wall_origin: float = 1_767_225_600.0) -> None:
        self._now = float(start)
        self.wall_origin = wall_origin
        self._waiters: dict[asyncio.Future[None], float] = {}

    def now(self) -> float:
        """The current (manual) time, seconds."""
        return self._now

    def wall(self) -> float:
        """``wall_origin`` + the current (manual) time, UNIX seconds."""
        return self.wall_origin + self._now

    def set(self, t: float) -> None:
        """Move the time to ``t`` seconds (never backwards) and wake waiters whose deadline passed."""
        self._now = max(self._now, float(t))
        for fut, until in self._waiters.items():
            if until <= self._now and not fut.done():
                fut.set_result(None)

    def advance(self, seconds: float) -> None:
        """Move the time forward by ``seconds``."""
        self.set(self._now + max(0.0, seconds))

    def due(self) -> int:
        """Waiters whose deadline has passed but which have not resumed yet."""
        return sum(1 for until in self._waiters.values() if until <= self._now)

    def next_deadline(self) -> float | None:
        """The earliest deadline anyone waits for, or None."""
        return min(self._waiters.values(), default=None)

    async def wait(self, event: asyncio.Event, until: float) -> bool:
        """See ``Clock.wait``."""
        if event.is_set() or until <= self._now:
            await asyncio.sleep(0)
            return event.is_set()
        loop = asyncio.get_running_loop()
        timer: asyncio.Future[None] = loop.create_future()
        self._waiters[timer] = until
        setter: asyncio.Future[bool] = asyncio.ensure_future(event.wait())
        try:
            waiting: set[asyncio.Future[Any]] = {timer, setter}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            return event.is_set()
        finally:
            self._waiters.pop(timer, None)
            setter.cancel()
            if not timer.done():
                timer.cancel()


class TurnCollector:
    """The collection window of one channel's next turn.

    Args:
        window: seconds after the first action before the turn closes (0: close at once).
        extend: each new action keeps the window open at least this many seconds after it.
        max_window: hard cap, seconds after the first action (raised to ``window`` if smaller).
    """

    __slots__ = ("actors", "deadline", "extend", "max_window", "opened_at", "window")

    def __init__(self, window: float, extend: float, max_window: float) -> None:
        self.window = window
        self.extend = extend
        self.max_window = max(max_window, window)
        self.opened_at: float | None = None
        self.deadline: float | None = None
        self.actors: set[int] = set()

    @property
    def is_open(self) -> bool:
        """True once an action opened the window (until ``reset``)."""
        return self.opened_at is not None

    def configure(self, window: float, extend: float, max_window: float) -> None:
        """Change the timings (an admin changed the server's options); an open window keeps its
        current deadline."""
        self.window = window
        self.extend = extend
        self.max_window = max(max_window, window)

    def add(self, now: float, author_id: int) -> None:
        """Record an action at time ``now`` (seconds) by ``author_id``."""
        if self.opened_at is None or self.deadline is None:
            self.opened_at = now
            self.deadline = now + self.window
        else:
            self.deadline = min(max(self.deadline, now + self.extend), self.opened_at + self.max_window)
        self.actors.add(author_id)

    def ready(self, now: float, party_ids: Collection[int] = (), spotlight: int | None = None) -> bool:
        """True when the turn should close: the deadline passed, every party member acted, or the
        ``spotlight`` player acted.

        ``party_ids``: user ids of the players who have a character (empty: no early close).
        ``spotlight``: the user id of the player whose character's turn it is in a running fight
        (None: outside combat, or a monster's turn).
        """
        if self.deadline is None:
            return False
        if now >= self.deadline:
            return True
        if spotlight is not None and spotlight in self.actors:
            return True
        return bool(party_ids) and self.actors.issuperset(party_ids)

    def reset(self) -> None:
        """Start over for the next turn (actions that arrive later open a new window)."""
        self.opened_at = self.deadline = None
        self.actors = set()
