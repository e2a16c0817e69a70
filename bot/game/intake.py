"""The intake: a channel message on its way to becoming a stored, pending action.

In order: the filters (other bots, OOC, command prefixes, mention mode, too long: ``bot.game.filters``),
the channel's live campaign, duplicate deliveries, the daily budget, moderation (when the server turned
it on: a flagged message is stored in ``refused_messages``, never as an action, and its author gets a
private sentence), then the queue limit and the player's burst gate, then the action is STORED
(committed) before anything else can fail, and the channel's worker is woken. Refusals are an
``Intake`` with a sentence for the author; nothing here raises for the message itself (database
errors propagate).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.config import Settings
from bot.game.api import IncomingMessage, Intake, IntakeReason
from bot.game.configs import ServerConfigs
from bot.game.errors import NO_CAMPAIGN_MESSAGE, PAUSED_MESSAGE, QUEUE_FULL_MESSAGE, BudgetExhausted, cooldown_message
from bot.game.filters import classify
from bot.game.ledger import UsageLedger
from bot.game.moderation import MODERATED_INPUT_MESSAGE, Moderator
from bot.game.ports import TokenCounter
from bot.game.registry import SessionRegistry
from bot.game.rules import PLAYER_NAME_MAX
from bot.game.turns import Clock
from bot.models import Campaign, GuildConfig
from bot.store import Store

if TYPE_CHECKING:
    from bot.game.pacing import PaceService

PLAYER_BURST = 3  # actions one player may send within player_cooldown_seconds before being refused


class ActionIntake:
    """Turns ``IncomingMessage``s into pending actions.

    Args:
        store: where actions are stored.
        registry: the loaded sessions.
        configs: the servers' options (filters).
        ledger: the daily budgets.
        settings: ``max_input_chars``, ``channel_queue_limit``, ``player_cooldown_seconds`` (seconds).
        clock: time source for the burst gate and the collection window.
        count: the token counter (each action is counted once, when stored).
        moderator: checks messages when the server's ``moderation`` option is on (None: never).
        pace: the table pace's bookkeeping (``bot.game.pacing.PaceService``): evidence for ``auto``,
            a player back from ``/away``, the round a first message opens (None: none of that).
    """

    def __init__(self, *, store: Store, registry: SessionRegistry, configs: ServerConfigs, ledger: UsageLedger,
                 settings: Settings, clock: Clock, count: TokenCounter, moderator: Moderator | None = None,
                 pace: PaceService | None = None) -> None:
        self.moderator = moderator
        self.pace = pace
        self.store = store
        self.registry = registry
        self.configs = configs
        self.ledger = ledger
        self.settings = settings
        self.clock = clock
        self.count = count

    async def handle(self, msg: IncomingMessage) -> Intake:
        """Filter, store (commit) and queue ``msg``; see ``GameAPI.handle_message``."""
        config = await self.configs.get(msg.guild_id)
        verdict = classify(msg, config, max_input_chars=self.settings.max_input_chars)
        if verdict.status == "ignored":
            return Intake("ignored", verdict.reason)
        if verdict.status == "refused":
            return Intake("refused", verdict.reason, verdict.message)
        live = await self.registry.get(msg.channel_id)
        if live is None and self.registry.closing:
            return await self._store_for_the_next_start(msg)
        if live is None:
            if msg.explicit_action:
                return Intake("refused", "no_campaign", NO_CAMPAIGN_MESSAGE)
            return Intake("ignored", "no_campaign")
        session = live.state
        if session.campaign.status != "active":
            if msg.explicit_action:
                return Intake("refused", "paused", PAUSED_MESSAGE)
            return Intake("ignored", "paused")
        if msg.message_id is not None and not session.remember_message_id(msg.message_id):
            return Intake("ignored", "duplicate")
        try:
            await self.ledger.check_budget(msg.guild_id, [msg.author_id])
        except BudgetExhausted as exc:
            return Intake("refused", "budget", exc.player_message)
        refused = await self._moderate(msg, session.config, session.campaign, session.safety.lines)
        if refused is not None:
            return refused
        # No await from here to the store call: the queue slot and the cooldown entry are taken in one
        # step, so a burst of messages handled concurrently cannot all slip past the limits.
        if len(session.pending) + session.storing >= self.settings.channel_queue_limit:
            return Intake("refused", "queue_full", QUEUE_FULL_MESSAGE)
        now = self.clock.now()
        cooldown = self.settings.player_cooldown_seconds
        recent = session.recent_actions.get(msg.author_id)
        if cooldown and recent is not None and len(recent) == PLAYER_BURST and now - recent[0] < cooldown:
            return Intake("refused", "cooldown", cooldown_message(cooldown - (now - recent[0])))
        if cooldown:
            if recent is None:
                recent = session.recent_actions[msg.author_id] = deque(maxlen=PLAYER_BURST)
            recent.append(now)
        character = session.character_of(msg.author_id)
        text = msg.content.strip()
        session.storing += 1
        try:
            stored, new = await self.store.story.add_action(
                campaign_id=session.campaign.id, turn=session.campaign.turn + 1, author_id=msg.author_id,
                author_name=msg.author_name[:PLAYER_NAME_MAX], character_name=character.name if character else None,
                content=text, token_count=self.count(text, session.config.model),
                platform_message_id=msg.message_id,
                created_at=msg.created_at if msg.created_at is not None else self.clock.wall())
        finally:
            session.storing -= 1
        if not new:
            return Intake("ignored", "duplicate", story_message_id=stored.id)
        if msg.message_id is not None and msg.message_id in session.early:  # edited or deleted on its way here
            early = session.early.pop(msg.message_id)
            if early is None:
                await self.store.story.withdraw_pending(session.campaign.id, msg.message_id)
                return Intake("ignored", "withdrawn", story_message_id=stored.id)
            edited_text = early.content.strip()
            if 0 < len(edited_text) <= self.settings.max_input_chars:
                stored = await self.store.story.edit_pending(
                    session.campaign.id, msg.message_id, edited_text,
                    self.count(edited_text, session.config.model)) or stored
        if not self.registry.is_current(live):
            return Intake("queued", "action", story_message_id=stored.id)  # ended meanwhile: stored only
        session.last_active = now
        session.pending.append(stored)
        session.collector.add(now, msg.author_id)
        try:
            if self.pace is not None:
                await self.pace.on_message(session, stored)
        finally:
            live.worker.kick()
        return Intake("queued", "action", story_message_id=stored.id)

    async def edit(self, msg: IncomingMessage) -> Intake:
        """A player edited ``msg.message_id``: while it is a pending action the DM has not started to
        answer, its text becomes ``msg.content`` (the same filters as a new message: an edit into
        chatter or OOC withdraws it, one too long or flagged keeps the old text and says why); the first
        text stays in the store. Otherwise nothing changes ("answered": ``/undo`` is for that)."""
        if msg.message_id is None:
            return Intake("ignored", "empty")
        live = await self.registry.get(msg.channel_id)
        if live is None:
            return Intake("ignored", "no_campaign")
        session = live.state
        action = next((a for a in session.pending if a.platform_message_id == msg.message_id), None)
        if action is None and session.storing and msg.message_id in session.recent_message_ids():
            session.early[msg.message_id] = msg  # still being stored: the intake applies it once it is
            return Intake("queued", "action")
        if action is None or action.id in session.answering or action.author_id != msg.author_id:
            return Intake("ignored", "answered")
        verdict = classify(msg, session.config, max_input_chars=self.settings.max_input_chars)
        if verdict.status == "ignored":
            return await self.withdraw(msg.channel_id, msg.message_id)
        if verdict.status == "refused":
            return Intake("refused", verdict.reason, verdict.message)
        refused = await self._moderate(msg, session.config, session.campaign, session.safety.lines)
        if refused is not None:
            await self.withdraw(msg.channel_id, msg.message_id)
            return refused
        text = msg.content.strip()
        edited = await self.store.story.edit_pending(session.campaign.id, msg.message_id, text,
                                                     self.count(text, session.config.model))
        if edited is None or action.id in session.answering:  # answered meanwhile: the DM has read it
            return Intake("ignored", "answered")
        session.pending = [edited if a.id == action.id else a for a in session.pending]
        live.worker.kick()  # speech edited into an action may complete a round
        return Intake("queued", "action", story_message_id=edited.id)

    async def withdraw(self, channel_id: int, message_id: int) -> Intake:
        """A player deleted ``message_id``: a pending action the DM has not started to answer is
        withdrawn (kept in the store as undone, never answered); otherwise nothing changes."""
        live = await self.registry.get(channel_id)
        if live is None:
            return Intake("ignored", "no_campaign")
        session = live.state
        action = next((a for a in session.pending if a.platform_message_id == message_id), None)
        if action is None and session.storing and message_id in session.recent_message_ids():
            session.early[message_id] = None  # still being stored: the intake withdraws it once it is
            return Intake("ignored", "withdrawn")
        if action is None or action.id in session.answering:
            return Intake("ignored", "answered")
        if await self.store.story.withdraw_pending(session.campaign.id, message_id) is None:
            return Intake("ignored", "answered")
        session.pending = [a for a in session.pending if a.id != action.id]
        if not session.pending and self.pace is not None:
            await self.pace.round_closing(session)  # a round with no action left is no round
        live.worker.kick()
        return Intake("ignored", "withdrawn", story_message_id=action.id)

    async def _store_for_the_next_start(self, msg: IncomingMessage) -> Intake:
        """The process is shutting down and loads no session: store the action as pending (it is
        answered as a recovered turn after the restart), or ignore it as usual without a campaign."""
        campaign = await self.store.campaigns.live_in_channel(msg.channel_id)
        if campaign is None or campaign.status != "active":
            reason: IntakeReason = "no_campaign" if campaign is None else "paused"
            return Intake("ignored", reason)
        config = await self.configs.get(campaign.guild_id)
        refused = await self._moderate(msg, config, campaign)
        if refused is not None:
            return refused
        character = await self.store.characters.for_player(campaign.id, msg.author_id)
        text = msg.content.strip()
        stored, new = await self.store.story.add_action(
            campaign_id=campaign.id, turn=campaign.turn + 1, author_id=msg.author_id,
            author_name=msg.author_name[:PLAYER_NAME_MAX], character_name=character.name if character else None,
            content=text, token_count=self.count(text, config.model), platform_message_id=msg.message_id,
            created_at=msg.created_at)
        return Intake("queued" if new else "ignored", "action" if new else "duplicate", story_message_id=stored.id)

    async def _moderate(self, msg: IncomingMessage, config: GuildConfig, campaign: Campaign,
                        lines: Sequence[str] = ()) -> Intake | None:
        """Moderate ``msg`` (when the server's option is on): None to go on, or the refused ``Intake``
        of a flagged message, which is stored in ``refused_messages`` first (committed) and never
        becomes an action. The option comes from the server's config alone (an admin's
        ``/config set``); nothing in the message can change it."""
        if self.moderator is None or not config.moderation:
            return None
        text = msg.content.strip()
        verdict = await self.moderator.check_input(config, campaign, text, author_id=msg.author_id, lines=lines)
        if verdict.allowed:
            return None
        await self.store.refused.add(campaign_id=campaign.id, author_id=msg.author_id,
                                     author_name=msg.author_name[:PLAYER_NAME_MAX], content=text,
                                     reason="moderated", created_at=msg.created_at)
        return Intake("refused", "moderated", MODERATED_INPUT_MESSAGE)
