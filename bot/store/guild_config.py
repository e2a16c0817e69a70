"""Per-server options (``/config``): admins' overrides on top of the process defaults."""

from __future__ import annotations

import json
import time
from typing import Any

from bot.config import Settings
from bot.models import GuildConfig
from bot.store.db import Database

_JSON_KEYS = ("allowed_channel_ids", "ignored_prefixes")
_BOOL_KEYS = ("show_monster_hp", "moderation", "average_monster_hp", "stream_replies")  # stored as 0/1


def default_guild_config(settings: Settings, guild_id: int = 0) -> GuildConfig:
    """The options a server starts with, taken from the process ``Settings``."""
    return GuildConfig(
        guild_id=guild_id, model=settings.dm_model, temperature=settings.dm_temperature,
        max_tokens=settings.dm_max_tokens, turn_mode=settings.turn_mode,
        turn_window_seconds=settings.turn_window_seconds, allowed_channel_ids=(),
        ignored_prefixes=tuple(settings.ignored_prefixes),
        guild_daily_token_budget=settings.guild_daily_token_budget,
        player_daily_token_budget=settings.player_daily_token_budget,
        dm_style=settings.dm_style, content_rating=settings.content_rating, stream_replies=settings.stream_replies,
        pace=settings.pace)


class GuildConfigStore:
    """Named queries on ``guild_config``. Values are validated by the caller (the game core)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def overrides(self, guild_id: int) -> dict[str, Any]:
        """The options an admin has set for a server (unset ones are absent)."""
        row = await self.db.fetchone("SELECT * FROM guild_config WHERE guild_id = ?", (guild_id,))
        if row is None:
            return {}
        out: dict[str, Any] = {}
        for key in GuildConfig.keys():
            value = row[key]
            if value is None:
                continue
            out[key] = tuple(json.loads(value)) if key in _JSON_KEYS else bool(value) if key in _BOOL_KEYS else value
        return out

    async def effective(self, guild_id: int, defaults: GuildConfig) -> GuildConfig:
        """``defaults`` with the server's overrides applied."""
        from dataclasses import replace

        return replace(defaults, guild_id=guild_id).with_overrides(await self.overrides(guild_id))

    async def set(self, guild_id: int, key: str, value: Any, *, updated_by: int | None = None) -> None:
        """Set one option (``None`` resets it to the default).

        Raises:
            KeyError: ``key`` is not an option name.
        """
        if key not in GuildConfig.keys():
            raise KeyError(key)
        stored = json.dumps(list(value)) if key in _JSON_KEYS and value is not None else value
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO guild_config (guild_id, updated_at, updated_by) VALUES (?, ?, ?)"
                " ON CONFLICT (guild_id) DO UPDATE SET updated_at = excluded.updated_at,"
                " updated_by = excluded.updated_by", (guild_id, time.time(), updated_by))
            await conn.execute(f"UPDATE guild_config SET {key} = ? WHERE guild_id = ?", (stored, guild_id))
