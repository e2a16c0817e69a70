"""Admin commands: ``/config show|set``, ``/usage`` and the owner-only ``/admin sync``.

Admin commands are hidden from members without Manage Server (``default_permissions``) AND checked
when run (``checks.has_permissions``), because server owners can override command visibility in
Server Settings → Integrations. The game core checks ``Actor.is_admin`` a third time. ``/admin sync``
is hidden from non-administrators and checked by ``owner_only`` (an ``app_commands.check``).
"""

from __future__ import annotations

import logging
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import DungeonMasterBot, respond
from bot.errors import UserInputError
from bot.models import GuildConfig
from cogs._common import actor_of, config_embed, guild_id_of, owner_only, usage_embed, where_of

log = logging.getLogger(__name__)

CONFIG_KEYS = [app_commands.Choice(name=k, value=k) for k in GuildConfig.keys()]
OWNER_ONLY_SYNC = "Only the bot's owner can sync commands."


class AdminCog(commands.Cog):
    """Per-server configuration, usage reports and command sync."""

    config = app_commands.Group(name="config", description="Dungeon Master settings for this server",
                                guild_only=True, allowed_contexts=app_commands.AppCommandContext(guild=True),
                                default_permissions=discord.Permissions(manage_guild=True))
    admin = app_commands.Group(name="admin", description="Bot owner tools",
                               default_permissions=discord.Permissions(administrator=True))

    def __init__(self, bot: DungeonMasterBot) -> None:
        self.bot = bot

    @config.command(name="show")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def config_show(self, interaction: discord.Interaction) -> None:
        """Show this server's Dungeon Master settings."""
        guild_id = guild_id_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        config = await self.bot.game.get_config(guild_id)
        await respond(interaction, embed=config_embed(config), ephemeral=True)

    @config.command(name="set")
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.describe(key="The setting to change", value="New value (`default` resets it)")
    @app_commands.choices(key=CONFIG_KEYS)
    async def config_set(self, interaction: discord.Interaction, key: app_commands.Choice[str],
                         value: app_commands.Range[str, 1, 500]) -> None:
        """Change one setting for this server."""
        guild_id = guild_id_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        config = await self.bot.game.set_config(guild_id, actor_of(interaction), key.value, value)
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

    @config.command(name="journal")
    @app_commands.describe(revoke_old="Make the earlier usage-page links stop working")
    async def journal(self, interaction: discord.Interaction, revoke_old: bool = False) -> None:
        """Get a private link to this server's model usage page (tokens and dollars per day)."""
        guild_id = guild_id_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        url = await self.bot.game.usage_link(guild_id, actor_of(interaction), revoke_old=revoke_old)
        await respond(interaction, f"📊 Your link to the usage page (admins only; keep it private): {url}",
                      ephemeral=True)

    @admin.command(name="sync")
    @owner_only(OWNER_ONLY_SYNC)
    @app_commands.describe(scope="Where to sync: this server (instant) or global (up to an hour)")
    async def sync(self, interaction: discord.Interaction,
                   scope: Literal["here", "global"] = "here") -> None:
        """Sync slash commands (bot owner only)."""
        guild = interaction.guild if scope == "here" else None
        if scope == "here" and guild is None:
            raise UserInputError("Use scope `global` outside a server.")
        await interaction.response.defer(ephemeral=True, thinking=True)
        if guild is not None:
            self.bot.tree.copy_global_to(guild=guild)
            synced = await self.bot.tree.sync(guild=guild)
        else:
            synced = await self.bot.tree.sync()
        log.info("owner %s synced %d commands (%s)", interaction.user.id, len(synced), scope)
        await respond(interaction, f"Synced {len(synced)} commands ({scope}).", ephemeral=True)


async def setup(bot: DungeonMasterBot) -> None:
    """discord.py extension entry point: add the ``AdminCog``."""
    await bot.add_cog(AdminCog(bot))
