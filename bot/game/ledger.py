"""The usage ledger: daily token budgets before a model call, usage rows after it.

Budgets are tokens per UTC day, for the server and for each player whose actions a turn answers
(0 = unlimited); they are checked before a message is accepted and again before a turn calls the
model. Every model call is recorded (tokens, cached tokens, US dollars) with its purpose (turn, retry,
summary, moderation), split across the players it served, for ``/usage`` and for the budgets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Literal

from bot.game.configs import ServerConfigs
from bot.game.errors import GUILD_BUDGET_MESSAGE, PLAYER_BUDGET_MESSAGE, BudgetExhausted
from bot.llm.types import ChatResult, ModerationResult
from bot.models import Campaign, UsageReport
from bot.store import Store

log = logging.getLogger(__name__)

Purpose = Literal["turn", "retry", "summary", "moderation"]


class UsageLedger:
    """Budgets and usage rows.

    Args:
        store: where usage rows are kept.
        configs: the servers' effective options (budgets).
    """

    def __init__(self, store: Store, configs: ServerConfigs) -> None:
        self.store = store
        self.configs = configs

    async def check_budget(self, guild_id: int | None, player_ids: Sequence[int]) -> None:
        """Raise ``BudgetExhausted`` when the server's or a player's daily token budget (tokens per
        UTC day, 0 = unlimited) is spent. Reads the database only when a budget is set."""
        config = await self.configs.get(guild_id)
        if config.guild_daily_token_budget:
            used = await self.store.usage.tokens_today(guild_id)
            if used >= config.guild_daily_token_budget:
                raise BudgetExhausted(player_message=GUILD_BUDGET_MESSAGE)
        if config.player_daily_token_budget:
            for pid in dict.fromkeys(player_ids):
                if await self.store.usage.tokens_today(guild_id, pid) >= config.player_daily_token_budget:
                    raise BudgetExhausted(player_message=PLAYER_BUDGET_MESSAGE)

    async def record(self, campaign: Campaign | None, player_ids: Sequence[int], purpose: Purpose,
                     calls: Sequence[ChatResult | ModerationResult]) -> None:
        """Store each call's tokens and US dollars (a moderation call: 0 tokens, and 0 dollars unless
        its model is priced). A database problem is logged, never raised (the reply is already out)."""
        for result in calls:
            try:
                await self.store.usage.record(
                    guild_id=campaign.guild_id if campaign else None,
                    campaign_id=campaign.id if campaign else None, player_ids=player_ids, purpose=purpose,
                    model=result.model or "unknown", prompt_tokens=result.usage.prompt_tokens,
                    completion_tokens=result.usage.completion_tokens,
                    cached_prompt_tokens=result.usage.cached_prompt_tokens, cost_usd=result.cost_usd,
                    estimated=result.usage.estimated)
            except Exception:
                log.exception("recording model usage failed")

    async def report(self, guild_id: int | None, campaign: Campaign | None) -> UsageReport:
        """Model usage of the server and of ``campaign`` (if any), today (UTC) and all time."""
        return await self.store.usage.report(guild_id, campaign.id if campaign else None,
                                             campaign.title if campaign else None, at=time.time())
