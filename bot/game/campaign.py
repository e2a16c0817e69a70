"""The campaign of a channel: starting, pausing, resuming and ending it; its status, recap and export.

Starting needs nothing but an allowed channel; pausing, resuming and ending need the campaign's
creator or a server admin (``require_manager``, also used by undo and retry).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from bot.errors import UserInputError
from bot.game import export, memory, rules
from bot.game.api import Actor, ChannelRef
from bot.game.configs import ServerConfigs
from bot.game.errors import CampaignNotActive, NotAllowed
from bot.game.options import text_option
from bot.game.registry import SessionRegistry
from bot.game.session import GameSession
from bot.models import Campaign, CampaignStatus, CampaignStatusReport
from bot.store import Store
from bot.store.errors import CampaignExists

log = logging.getLogger(__name__)


def require_manager(session: GameSession, actor: Actor, what: str) -> None:
    """Raise ``NotAllowed`` unless ``actor`` created the campaign or is an admin or the bot's owner.
    ``what`` completes "Only the campaign's creator or a server admin can ...". """
    if not (actor.is_admin or actor.is_owner or actor.user_id == session.campaign.created_by):
        raise NotAllowed(player_message=f"Only the campaign's creator or a server admin can {what}.")


class CampaignCommands:
    """``/campaign start|end|pause|resume|status|recap|export`` (``search``: ``bot.game.lorebook``).

    Args:
        store: where campaigns and the story are kept.
        registry: the loaded sessions.
        configs: the servers' options (allowed channels).
    """

    def __init__(self, *, store: Store, registry: SessionRegistry, configs: ServerConfigs) -> None:
        self.store = store
        self.registry = registry
        self.configs = configs

    async def start(self, where: ChannelRef, actor: Actor, *, title: str, setting: str = "",
                    tone: str = "") -> Campaign:
        """Start a campaign in a channel (lengths: ``rules.TITLE_MAX``, ``SETTING_MAX``, ``TONE_MAX``).
        Raises ``UserInputError`` if one is live there, the channel is not allowed, or a field is bad."""
        config = await self.configs.get(where.guild_id)
        if config.allowed_channel_ids and where.channel_id not in config.allowed_channel_ids:
            raise UserInputError("The DM doesn't play in this channel on this server "
                                 "(see /config show: allowed_channel_ids).")
        try:
            campaign = await self.store.campaigns.create(
                guild_id=where.guild_id, channel_id=where.channel_id,
                title=text_option(title, "title", rules.TITLE_MAX),
                setting=text_option(setting, "setting", rules.SETTING_MAX, allow_empty=True, multiline=True),
                tone=text_option(tone, "tone", rules.TONE_MAX, allow_empty=True), created_by=actor.user_id)
        except CampaignExists as exc:
            raise UserInputError("This channel already has a campaign. End it first with /campaign end.") from exc
        self.registry.campaign_started(where.channel_id)
        await self.registry.get(where.channel_id)
        log.info("campaign %s started in channel %s by %s", campaign.id, where.channel_id, actor.user_id)
        return campaign

    async def set_status(self, where: ChannelRef, actor: Actor, status: CampaignStatus) -> Campaign:
        """End, pause or resume (creator or admin). Raises ``NoCampaign``, ``NotAllowed`` or
        ``CampaignNotActive`` (pausing a paused campaign, resuming a running one)."""
        live = await self.registry.require(where.channel_id)
        session = live.state
        if status == "paused" and session.campaign.status == "paused":
            raise CampaignNotActive("The campaign is already paused.")
        if status == "active" and session.campaign.status == "active":
            raise CampaignNotActive("The campaign is already running.")
        what = {"ended": "end the campaign", "paused": "pause the campaign", "active": "resume the campaign"}
        require_manager(session, actor, what[status])
        async with session.lock:
            await self.store.campaigns.set_status(session.campaign.id, status)
            session.set_campaign(replace(session.campaign, status=status))
        if status == "ended":
            await self.registry.drop(live)
        elif status == "active":
            session.stalled.clear()
            live.worker.kick()
        else:
            live.worker.wake.set()
        return session.campaign

    async def status(self, where: ChannelRef) -> CampaignStatusReport:
        """The campaign, its party, counts and what is waiting. Raises ``NoCampaign``."""
        session = (await self.registry.require(where.channel_id)).state
        return CampaignStatusReport(
            campaign=session.campaign, party=tuple(session.party),
            story_messages=await self.store.story.count(session.campaign.id),
            pending_actions=len(session.pending),
            summary_tokens=session.summary.token_count if session.summary else 0, busy=session.busy,
            turn_mode=session.config.turn_mode, model=session.config.model,
            unsummarised_tokens=memory.unsummarised_tokens(session.history),
            guard_interventions=await self.store.guard.counts(session.campaign.id))

    async def recap(self, where: ChannelRef, chapter: int | None = None) -> str:
        """The story so far (Markdown, no model call): without ``chapter``, the chronicle's latest
        chapter (the running summary before the first one), the open quests the players know of and
        the latest turns; with ``chapter`` (1, 2, ...), that chapter only. Never shows a secret.
        Raises ``UserInputError`` for a chapter that does not exist, and ``NoCampaign``."""
        session = (await self.registry.require(where.channel_id)).state
        latest = await self.store.chapters.latest(session.campaign.id)
        count = latest[-1].number if latest else 0
        if chapter is None:
            return export.recap(session, chapter=latest[-1] if latest else None, chapters=count)
        found = await self.store.chapters.get(session.campaign.id, chapter)
        if found is None:
            raise UserInputError(f"The chronicle has chapters 1 to {count}; there is no chapter {chapter}."
                                 if count else "The chronicle has no chapters yet: the DM writes one each "
                                 "time it folds older story into its memory.")
        return export.recap(session, chapter=found, chapters=count, latest_turns=False)

    async def export_markdown(self, where: ChannelRef, actor: Actor | None = None, *,
                              include_secrets: bool = False) -> str:
        """The whole transcript as Markdown with the lorebook and the chronicle
        (``bot.game.export.export_markdown``). ``include_secrets`` (the creator's or an admin's
        export) lists the DM's secret entries too. Raises ``NotAllowed`` when ``include_secrets`` is
        asked by anyone else (or without an ``actor``), and ``NoCampaign``."""
        session = (await self.registry.require(where.channel_id)).state
        if include_secrets:
            if actor is None:
                raise NotAllowed(player_message="Only the campaign's creator or a server admin can export "
                                                "the DM's secrets.")
            require_manager(session, actor, "export the DM's secrets")
        messages = await self.store.story.transcript(session.campaign.id)
        chapters = await self.store.chapters.all(session.campaign.id)
        return export.export_markdown(session.campaign, session.party, messages, chapters=chapters,
                                      lore=session.lore, include_secrets=include_secrets)

