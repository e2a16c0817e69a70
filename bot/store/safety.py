"""A campaign's table safety settings: lines, veils and the X-card count (no user ids are kept)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from bot.models import TableSafety
from bot.store.db import Database


class SafetyStore:
    """Named queries on ``campaign_safety``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, campaign_id: int) -> TableSafety:
        """The campaign's lines, veils and X-card count (empty when never set)."""
        row = await self.db.fetchone("SELECT lines, veils, xcard_uses FROM campaign_safety WHERE campaign_id = ?",
                                     (campaign_id,))
        if row is None:
            return TableSafety()
        return TableSafety(tuple(json.loads(row["lines"])), tuple(json.loads(row["veils"])), int(row["xcard_uses"]))

    async def set_topics(self, campaign_id: int, *, lines: Sequence[str], veils: Sequence[str]) -> TableSafety:
        """Replace the lines and veils."""
        await self.db.execute(
            "INSERT INTO campaign_safety (campaign_id, lines, veils, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (campaign_id) DO UPDATE SET lines = excluded.lines, veils = excluded.veils,"
            " updated_at = excluded.updated_at",
            (campaign_id, json.dumps(list(lines), ensure_ascii=False), json.dumps(list(veils), ensure_ascii=False),
             time.time()))
        return await self.get(campaign_id)

    async def count_xcard(self, campaign_id: int) -> None:
        """Count one use of the X-card."""
        await self.db.execute(
            "INSERT INTO campaign_safety (campaign_id, xcard_uses, updated_at) VALUES (?, 1, ?)"
            " ON CONFLICT (campaign_id) DO UPDATE SET xcard_uses = xcard_uses + 1, updated_at = excluded.updated_at",
            (campaign_id, time.time()))
