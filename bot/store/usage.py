"""Model usage: one row per model call (split across the players whose actions caused it), for
``/usage`` reports and daily token budgets. Days are UTC calendar dates."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Sequence
from typing import Any

from bot.models import UsageLine, UsageReport
from bot.store.db import Database


def utc_day(at: float | None = None) -> str:
    """The UTC date of a UNIX time (default now) as ``YYYY-MM-DD``."""
    return dt.datetime.fromtimestamp(time.time() if at is None else at, dt.UTC).date().isoformat()


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class UsageStore:
    """Named queries on ``model_usage``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, *, guild_id: int | None, campaign_id: int | None, player_ids: Sequence[int],
                     purpose: str, model: str, prompt_tokens: int, completion_tokens: int,
                     cached_prompt_tokens: int, cost_usd: float | None, at: float | None = None,
                     estimated: bool = False) -> None:
        """Record one model call. With several players, tokens and dollars are split evenly across
        them (remainders to the first), so per-player sums add up to the call; with none, one row
        without a player. ``estimated``: the tokens were counted by the bot (tiktoken), not reported
        by the endpoint."""
        now = time.time() if at is None else at
        day = utc_day(now)
        people: list[int | None] = list(dict.fromkeys(player_ids)) or [None]
        n = len(people)
        rows = zip(people, _split(prompt_tokens, n), _split(completion_tokens, n),
                   _split(cached_prompt_tokens, n), strict=True)
        call_id = uuid.uuid4().hex
        await self.db.executemany(
            "INSERT INTO model_usage (call_id, guild_id, campaign_id, player_id, purpose, model, prompt_tokens,"
            " completion_tokens, cached_prompt_tokens, cost_usd, day, created_at, estimated)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(call_id, guild_id, campaign_id, pid, purpose, model, p, c, k,
              None if cost_usd is None else cost_usd / n, day, now, int(estimated)) for pid, p, c, k in rows])

    async def tokens_today(self, guild_id: int | None, player_id: int | None = None,
                           at: float | None = None) -> int:
        """Tokens (prompt + completion) used today (UTC) by a server, or by one player in it."""
        day = utc_day(at)
        if player_id is None:
            row = await self.db.fetchone(
                "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM model_usage"
                " WHERE guild_id IS NOT DISTINCT FROM ? AND day = ?", (guild_id, day))
        else:
            row = await self.db.fetchone(
                "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM model_usage"
                " WHERE guild_id IS NOT DISTINCT FROM ? AND player_id = ? AND day = ?", (guild_id, player_id, day))
        return int(row[0]) if row else 0

    async def _lines(self, where: str, params: Sequence[Any]) -> tuple[UsageLine, ...]:
        rows = await self.db.fetchall(
            "SELECT model, COUNT(DISTINCT call_id) AS requests, SUM(prompt_tokens), SUM(completion_tokens),"
            " SUM(cached_prompt_tokens), SUM(cost_usd), SUM(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END),"
            " COUNT(DISTINCT CASE WHEN estimated = 1 THEN call_id END) FROM model_usage"
            f" WHERE {where} GROUP BY model ORDER BY model", params)
        return tuple(UsageLine(r[0], int(r[1]), int(r[2] or 0), int(r[3] or 0), int(r[4] or 0),
                               None if r[6] else float(r[5] or 0.0), int(r[7] or 0)) for r in rows)

    async def report(self, guild_id: int | None, campaign_id: int | None = None,
                     campaign_title: str | None = None, at: float | None = None) -> UsageReport:
        """Per-model usage of a server and (optionally) a campaign, today (UTC) and all time."""
        day = utc_day(at)
        guild_today = await self._lines("guild_id IS NOT DISTINCT FROM ? AND day = ?", (guild_id, day))
        guild_all = await self._lines("guild_id IS NOT DISTINCT FROM ?", (guild_id,))
        camp_today: tuple[UsageLine, ...] = ()
        camp_all: tuple[UsageLine, ...] = ()
        if campaign_id is not None:
            camp_today = await self._lines("campaign_id = ? AND day = ?", (campaign_id, day))
            camp_all = await self._lines("campaign_id = ?", (campaign_id,))
        return UsageReport(guild_today, guild_all, camp_today, camp_all, campaign_title)
