"""The turn worker: ONE task per channel that waits for the table's actions and answers them.

The worker parks until the intake wakes it, waits for the turn to close (``GameSession.turn_ready``:
the table's pace: a short window at a live table, at once in "mention" mode, a round that waits for
every active character or its deadline at a play-by-post table, posting the round's reminder when
due; in a fight, as soon as the player whose character's turn it is has acted), snapshots the pending
actions and hands them to the turn pipeline as one turn. Turns of a channel therefore never
interleave; different channels run concurrently. Actions that arrive while the DM is replying go
into the next turn. Actions left by a previous process (``recovering``) are answered at once.

The worker survives every exception: a failed turn's actions are marked stalled (they wait for a new
action or a resume instead of looping on the same error) and the table gets a kind notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from bot.game.api import ReplyKind
from bot.game.errors import FAILED_TURN_NOTICE
from bot.game.session import GameSession
from bot.game.turns import Clock
from bot.models import StoryMessage

log = logging.getLogger(__name__)

PlayTurn = Callable[[list[StoryMessage], ReplyKind], Awaitable[bool]]
"""``(actions, kind) -> answered``: the pipeline's answer to one turn; False leaves them pending."""
Notify = Callable[[int, str], Awaitable[None]]
"""``(channel id, text)``: tell a channel something as the DM (a notice)."""


class Rounds(Protocol):
    """The round bookkeeping the worker calls (``bot.game.pacing.PaceService``)."""

    async def remind_if_due(self, session: GameSession) -> bool:
        """Post the round's reminder if it is due."""
        ...

    async def round_closing(self, session: GameSession) -> None:
        """The DM starts answering the round."""
        ...


class TurnWorker:
    """The worker task of one session.

    Args:
        session: the channel's state.
        clock: time source for the collection window.
        play: the turn pipeline's entry (``PlayTurn``).
        notify: how to tell the table that a turn failed unexpectedly (``Notify``).
        rounds: the round bookkeeping (``Rounds``; None: rounds are never stored or reminded).
    """

    def __init__(self, session: GameSession, clock: Clock, play: PlayTurn, notify: Notify,
                 rounds: Rounds | None = None) -> None:
        self.session = session
        self.rounds = rounds
        self.clock = clock
        self.play = play
        self.notify = notify
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._parked = False

    def kick(self) -> None:
        """Tell the worker there may be work (starting it on first use)."""
        self.wake.set()
        if (self._task is None or self._task.done()) and not self.session.closed:
            self._task = asyncio.create_task(self._run(), name=f"session-{self.session.channel_id}")

    @property
    def parked(self) -> bool:
        """True when the worker is not running code: waiting for an action or for the window to close
        (or not started)."""
        return self._task is None or self._task.done() or self._parked

    @property
    def quiet(self) -> bool:
        """True when the worker is parked and no wake-up is pending."""
        return self.parked and not self.wake.is_set()

    async def _park(self, until: float | None) -> None:
        self._parked = True
        try:
            woke = True
            if until is None:
                await self.wake.wait()
            else:
                woke = await self.clock.wait(self.wake, until)
        finally:
            self._parked = False
        if woke:
            self.wake.clear()

    async def _run(self) -> None:
        session = self.session
        while not session.closed:
            if not session.has_work():
                await self._park(None)
                continue
            if not session.recovering and session.waits():
                while (not session.closed and session.campaign.status == "active"
                       and not session.turn_ready(self.clock.now(), self.clock.wall())):
                    if self.rounds is not None:
                        try:
                            await self.rounds.remind_if_due(session)
                        except Exception:  # a reminder that could not be posted must not stop the round
                            log.exception("round reminder in channel %s failed", session.channel_id)
                    await self._park(session.wake_at(self.clock.now(), self.clock.wall()))
                if session.closed or not session.has_work():
                    continue
            # An unopened window with work (resume after a pause, recovery) is answered at once.
            kind: ReplyKind = "recovered" if session.recovering else "turn"
            session.recovering = False
            actions = list(session.pending)
            session.collector.reset()
            session.answering = {a.id for a in actions}  # from here an edit or deletion changes nothing
            if self.rounds is not None:
                try:
                    await self.rounds.round_closing(session)
                except Exception:  # the stored round is cleared with the next one; answer anyway
                    log.exception("closing the round in channel %s failed", session.channel_id)
            try:
                answered = await self.play(actions, kind)
            except asyncio.CancelledError:
                raise
            except Exception:  # the worker must survive anything; the actions stay pending
                log.exception("turn in channel %s failed", session.channel_id)
                answered = False
                with contextlib.suppress(Exception):
                    await self.notify(session.channel_id, FAILED_TURN_NOTICE)
            session.answering = set()
            if not answered:
                session.stalled.update(a.id for a in actions)

    async def close(self, grace_s: float = 0.0) -> None:
        """Stop the task; a running turn gets up to ``grace_s`` seconds to finish first."""
        self.wake.set()
        task = self._task
        if task is None or task.done():
            return
        if grace_s > 0:
            await asyncio.wait({task}, timeout=grace_s)
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
