"""``/combat show|next|add|remove|end|init``: the channel's running fight and its tracker.

The tracker message (an embed) is posted when the fight starts and edited in place as it changes
(``DiscordNarrator.show_tracker``); the commands answer with a sentence. Fixing the fight (next, add,
remove, end) needs the campaign's creator or an admin; ``init`` lets a player roll their own
initiative; ``show`` is for everyone (privately by default).
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands
from discord.utils import escape_markdown

from bot.app import DungeonMasterBot, respond, tracker_embed
from bot.game.combat_commands import INITIATIVE_MAX, INITIATIVE_MIN
from bot.game.encounter import HOMEBREW_MAX_AC, HOMEBREW_MAX_HP, MAX_GROUP
from cogs._common import actor_of, where_of

NAME_MAX = 40  # characters of a combatant or monster name


@app_commands.guild_only()  # on the class: discord.py ignores guild_only on a GroupCog's subcommands
class CombatCog(commands.GroupCog, group_name="combat", group_description="The fight: initiative and turns"):
    """See the running fight's tracker, roll your initiative, and (creator or admin) fix the fight."""

    def __init__(self, bot: DungeonMasterBot) -> None:
        self.bot = bot
        super().__init__()

    async def _addable_autocomplete(self, interaction: discord.Interaction,
                                    current: str) -> list[app_commands.Choice[str]]:
        names = await self.bot.game.combat_addable(where_of(interaction), current)
        return [app_commands.Choice(name=n[:100], value=n[:100]) for n in names[:25]]

    async def _combatant_autocomplete(self, interaction: discord.Interaction,
                                      current: str) -> list[app_commands.Choice[str]]:
        names = await self.bot.game.combat_names(where_of(interaction), current)
        return [app_commands.Choice(name=n[:100], value=n[:100]) for n in names[:25]]

    @app_commands.command(name="show")
    @app_commands.describe(private="Only you see it (default)")
    async def show(self, interaction: discord.Interaction, private: bool = True) -> None:
        """Show the fight's tracker: round, order, whose turn, hit points."""
        await interaction.response.defer(ephemeral=private, thinking=True)
        view = await self.bot.game.combat_show(where_of(interaction))
        await respond(interaction, embed=tracker_embed(view), ephemeral=private)

    @app_commands.command(name="next")
    async def next_turn(self, interaction: discord.Interaction) -> None:
        """End the current turn; the next combatant acts (creator or admin)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        change = await self.bot.game.combat_next(where_of(interaction), actor_of(interaction))
        await respond(interaction, escape_markdown(change.text), ephemeral=True)

    @app_commands.command(name="add")
    @app_commands.describe(name="An SRD monster (e.g. Goblin) or a party member", count="How many monsters",
                           hp="Hit points of a monster the SRD lacks", ac="Armor class of a monster the SRD lacks")
    @app_commands.autocomplete(name=_addable_autocomplete)
    async def add(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, NAME_MAX],
                  count: app_commands.Range[int, 1, MAX_GROUP] = 1,
                  hp: app_commands.Range[int, 1, HOMEBREW_MAX_HP] | None = None,
                  ac: app_commands.Range[int, 1, HOMEBREW_MAX_AC] | None = None) -> None:
        """Add monsters or a party member to the fight, starting it if needed (creator or admin)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        change = await self.bot.game.combat_add(where_of(interaction), actor_of(interaction), name, count,
                                                hp=hp, ac=ac)
        await respond(interaction, escape_markdown(change.text), ephemeral=True)

    @app_commands.command(name="remove")
    @app_commands.describe(name="The combatant to take out of the fight")
    @app_commands.autocomplete(name=_combatant_autocomplete)
    async def remove(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, NAME_MAX]) -> None:
        """Take a combatant out of the fight (creator or admin)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        change = await self.bot.game.combat_remove(where_of(interaction), actor_of(interaction), name)
        await respond(interaction, escape_markdown(change.text), ephemeral=True)

    @app_commands.command(name="end")
    async def end(self, interaction: discord.Interaction) -> None:
        """End the fight (creator or admin)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        change = await self.bot.game.combat_end(where_of(interaction), actor_of(interaction))
        await respond(interaction, escape_markdown(change.text), ephemeral=True)

    @app_commands.command(name="init")
    @app_commands.describe(roll="Your initiative roll's total (leave out: rolled for you with d20)")
    async def init(self, interaction: discord.Interaction,
                   roll: app_commands.Range[int, INITIATIVE_MIN, INITIATIVE_MAX] | None = None) -> None:
        """Roll your initiative: your character joins the fight, or its initiative changes."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        change = await self.bot.game.combat_init(where_of(interaction), actor_of(interaction), roll)
        await respond(interaction, escape_markdown(change.text), ephemeral=True)


async def setup(bot: DungeonMasterBot) -> None:
    """discord.py extension entry point: add the ``CombatCog``."""
    await bot.add_cog(CombatCog(bot))
