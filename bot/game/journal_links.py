"""``/campaign journal link|revoke`` and ``/config journal``: links to the read-only journal pages
(``bot.journal.server``). A link carries a random token of 192 bits (``secrets.token_urlsafe``); only
its SHA-256 is stored, so a link is shown once, to the one who asked, and revoking is the only way
to take it back."""

from __future__ import annotations

import secrets

from bot.config import Settings
from bot.errors import UserInputError
from bot.game.api import Actor
from bot.game.campaign import require_manager
from bot.game.errors import NotAllowed
from bot.game.registry import SessionRegistry
from bot.journal.server import token_hash
from bot.store import Store

JOURNAL_OFF = ("The journal is not set up on this bot: its operator sets JOURNAL_BASE_URL and JOURNAL_LISTEN "
               "(see the README) to serve it.")
TOKEN_BYTES = 24  # 192 bits of randomness per link


class JournalLinks:
    """Issues and revokes journal links.

    Args:
        store: where link hashes are kept.
        settings: ``journal_base_url`` (the links' prefix) and whether the journal is on.
        registry: the channel's campaign.
    """

    def __init__(self, store: Store, settings: Settings, registry: SessionRegistry) -> None:
        self.store = store
        self.settings = settings
        self.registry = registry

    def _base(self) -> str:
        if not self.settings.journal_enabled or not self.settings.journal_base_url:
            raise UserInputError(JOURNAL_OFF)
        return self.settings.journal_base_url

    async def campaign_link(self, channel_id: int, actor: Actor) -> str:
        """A new link to the channel's campaign journal for ``actor`` (show it to them only).
        Raises ``NoCampaign``, or ``UserInputError`` when the journal is off."""
        base = self._base()
        live = await self.registry.require(channel_id)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        campaign = live.state.campaign
        await self.store.journal.issue(token_hash=token_hash(token), kind="campaign", campaign_id=campaign.id,
                                       guild_id=campaign.guild_id, created_by=actor.user_id)
        return f"{base}/j/{token}"

    async def revoke(self, channel_id: int, actor: Actor) -> int:
        """Revoke every link to the channel's campaign journal (creator or admin); returns how many.
        Raises ``NoCampaign`` or ``NotAllowed``."""
        live = await self.registry.require(channel_id)
        require_manager(live.state, actor, "revoke the journal's links")
        return await self.store.journal.revoke(campaign_id=live.state.campaign.id)

    async def usage_link(self, guild_id: int, actor: Actor, *, revoke_old: bool = False) -> str:
        """A new link to the server's usage page (admins only); ``revoke_old`` revokes the server's
        earlier usage links first. Raises ``NotAllowed`` or ``UserInputError`` (journal off)."""
        base = self._base()
        if not (actor.is_admin or actor.is_owner):
            raise NotAllowed(player_message="Only a server admin can open the usage page.")
        if revoke_old:
            await self.store.journal.revoke(guild_id=guild_id, kind="usage")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        await self.store.journal.issue(token_hash=token_hash(token), kind="usage", campaign_id=None,
                                       guild_id=guild_id, created_by=actor.user_id)
        return f"{base}/u/{token}"
