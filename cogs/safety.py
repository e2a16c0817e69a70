"""``/safety lines|veils add|remove|show`` and ``/xcard``: the table's safety tools.

Lines and veils are set by the campaign's creator or an admin; everyone may read them. ``/xcard``
is for anyone and anonymous: the acknowledgement is ephemeral and nothing in the channel names who
used it; the DM's last reply is rewritten.
"""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import EMBED_COLOUR, DungeonMasterBot, respond
from bot.game.safety import TOPIC_MAX
from bot.models import TableSafety
from cogs._common import actor_of, where_of


def safety_embed(safety: TableSafety) -> discord.Embed:
    """The table's lines, veils and X-card count as an embed."""
    embed = discord.Embed(title="Table safety", colour=EMBED_COLOUR)
    embed.add_field(name="Lines (never in the story)", value="\n".join(f"• {x}" for x in safety.lines)[:1024]
                    or "none", inline=False)
    embed.add_field(name="Veils (off screen only)", value="\n".join(f"• {x}" for x in safety.veils)[:1024]
                    or "none", inline=False)
    embed.add_field(name="X-card", value=f"used {safety.xcard_uses} time(s)", inline=False)
    return embed


@app_commands.guild_only()
class SafetyCog(commands.GroupCog, group_name="safety", group_description="The table's lines and veils"):
    """Lines and veils for the campaign in this channel."""

    def __init__(self, bot: DungeonMasterBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="show")
    async def show(self, interaction: discord.Interaction) -> None:
        """Show the table's lines and veils."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        await respond(interaction, embed=safety_embed(await self.bot.game.safety_show(where_of(interaction))),
                      ephemeral=True)

    @app_commands.command(name="add")
    @app_commands.describe(kind="lines: never in the story; veils: only off screen", topic="What, in a few words")
    async def add(self, interaction: discord.Interaction, kind: Literal["lines", "veils"],
                  topic: app_commands.Range[str, 1, TOPIC_MAX]) -> None:
        """Add a line or a veil (the campaign's creator or an admin)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        safety = await self.bot.game.safety_change(where_of(interaction), actor_of(interaction), kind, topic)
        await respond(interaction, "Noted: the DM will keep to it.", embed=safety_embed(safety), ephemeral=True)

    @app_commands.command(name="remove")
    @app_commands.describe(kind="lines or veils", topic="The topic to remove, as written")
    async def remove(self, interaction: discord.Interaction, kind: Literal["lines", "veils"],
                     topic: app_commands.Range[str, 1, TOPIC_MAX]) -> None:
        """Remove a line or a veil (the campaign's creator or an admin)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        safety = await self.bot.game.safety_change(where_of(interaction), actor_of(interaction), kind, topic,
                                                   remove=True)
        await respond(interaction, "Removed.", embed=safety_embed(safety), ephemeral=True)


class XCardCog(commands.Cog):
    """The X-card: anyone takes the DM's last reply back, anonymously."""

    def __init__(self, bot: DungeonMasterBot) -> None:
        self.bot = bot

    @app_commands.command(name="xcard")
    @app_commands.guild_only()
    @app_commands.describe(what="Optional: what to leave out (only the DM model sees it)")
    async def xcard(self, interaction: discord.Interaction, what: app_commands.Range[str, 0, TOPIC_MAX] = "") -> None:
        """Anonymously take back the DM's last reply and have it rewritten without what bothered you."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.bot.game.xcard(where_of(interaction), what)
        await respond(interaction, "Thank you. The DM's last reply has been rewritten; nobody was told who asked.",
                      ephemeral=True)


async def setup(bot: DungeonMasterBot) -> None:
    """discord.py extension entry point: add the ``SafetyCog`` and the ``XCardCog``."""
    await bot.add_cog(SafetyCog(bot))
    await bot.add_cog(XCardCog(bot))
