"""The campaign journal's data: its links (only token hashes), and the bounded, paginated reads its
pages make (``bot.journal``). Every read names the campaign or server it is for, so a page can only
ever show the data its link was issued for."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Literal

from bot.models import RollRecord, StoryMessage
from bot.store.db import Database
from bot.store.story import _COLUMNS as STORY_COLUMNS
from bot.store.story import _row as story_row

LinkKind = Literal["campaign", "usage"]
PAGE_SIZE = 50  # story messages per transcript page
USAGE_DAYS = 30  # days on the usage chart


@dataclass(frozen=True, slots=True)
class JournalLink:
    """A live link: what it opens (a campaign, or a server's usage page)."""

    id: int
    kind: LinkKind
    campaign_id: int | None
    guild_id: int | None


@dataclass(frozen=True, slots=True)
class UsageDay:
    """One UTC day of a server's model usage: tokens and US dollars (None if anything was unpriced)."""

    day: str
    tokens: int
    cost_usd: float | None


@dataclass(frozen=True, slots=True)
class UsageGroup:
    """Usage by one model or purpose over the chart's days: calls, tokens, US dollars."""

    name: str
    calls: int
    tokens: int
    cost_usd: float | None


class JournalStore:
    """Named queries for the journal (``journal_links`` and bounded reads of the story and usage)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def issue(self, *, token_hash: str, kind: LinkKind, campaign_id: int | None, guild_id: int | None,
                    created_by: int) -> int:
        """Store a new link by its token's SHA-256 (hex); returns its id."""
        new_id = await self.db.insert(
            "INSERT INTO journal_links (token_hash, kind, campaign_id, guild_id, created_by, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)", (token_hash, kind, campaign_id, guild_id, created_by, time.time()))
        return int(new_id or 0)

    async def find(self, token_hash: str) -> tuple[str, JournalLink] | None:
        """The live (not revoked) link with this token hash, with the stored hash (for a constant-time
        comparison by the caller), or None."""
        row = await self.db.fetchone(
            "SELECT id, token_hash, kind, campaign_id, guild_id FROM journal_links"
            " WHERE token_hash = ? AND revoked_at IS NULL", (token_hash,))
        if row is None:
            return None
        return str(row["token_hash"]), JournalLink(int(row["id"]), row["kind"], row["campaign_id"], row["guild_id"])

    async def revoke(self, *, campaign_id: int | None = None, guild_id: int | None = None,
                     kind: LinkKind = "campaign") -> int:
        """Revoke every live link of a campaign (``kind="campaign"``) or a server's usage links.
        Returns how many."""
        if kind == "campaign":
            return await self.db.execute(
                "UPDATE journal_links SET revoked_at = ? WHERE kind = 'campaign' AND campaign_id = ?"
                " AND revoked_at IS NULL", (time.time(), campaign_id))
        return await self.db.execute(
            "UPDATE journal_links SET revoked_at = ? WHERE kind = 'usage' AND guild_id IS NOT DISTINCT FROM ?"
            " AND revoked_at IS NULL", (time.time(), guild_id))

    async def transcript_page(self, campaign_id: int, page: int, size: int = PAGE_SIZE
                              ) -> tuple[list[StoryMessage], int]:
        """Page ``page`` (1 = the newest) of the campaign's answered story, oldest first within the
        page, and how many pages there are (at least 1)."""
        total_row = await self.db.fetchone(
            "SELECT COUNT(*) FROM story_messages WHERE campaign_id = ? AND state = 'answered'", (campaign_id,))
        total = int(total_row[0]) if total_row else 0
        pages = max(1, -(-total // size))
        page = min(max(1, page), pages)
        rows = await self.db.fetchall(
            f"SELECT {STORY_COLUMNS} FROM story_messages WHERE campaign_id = ? AND state = 'answered'"
            " ORDER BY id DESC LIMIT ? OFFSET ?", (campaign_id, size, (page - 1) * size))
        return [story_row(r) for r in reversed(rows)], pages

    async def rolls_between(self, campaign_id: int, first_turn: int, last_turn: int) -> list[RollRecord]:
        """The campaign's dice rolls of turns ``first_turn..last_turn``, in order (at most 500)."""
        rows = await self.db.fetchall(
            "SELECT * FROM dice_rolls WHERE campaign_id = ? AND turn BETWEEN ? AND ? ORDER BY id LIMIT 500",
            (campaign_id, first_turn, last_turn))
        return [RollRecord(r["id"], r["campaign_id"], r["turn"], r["roller_id"], r["roller_name"],
                           r["character_name"], r["expression"], r["reason"], r["total"], r["breakdown"],
                           r["created_at"], bool(r["by_dm"])) for r in rows]

    async def usage_days(self, guild_id: int | None, *, days: int = USAGE_DAYS,
                         today: str | None = None) -> list[UsageDay]:
        """The server's tokens and US dollars per UTC day over the last ``days`` days, oldest first,
        one entry per day (zero on days without calls)."""
        end = dt.date.fromisoformat(today) if today else dt.datetime.now(dt.UTC).date()
        start = end - dt.timedelta(days=days - 1)
        rows = await self.db.fetchall(
            "SELECT day, SUM(prompt_tokens + completion_tokens), SUM(cost_usd),"
            " SUM(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END) FROM model_usage"
            " WHERE guild_id IS NOT DISTINCT FROM ? AND day BETWEEN ? AND ? GROUP BY day",
            (guild_id, start.isoformat(), end.isoformat()))
        found = {r[0]: UsageDay(r[0], int(r[1] or 0), None if r[3] else float(r[2] or 0.0)) for r in rows}
        out = []
        for i in range(days):
            day = (start + dt.timedelta(days=i)).isoformat()
            out.append(found.get(day, UsageDay(day, 0, 0.0)))
        return out

    async def usage_groups(self, guild_id: int | None, by: Literal["model", "purpose"], *,
                           days: int = USAGE_DAYS, today: str | None = None) -> list[UsageGroup]:
        """The server's usage over the last ``days`` days grouped by model or by purpose, most tokens first."""
        end = dt.date.fromisoformat(today) if today else dt.datetime.now(dt.UTC).date()
        start = end - dt.timedelta(days=days - 1)
        column = "model" if by == "model" else "purpose"
        rows = await self.db.fetchall(
            f"SELECT {column}, COUNT(DISTINCT call_id), SUM(prompt_tokens + completion_tokens), SUM(cost_usd),"
            " SUM(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END) FROM model_usage"
            f" WHERE guild_id IS NOT DISTINCT FROM ? AND day BETWEEN ? AND ? GROUP BY {column}"
            " ORDER BY 3 DESC LIMIT 50", (guild_id, start.isoformat(), end.isoformat()))
        return [UsageGroup(str(r[0]), int(r[1]), int(r[2] or 0), None if r[4] else float(r[3] or 0.0)) for r in rows]
