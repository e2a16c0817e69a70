"""Admin commands: ``/config show|set``, ``/usage`` and the owner-only ``/admin sync``.

Admin commands are hidden from members without Manage Server (``default_permissions``) AND checked
when run (``checks.has_permissions``), because server owners can override command visibility in
Server Settings → Integrations. The game core checks ``Actor.is_admin`` a third time.
"""

from __future__ import annotations

import logging
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import DungeonMasterBot, respond
from bot.errors import BotError
from bot.models import GuildConfig
from cogs._common import actor_of, config_embed, usage_embed, where_of

log = logging.getLogger(__name__)

CONFIG_KEYS = [app_commands.Choice(name=k, value=k) for k in GuildConfig.keys()]


class AdminCog(commands.Cog):
    """Per-server configuration, usage reports and command sync."""

    config = app_commands.Group(name="config", description="Dungeon Master settings for this server",
                                guild_only=True, default_permissions=discord.Permissions(manage_guild=True))
    admin = app_commands.Group(name="admin", description="Bot owner tools",
                               default_permissions=discord.Permissions(administrator=True))

    def __init__(self, bot: DungeonMasterBot) -> None:
        self.bot = bot

    @config.command(name="show")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def config_show(self, interaction: discord.Interaction) -> None:
        """Show this server's Dungeon Master settings."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.guild_id is not None
        config = await self.bot.game.get_config(interaction.guild_id)
        await respond(interaction, embed=config_embed(config), ephemeral=True)

    @config.command(name="set")
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.describe(key="The setting to change", value="New value (`default` resets it)")
    @app_commands.choices(key=CONFIG_KEYS)
    async def config_set(self, interaction: discord.Interaction, key: app_commands.Choice[str],
                         value: app_commands.Range[str, 1, 500]) -> None:
        """Change one setting for this server."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.guild_id is not None
        config = await self.bot.game.set_config(interaction.guild_id, actor_of(interaction), key.value, value)
        shown = getattr(config, key.value)
        await respond(interaction, f"✅ `{key.value}` is now `{shown}`.", ephemeral=True)

    @app_commands.command(name="usage")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def usage(self, interaction: discord.Interaction) -> None:
        """Tokens and US dollars spent on the model, for this server and this channel's campaign."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        report = await self.bot.game.usage(where_of(interaction))
        await respond(interaction, embed=usage_embed(report), ephemeral=True)

    @admin.command(name="sync")
    @app_commands.describe(scope="Where to sync: this server (instant) or global (up to an hour)")
    async def sync(self, interaction: discord.Interaction,
                   scope: Literal["here", "global"] = "here") -> None:
        """Sync slash commands (bot owner only)."""
        if not await self.bot.is_owner(interaction.user):
            raise BotError(player_message="Only the bot's owner can sync commands.")
        await interaction.response.defer(ephemeral=True, thinking=True)
        if scope == "global":
            synced = await self.bot.tree.sync()
        else:
            if interaction.guild is None:
                raise BotError(player_message="Use scope `global` outside a server.")
            self.bot.tree.copy_global_to(guild=interaction.guild)
            synced = await self.bot.tree.sync(guild=interaction.guild)
        log.info("owner %s synced %d commands (%s)", interaction.user.id, len(synced), scope)
        await respond(interaction, f"Synced {len(synced)} commands ({scope}).", ephemeral=True)


async def setup(bot: DungeonMasterBot) -> None:
    await bot.add_cog(AdminCog(bot))
