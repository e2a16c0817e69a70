"""Counts of the output guard's interventions, per campaign and rule (no text is kept)."""

from __future__ import annotations

from collections.abc import Iterable

from bot.store.db import Database


class GuardStore:
    """Named queries on ``guard_interventions``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def bump(self, campaign_id: int, rules: Iterable[str]) -> None:
        """Count one intervention of each of ``rules`` (one transaction)."""
        names = list(rules)
        if not names:
            return
        await self.db.executemany(
            "INSERT INTO guard_interventions (campaign_id, rule, count) VALUES (?, ?, 1)"
            " ON CONFLICT (campaign_id, rule) DO UPDATE SET count = count + 1",
            [(campaign_id, name) for name in names])

    async def counts(self, campaign_id: int) -> dict[str, int]:
        """Rule -> interventions so far, for the campaign."""
        rows = await self.db.fetchall("SELECT rule, count FROM guard_interventions WHERE campaign_id = ? ORDER BY rule",
                                      (campaign_id,))
        return {str(r["rule"]): int(r["count"]) for r in rows}
