"""Table safety tools, as tabletop groups use them: *lines* (content that never enters the story),
*veils* (content that may happen, but only off screen), set by the campaign's creator or an admin,
and the *X-card*: anyone, anonymously, takes the DM's last reply back and has it rewritten without
what bothered them. Lines and veils are rules of the system prompt; the X-card's use is counted for
the creator (never who used it) and leaves no trace in the channel but the rewritten reply.
"""

from __future__ import annotations

import logging
from typing import Literal

from bot.errors import UserInputError
from bot.game.api import Actor
from bot.game.campaign import require_manager
from bot.game.context import quote
from bot.game.options import text_option
from bot.game.pipeline import TurnPipeline
from bot.game.registry import SessionRegistry
from bot.models import TableSafety
from bot.store import Store

log = logging.getLogger(__name__)

TOPIC_MAX = 100  # characters of one line or veil
TOPICS_MAX = 20  # lines (or veils) per campaign
XCARD_NOTE = ("A player used the X-card on your last reply: something in it is not welcome at this table. "
              "Write the reply again, answering the same actions, and leave out {what}. Do not mention the "
              "X-card or that anything was changed.")

SafetyKind = Literal["lines", "veils"]


class SafetyCommands:
    """``/safety lines|veils add|remove|show`` and ``/xcard``.

    Args:
        store: where the safety settings are kept.
        registry: the loaded sessions.
        pipeline: regenerates the reply the X-card takes back.
    """

    def __init__(self, *, store: Store, registry: SessionRegistry, pipeline: TurnPipeline) -> None:
        self.store = store
        self.registry = registry
        self.pipeline = pipeline

    async def show(self, channel_id: int) -> TableSafety:
        """The campaign's lines, veils and X-card count. Raises ``NoCampaign``."""
        return (await self.registry.require(channel_id)).state.safety

    async def change(self, channel_id: int, actor: Actor, kind: SafetyKind, topic: str, *,
                     remove: bool = False) -> TableSafety:
        """Add (or ``remove``) a line or a veil; creator or admin only. Raises ``NotAllowed``,
        ``UserInputError`` (empty, too long, too many, not there) and ``NoCampaign``."""
        live = await self.registry.require(channel_id)
        session = live.state
        require_manager(session, actor, f"change the table's {kind}")
        clean = text_option(topic, kind[:-1], TOPIC_MAX)
        current = list(session.safety.lines if kind == "lines" else session.safety.veils)
        known = {t.casefold() for t in current}
        if remove:
            if clean.casefold() not in known:
                raise UserInputError(f"“{clean}” is not one of the table's {kind}.")
            current = [t for t in current if t.casefold() != clean.casefold()]
        else:
            if clean.casefold() in known:
                raise UserInputError(f"“{clean}” is already one of the table's {kind}.")
            if len(current) >= TOPICS_MAX:
                raise UserInputError(f"A campaign has at most {TOPICS_MAX} {kind}.")
            current.append(clean)
        async with session.lock:
            lines = current if kind == "lines" else list(session.safety.lines)
            veils = current if kind == "veils" else list(session.safety.veils)
            session.set_safety(await self.store.safety.set_topics(session.campaign.id, lines=lines, veils=veils))
        log.info("campaign %s: %s changed by %s", session.campaign.id, kind, actor.user_id)
        return session.safety

    async def xcard(self, channel_id: int, what: str = "") -> None:
        """Take the DM's last reply back and have it rewritten without ``what`` (optional, up to
        ``TOPIC_MAX`` characters; never stored); anyone may, and nobody is told who. The new reply
        is delivered as a retry. Raises ``NothingToUndo``, ``UserInputError`` and the run's
        ``BotError`` (the old reply then stays)."""
        live = await self.registry.require(channel_id)
        topic = text_option(what, "what", TOPIC_MAX, allow_empty=True) if what else ""
        await self.store.safety.count_xcard(live.state.campaign.id)
        live.state.set_safety(await self.store.safety.get(live.state.campaign.id))
        log.info("campaign %s: the X-card was used", live.state.campaign.id)  # never who
        flagged = f"this (a player's words): <<<{quote(topic)}>>>" if topic else "whatever might have caused it"
        await self.pipeline.retry(live, note=XCARD_NOTE.format(what=flagged))
