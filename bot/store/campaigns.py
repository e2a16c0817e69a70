"""Campaigns: at most one live (active or paused) campaign per channel."""

from __future__ import annotations

import time
from typing import Any

from bot.models import Campaign, CampaignStatus
from bot.store.db import Database, IntegrityError
from bot.store.errors import CampaignExists

_COLUMNS = "id, guild_id, channel_id, title, setting, tone, status, created_by, created_at, turn"


def _row(row: Any) -> Campaign:
    return Campaign(id=row["id"], guild_id=row["guild_id"], channel_id=row["channel_id"],
                    title=row["title"], setting=row["setting"], tone=row["tone"],
                    status=row["status"], created_by=row["created_by"],
                    created_at=row["created_at"], turn=row["turn"])


class CampaignStore:
    """Named queries on the ``campaigns`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, *, guild_id: int | None, channel_id: int, title: str, setting: str,
                     tone: str, created_by: int) -> Campaign:
        """Start a campaign in a channel.

        Raises:
            CampaignExists: the channel already has an active or paused campaign.
        """
        now = time.time()
        try:
            new_id = await self.db.insert(
                "INSERT INTO campaigns (guild_id, channel_id, title, setting, tone, status, created_by,"
                " created_at) VALUES (?, ?, ?, ?, ?, 'active', ?, ?)",
                (guild_id, channel_id, title, setting, tone, created_by, now))
        except IntegrityError:
            raise CampaignExists(channel_id) from None
        return Campaign(int(new_id or 0), guild_id, channel_id, title, setting, tone, "active", created_by, now, 0)

    async def live_in_channel(self, channel_id: int) -> Campaign | None:
        """The active or paused campaign of a channel, or None."""
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM campaigns WHERE channel_id = ? AND status != 'ended'", (channel_id,))
        return _row(row) if row else None

    async def get(self, campaign_id: int) -> Campaign | None:
        """A campaign by id (any status), or None."""
        row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM campaigns WHERE id = ?", (campaign_id,))
        return _row(row) if row else None

    async def with_pending_actions(self) -> list[Campaign]:
        """Active campaigns that have stored player actions the DM has not answered yet (for restart)."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM campaigns c WHERE status = 'active' AND EXISTS ("
            " SELECT 1 FROM story_messages m WHERE m.campaign_id = c.id AND m.state = 'pending')")
        return [_row(r) for r in rows]

    async def set_status(self, campaign_id: int, status: CampaignStatus) -> None:
        """Set ``active``/``paused``/``ended`` (``ended`` also stamps ``ended_at``)."""
        await self.db.execute(
            "UPDATE campaigns SET status = ?, ended_at = CASE WHEN ? = 'ended' THEN ? ELSE ended_at END"
            " WHERE id = ?", (status, status, time.time(), campaign_id))
