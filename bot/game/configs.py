"""The servers' effective options (``/config``), cached per server.

Each server's options are the process defaults (``Settings``) with its admins' overrides on top;
they are read from the store once and kept until an admin changes one (``forget``).
"""

from __future__ import annotations

from bot.models import GuildConfig
from bot.store import Store


class ServerConfigs:
    """Cache of ``GuildConfig`` per server.

    Args:
        store: where admins' overrides are kept.
        defaults: the process defaults (``bot.store.default_guild_config``).
    """

    def __init__(self, store: Store, defaults: GuildConfig) -> None:
        self.store = store
        self.defaults = defaults
        self._cache: dict[int, GuildConfig] = {}

    async def get(self, guild_id: int | None) -> GuildConfig:
        """The effective options of a server (``None``, a DM or the terminal: the defaults)."""
        if guild_id is None:
            return self.defaults
        cached = self._cache.get(guild_id)
        if cached is None:
            cached = await self.store.guild_config.effective(guild_id, self.defaults)
            self._cache[guild_id] = cached
        return cached

    def forget(self, guild_id: int) -> None:
        """Drop the cached options of a server (an admin changed one)."""
        self._cache.pop(guild_id, None)
