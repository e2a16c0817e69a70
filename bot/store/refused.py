"""Refused player messages (``refused_messages``): what moderation kept from the DM, stored so it is
never silently lost, and never part of the story (the model never sees these rows)."""

from __future__ import annotations

import time
from typing import Any

from bot.models import RefusedMessage
from bot.store.db import Database

_COLUMNS = "id, campaign_id, author_id, author_name, content, reason, created_at"


def _row(row: Any) -> RefusedMessage:
    return RefusedMessage(id=row["id"], campaign_id=row["campaign_id"], author_id=row["author_id"],
                          author_name=row["author_name"], content=row["content"], reason=row["reason"],
                          created_at=row["created_at"])


class RefusedStore:
    """Named queries on ``refused_messages``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, *, campaign_id: int, author_id: int, author_name: str, content: str, reason: str,
                  created_at: float | None = None) -> RefusedMessage:
        """Store one refused message (committed) and return it; ``created_at`` UNIX seconds (default now)."""
        at = time.time() if created_at is None else created_at
        new_id = await self.db.insert(
            "INSERT INTO refused_messages (campaign_id, author_id, author_name, content, reason, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)", (campaign_id, author_id, author_name, content, reason, at))
        return RefusedMessage(int(new_id or 0), campaign_id, author_id, author_name, content, reason, at)

    async def for_campaign(self, campaign_id: int, limit: int = 100) -> list[RefusedMessage]:
        """The campaign's refused messages, oldest first (at most ``limit``, the newest ones)."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM (SELECT {_COLUMNS} FROM refused_messages WHERE campaign_id = ?"
            " ORDER BY id DESC LIMIT ?) AS newest ORDER BY id", (campaign_id, limit))
        return [_row(r) for r in rows]
