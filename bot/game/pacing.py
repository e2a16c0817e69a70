"""The table pace at work (rules: ``bot.game.pace``): opening and closing rounds in the store,
the reminder, ``/campaign pace``, ``/campaign reminders``, ``/away`` and the pace part of
``/campaign status``.

A round is stored when it opens (``campaign_pace.round_*``, UNIX seconds) and cleared when the DM
starts answering it, so a restarted bot resumes an open round with the same deadline; who has acted
is the stored pending actions. The reminder is posted once per round, naming characters without
mentions; a player who asked for pings (``/campaign reminders ping:on``) is mentioned, and only
they (Discord's allowed mentions).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bot.errors import UserInputError
from bot.game.api import Actor, ChannelRef, DMReply
from bot.game.campaign import require_manager
from bot.game.errors import NotInParty
from bot.game.pace import (
    RECENT_MESSAGES,
    ROUND_DEADLINE_MAX_SECONDS,
    ROUND_DEADLINE_MIN_SECONDS,
    describe_gap,
    is_say,
    reminder_text,
)
from bot.game.registry import SessionRegistry
from bot.game.session import GameSession
from bot.game.turns import Clock
from bot.models import PaceSetting, PaceSettings, PaceStatus, Round, StoryMessage
from bot.store import Store

log = logging.getLogger(__name__)

Deliver = Callable[[DMReply], Awaitable[None]]
"""How a table message reaches the channel (the narrator's ``deliver``)."""


class PaceService:
    """Rounds, reminders and the pace commands of every session.

    Args:
        store: where pace settings, rounds and players' choices are kept.
        registry: the loaded sessions.
        clock: ``wall()`` for rounds (UNIX seconds).
        deliver: posts the reminder (``DMReply(kind="notice")``, with ``ping_user_ids``).
    """

    def __init__(self, *, store: Store, registry: SessionRegistry, clock: Clock, deliver: Deliver) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock
        self.deliver = deliver

    async def load(self, session: GameSession) -> None:
        """Fill a freshly loaded session's pace from the store. A round left open by a previous
        process is resumed (its actions wait for the round instead of being answered at once)."""
        settings, open_round, players = await self.store.pace.load(session.campaign.id)
        pace = session.pace
        pace.settings, pace.round, pace.players = settings, open_round, players
        for at, author in await self.store.pace.recent_messages(session.campaign.id, RECENT_MESSAGES):
            pace.note_message(at, author)
        if open_round is not None and not session.pending:  # its actions were withdrawn or answered
            await self.round_closing(session)
        elif session.pending and session.rounds():
            if open_round is None:  # stored while the bot shut down, or the round's write failed
                first = min(min(p.created_at for p in session.pending), self.clock.wall())
                pace.round = Round(first, first + pace.deadline_s())
                await self.store.pace.open_round(session.campaign.id, pace.round)
            session.recovering = False  # the round goes on where it was (answered at once if it is over)

    # --- the intake's and the worker's hooks --------------------------------------------------------
    async def on_message(self, session: GameSession, stored: StoryMessage) -> None:
        """A player message was queued: its stored time is evidence for ``auto``; an action (not only
        speech) brings its player back from ``/away``; under rounds the first message opens the round
        (stored, from the clock's ``wall()`` now). A change of ``auto`` to live drops an open round."""
        pace = session.pace
        author_id = stored.author_id
        if author_id is None:
            return
        # memory first, with no await in between: the worker never sees the action without its round
        pace.note_message(self.clock.wall(), author_id)  # when it reached the bot: the table's pace as played
        player = pace.players.get(author_id)
        back = player is not None and player.away and not is_say(stored.content)
        if player is not None and back:
            player.away = False
        opened = None
        if session.rounds() and pace.round is None:
            at = self.clock.wall()
            opened = pace.round = Round(at, at + pace.deadline_s())
        try:
            if back:
                await self.store.pace.set_player(session.campaign.id, author_id, away=False)
            if opened is not None:
                await self.store.pace.open_round(session.campaign.id, opened)
            elif not session.rounds() and pace.round is not None:
                await self.round_closing(session)
        except Exception:  # the action is stored and the round runs in memory; a restart answers it
            log.exception("storing the pace of campaign %s failed", session.campaign.id)

    async def remind_if_due(self, session: GameSession) -> bool:
        """Post the round's reminder when it is due and someone is waited for. Returns True if posted."""
        r = session.pace.round
        wall = self.clock.wall()
        if r is None or r.reminded or not session.rounds() or wall < session.reminder_at():
            return False
        waiting = session.waiting_for()
        r.reminded = True  # due: posted now, or never this round when nobody is waited for
        if not waiting:
            return False
        pings = tuple(c.player_id for c in waiting if session.pace.player(c.player_id).ping)
        fight = session.encounter is not None and session.encounter.active is not None
        text = reminder_text(waiting, r.deadline_at - wall, fight=fight)
        if pings:
            text += "\n" + " ".join(f"<@{i}>" for i in pings)
        await self.store.pace.reminded(session.campaign.id, wall)
        await self.deliver(DMReply(channel_id=session.channel_id, text=text, kind="notice",
                                   campaign_id=session.campaign.id, ping_user_ids=pings))
        return True

    async def round_closing(self, session: GameSession) -> None:
        """The DM starts answering (or the round lost its last action): the round is over, cleared in
        memory and in the store."""
        r = session.pace.round
        if r is not None:
            session.pace.round = None
            await self.store.pace.close_round(session.campaign.id, r.opened_at)

    async def joined(self, session: GameSession, player_id: int) -> None:
        """A character joined: it counts as active from this turn."""
        session.pace.player(player_id).joined_turn = session.campaign.turn
        await self.store.pace.set_player(session.campaign.id, player_id, joined_turn=session.campaign.turn)

    # --- commands ----------------------------------------------------------------------------------
    async def set_pace(self, where: ChannelRef, actor: Actor, *, pace: str | None = None,
                       deadline_hours: float | None = None, reminder_share: float | None = None) -> PaceStatus:
        """``/campaign pace``: the campaign's pace (``auto``/``live``/``rounds``; ``default``: the
        server's), its round deadline (hours, 1/60 to 168) and when the reminder comes (a share of the
        deadline, 0 = never, up to 0.95). Arguments left None stay as they are. The creator or an
        admin only. Raises ``NotAllowed``, ``UserInputError``, ``NoCampaign``."""
        live = await self.registry.require(where.channel_id)
        session = live.state
        require_manager(session, actor, "change the table's pace")
        current = session.pace.settings
        new_pace: PaceSetting | None = current.pace
        if pace is not None:
            choice = pace.strip().lower()
            if choice not in ("auto", "live", "rounds", "default"):
                raise UserInputError("The pace is `auto`, `live`, `rounds` or `default` (the server's).")
            new_pace = None if choice == "default" else choice  # type: ignore[assignment]
        deadline = current.round_deadline_s
        if deadline_hours is not None:
            seconds = float(deadline_hours) * 3600
            if not ROUND_DEADLINE_MIN_SECONDS <= seconds <= ROUND_DEADLINE_MAX_SECONDS:  # also refuses NaN
                raise UserInputError("A round's deadline is from one minute (0.017 hours) to 168 hours (a week).")
            deadline = seconds
        share = current.reminder_share
        if reminder_share is not None:
            if not 0 <= float(reminder_share) <= 0.95:
                raise UserInputError("The reminder comes at a share of the deadline from 0 (never) to 0.95.")
            share = float(reminder_share)
        async with session.lock:  # one change at a time, never in the middle of a turn
            settings = PaceSettings(new_pace if pace is not None else session.pace.settings.pace,
                                    deadline if deadline_hours is not None else session.pace.settings.round_deadline_s,
                                    share if reminder_share is not None else session.pace.settings.reminder_share)
            await self.store.pace.set_settings(session.campaign.id, settings)
            session.pace.settings = settings
            waiting = [p for p in session.pending if p.id not in session.answering]
            if not session.rounds() and session.pace.round is not None:
                await self.round_closing(session)  # now live: the window decides
            elif session.rounds() and session.pace.round is None and waiting:
                now = self.clock.wall()  # the waiting actions' round opens now, as a new message's would
                session.pace.round = Round(now, now + session.pace.deadline_s())
                await self.store.pace.open_round(session.campaign.id, session.pace.round)
            elif session.pace.round is not None and deadline_hours is not None:
                r = session.pace.round
                r.deadline_at = r.opened_at + session.pace.deadline_s()
                await self.store.pace.set_deadline(session.campaign.id, r.deadline_at)
        live.worker.kick()  # the worker looks at the new rule at once
        return self.status(session)

    async def away(self, where: ChannelRef, actor: Actor) -> bool:
        """``/away``: the DM stops (or starts again) waiting for the actor's character in rounds.
        Returns True when the player is now away. Posting an action brings them back too. Raises
        ``NotInParty``, ``NoCampaign``."""
        live = await self.registry.require(where.channel_id)
        session = live.state
        if session.character_of(actor.user_id) is None:
            raise NotInParty()
        player = session.pace.player(actor.user_id)
        player.away = not player.away
        await self.store.pace.set_player(session.campaign.id, actor.user_id, away=player.away)
        live.worker.kick()  # the round may now be complete
        return player.away

    async def reminders(self, where: ChannelRef, actor: Actor, *, ping: bool) -> bool:
        """``/campaign reminders``: whether round reminders mention the actor (a ping) or only name
        their character (the default). Returns the new choice. Raises ``NotInParty``, ``NoCampaign``."""
        session = (await self.registry.require(where.channel_id)).state
        if session.character_of(actor.user_id) is None:
            raise NotInParty()
        session.pace.player(actor.user_id).ping = ping
        await self.store.pace.set_player(session.campaign.id, actor.user_id, ping=ping)
        return ping

    def status(self, session: GameSession) -> PaceStatus:
        """The pace part of ``/campaign status`` (and of terminal play's status)."""
        pace = session.pace
        gap = pace.median_gap()
        configured = pace.configured()
        if session.config.turn_mode == "mention":
            reason = "the server answers mentions only (`turn_mode mention`): each one at once"
        elif configured != "auto":
            reason = ("set for this campaign" if pace.settings.pace else "the server's default")
        elif gap is None:
            reason = "live until the table's pace shows (a few posts from different players)"
        else:
            reason = f"players post about {describe_gap(gap)} apart"
        r = pace.round if session.rounds() else None
        away = tuple(c.name for c in session.party if pace.players.get(c.player_id) and pace.player(c.player_id).away)
        return PaceStatus(
            configured=configured, mode="rounds" if session.rounds() else "live", reason=reason,
            deadline_s=r.deadline_at - r.opened_at if r else pace.deadline_s(), reminder_share=pace.settings.share,
            round_opened_at=r.opened_at if r else None, round_deadline_at=r.deadline_at if r else None,
            waiting_for=tuple(c.name for c in session.waiting_for()), away=away)
