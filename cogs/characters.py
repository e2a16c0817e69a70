"""``/join`` and ``/character show|edit|leave``: the party's character sheets."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import DungeonMasterBot, respond
from bot.game.api import CharacterSheetInput
from bot.game.rules import AC_MAX, AC_MIN, HP_MIN, LEVEL_MAX, LEVEL_MIN, MAX_HP_MAX, MAX_HP_MIN, NAME_MAX, TEXT_MAX
from cogs._common import actor_of, sheet_embed, where_of


class CharactersCog(commands.Cog):
    """Join the party with a character, and read or change character sheets."""

    # guild_only sets the legacy dm_permission; allowed_contexts the `contexts` Discord reads today
    character = app_commands.Group(name="character", description="Your character sheet", guild_only=True,
                                   allowed_contexts=app_commands.AppCommandContext(guild=True))

    def __init__(self, bot: DungeonMasterBot) -> None:
        self.bot = bot

    async def _name_autocomplete(self, interaction: discord.Interaction,
                                 current: str) -> list[app_commands.Choice[str]]:
        names = await self.bot.game.character_names(where_of(interaction), current)
        return [app_commands.Choice(name=n, value=n) for n in names[:25]]

    @app_commands.command(name="join")
    @app_commands.guild_only()
    @app_commands.describe(name="Your character's name", char_class="e.g. Fighter, Wizard, Rogue",
                           ancestry="e.g. Human, Elf, Dwarf", backstory="A few sentences about them",
                           max_hp="Maximum hit points (default: by class)", ac="Armor class (default: by class)")
    @app_commands.rename(char_class="class")
    async def join(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, NAME_MAX],
                   char_class: app_commands.Range[str, 1, NAME_MAX], ancestry: app_commands.Range[str, 1, NAME_MAX],
                   backstory: app_commands.Range[str, 0, TEXT_MAX] = "",
                   max_hp: app_commands.Range[int, MAX_HP_MIN, MAX_HP_MAX] | None = None,
                   ac: app_commands.Range[int, AC_MIN, AC_MAX] | None = None) -> None:
        """Join this channel's party with a character."""
        await interaction.response.defer(thinking=True)
        sheet = CharacterSheetInput(name=name, char_class=char_class, ancestry=ancestry,
                                    backstory=backstory, max_hp=max_hp, ac=ac)
        character = await self.bot.game.join(where_of(interaction), actor_of(interaction), sheet)
        await respond(interaction, f"**{character.name}** joins the party!", embed=sheet_embed(character))

    @character.command(name="show")
    @app_commands.describe(name="Whose sheet (default: yours)", private="Only you see it")
    @app_commands.autocomplete(name=_name_autocomplete)
    async def show(self, interaction: discord.Interaction, name: str | None = None,
                   private: bool = False) -> None:
        """Show a character sheet."""
        await interaction.response.defer(ephemeral=private, thinking=True)
        where = where_of(interaction)
        if name:
            character = await self.bot.game.character(where, name=name)
        else:
            character = await self.bot.game.character(where, user_id=interaction.user.id)
        await respond(interaction, embed=sheet_embed(character), ephemeral=private)

    @character.command(name="edit")
    @app_commands.describe(name="New name", char_class="New class", ancestry="New ancestry",
                           backstory="New backstory", hp="Current hit points", max_hp="Maximum hit points",
                           ac="Armor class", level="Level", notes="Free notes")
    @app_commands.rename(char_class="class")
    async def edit(self, interaction: discord.Interaction,
                   name: app_commands.Range[str, 1, NAME_MAX] | None = None,
                   char_class: app_commands.Range[str, 1, NAME_MAX] | None = None,
                   ancestry: app_commands.Range[str, 1, NAME_MAX] | None = None,
                   backstory: app_commands.Range[str, 0, TEXT_MAX] | None = None,
                   hp: app_commands.Range[int, HP_MIN, MAX_HP_MAX] | None = None,
                   max_hp: app_commands.Range[int, MAX_HP_MIN, MAX_HP_MAX] | None = None,
                   ac: app_commands.Range[int, AC_MIN, AC_MAX] | None = None,
                   level: app_commands.Range[int, LEVEL_MIN, LEVEL_MAX] | None = None,
                   notes: app_commands.Range[str, 0, TEXT_MAX] | None = None) -> None:
        """Change your character sheet (only the options you give)."""
        changes = {k: v for k, v in dict(name=name, char_class=char_class, ancestry=ancestry,
                                         backstory=backstory, hp=hp, max_hp=max_hp, ac=ac, level=level,
                                         notes=notes).items() if v is not None}
        await interaction.response.defer(ephemeral=True, thinking=True)
        if not changes:
            await respond(interaction, "Give at least one thing to change, e.g. `/character edit hp:12`.",
                          ephemeral=True)
            return
        character = await self.bot.game.edit_character(where_of(interaction), actor_of(interaction), **changes)
        await respond(interaction, "Sheet updated.", embed=sheet_embed(character), ephemeral=True)

    @character.command(name="leave")
    async def leave(self, interaction: discord.Interaction) -> None:
        """Leave the party (your character's story stays in the campaign)."""
        await interaction.response.defer(thinking=True)
        character = await self.bot.game.leave(where_of(interaction), actor_of(interaction))
        await respond(interaction, f"**{character.name}** leaves the party.")


async def setup(bot: DungeonMasterBot) -> None:
    """discord.py extension entry point: add the ``CharactersCog``."""
    await bot.add_cog(CharactersCog(bot))
