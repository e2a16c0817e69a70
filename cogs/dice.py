"""``/roll``: roll a dice expression with the d20 library, shown with its breakdown."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import DungeonMasterBot, render_roll, respond
from cogs._common import actor_of, where_of


class DiceCog(commands.Cog):
    """Dice rolls for players. The DM's own rolls happen inside turns, also with real dice."""

    def __init__(self, bot: DungeonMasterBot) -> None:
        self.bot = bot

    @app_commands.command(name="roll")
    @app_commands.describe(expression="Dice expression, e.g. 1d20+5, 4d6kh3, 2d20kh1+3 (advantage)",
                           reason="What the roll is for", private="Only you see the result")
    async def roll(self, interaction: discord.Interaction, expression: app_commands.Range[str, 1, 200],
                   reason: app_commands.Range[str, 0, 200] = "", private: bool = False) -> None:
        """Roll dice."""
        await interaction.response.defer(ephemeral=private, thinking=True)
        record = await self.bot.game.roll(where_of(interaction), actor_of(interaction), expression, reason)
        await respond(interaction, render_roll(record), ephemeral=private)


async def setup(bot: DungeonMasterBot) -> None:
    """discord.py extension entry point: add the ``DiceCog``."""
    await bot.add_cog(DiceCog(bot))
