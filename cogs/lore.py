"""``/lore show|list|add|edit|forget|pin|history|revert``: the campaign's lorebook, kept by the DM and
the table.

Lookups (show, list) answer privately by default: then the campaign's creator and admins also see
DM secrets. ``private:false`` shares the answer with the table, and a shared answer never holds a
secret. History and changes answer privately, except a new non-secret entry, which the table sees.
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands
from discord.utils import escape_markdown

from bot.app import EMBED_COLOUR, DungeonMasterBot, respond
from bot.game.api import LoreEdit
from bot.game.lorebook import split_aliases
from bot.game.rules import LORE_ALIASES_MAX, LORE_DESCRIPTION_MAX, LORE_NAME_MAX
from bot.models import LoreEntry, LoreKind, LoreRevision, QuestStatus
from cogs._common import actor_of, where_of

ALIASES_TEXT_MAX = LORE_ALIASES_MAX * (LORE_NAME_MAX + 2)  # characters of the comma-separated aliases option
LIST_SHOWN = 60  # entries one /lore list shows
HISTORY_SHOWN = 20  # newest changes /lore history shows
LINE_DESCRIPTION = 90  # characters of a description in a list line
KIND_TITLES = {"npc": "People", "place": "Places", "faction": "Factions", "item": "Items", "quest": "Quests",
               "fact": "Facts"}
AUTHORS = {"dm": "the DM", "extract": "the chronicle", "player": "a player", "admin": "an admin"}


def lore_embed(entry: LoreEntry) -> discord.Embed:
    """One entry as an embed: name, description, kind, quest status, aliases, pin and secret marks.
    Within Discord's limits (title 256, description 4,096, field 1,024 characters)."""
    embed = discord.Embed(title=entry.name[:256], colour=EMBED_COLOUR, description=entry.description[:4000] or None)
    embed.add_field(name="Kind", value=entry.kind)
    if entry.status:
        embed.add_field(name="Status", value=entry.status)
    marks = [m for m, on in (("📌 pinned: always in the DM's mind", entry.pinned),
                             ("🔒 DM secret: players never see it", entry.secret)) if on]
    if marks:
        embed.add_field(name="Marks", value="\n".join(marks))
    if entry.aliases:
        embed.add_field(name="Also known as", value=", ".join(entry.aliases)[:1024], inline=False)
    embed.set_footer(text=f"Added by {AUTHORS[entry.created_by_kind]} in turn {entry.created_turn}")
    return embed


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def list_text(entries: list[LoreEntry], kind: str | None) -> str:
    """``/lore list`` as Markdown: entries grouped by kind, one line each (at most ``LIST_SHOWN``)."""
    if not entries:
        return f"The lorebook has no {kind} entries yet." if kind else \
            "The lorebook is empty. The DM fills it as you play; add to it with `/lore add`."
    lines = [f"**The lorebook** ({len(entries)} entr{'y' if len(entries) == 1 else 'ies'})"]
    current = None
    for entry in entries[:LIST_SHOWN]:
        if entry.kind != current:
            current = entry.kind
            lines.append(f"__{KIND_TITLES[entry.kind]}__")
        extra = "".join([f" · {entry.status}" if entry.status else "", " 📌" if entry.pinned else "",
                         " 🔒" if entry.secret else ""])
        aka = f" (aka {escape_markdown(', '.join(entry.aliases))})" if entry.aliases else ""
        about = f" — {escape_markdown(_short(entry.description, LINE_DESCRIPTION))}" if entry.description else ""
        lines.append(f"• **{escape_markdown(entry.name)}**{aka}{extra}{about}")
    if len(entries) > LIST_SHOWN:
        lines.append(f"…and {len(entries) - LIST_SHOWN} more: narrow it with `kind:`.")
    return "\n".join(lines)


def history_text(entry: LoreEntry, revisions: list[LoreRevision]) -> str:
    """``/lore history`` as Markdown: the newest ``HISTORY_SHOWN`` changes with their ids (for
    ``/lore revert``), turn, author and a Discord timestamp (shown in each reader's time zone)."""
    lines = [f"**{escape_markdown(entry.name)}**: changes, oldest first (`/lore revert` takes a number)"]
    if len(revisions) > HISTORY_SHOWN:
        lines.append(f"…{len(revisions) - HISTORY_SHOWN} older change(s) not shown.")
    for r in revisions[-HISTORY_SHOWN:]:
        who = f"{escape_markdown(r.author_name)} ({r.author_kind})" if r.author_name else AUTHORS[r.author_kind]
        what = ""
        if r.snapshot is not None:
            what = f" — {escape_markdown(_short(str(r.snapshot.get('description') or ''), 60))}"
        lines.append(f"`#{r.id}` turn {r.turn} · {r.action} by {who} · <t:{int(r.created_at)}:f>{what}")
    return "\n".join(lines)


@app_commands.guild_only()  # on the class: discord.py ignores guild_only on a GroupCog's subcommands
class LoreCog(commands.GroupCog, group_name="lore", group_description="The campaign's lorebook"):
    """Read and keep the lorebook of the channel's campaign: the people, places, factions, items,
    quests and facts the DM must not forget."""

    def __init__(self, bot: DungeonMasterBot) -> None:
        self.bot = bot
        super().__init__()

    async def _entry_autocomplete(self, interaction: discord.Interaction,
                                  current: str) -> list[app_commands.Choice[str]]:
        names = await self.bot.game.lore_names(where_of(interaction), actor_of(interaction), current)
        return [app_commands.Choice(name=n[:100], value=n[:100]) for n in names[:25]]

    @app_commands.command(name="show")
    @app_commands.describe(name="The entry's name or an alias", private="Only you see it (default)")
    @app_commands.autocomplete(name=_entry_autocomplete)
    async def show(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, LORE_NAME_MAX],
                   private: bool = True) -> None:
        """Show a lorebook entry."""
        await interaction.response.defer(ephemeral=private, thinking=True)
        entry = await self.bot.game.lore_show(where_of(interaction), actor_of(interaction), name,
                                              for_table=not private)
        await respond(interaction, embed=lore_embed(entry), ephemeral=private)

    @app_commands.command(name="list")
    @app_commands.describe(kind="Only this kind", status="Only quests with this status",
                           private="Only you see it (default)")
    async def list_entries(self, interaction: discord.Interaction, kind: LoreKind | None = None,
                           status: QuestStatus | None = None, private: bool = True) -> None:
        """List the lorebook's entries."""
        await interaction.response.defer(ephemeral=private, thinking=True)
        entries = await self.bot.game.lore_list(where_of(interaction), actor_of(interaction), kind=kind,
                                                status=status, for_table=not private)
        await respond(interaction, list_text(list(entries), kind), ephemeral=private)

    @app_commands.command(name="add")
    @app_commands.describe(kind="What it is", name="Its name", description="A sentence or two the DM keeps in mind",
                           aliases="Other names, separated by commas", status="For quests (default: open)",
                           secret="A DM secret the players never see (creator or admin)")
    async def add(self, interaction: discord.Interaction, kind: LoreKind,
                  name: app_commands.Range[str, 1, LORE_NAME_MAX],
                  description: app_commands.Range[str, 0, LORE_DESCRIPTION_MAX] = "",
                  aliases: app_commands.Range[str, 0, ALIASES_TEXT_MAX] = "",
                  status: QuestStatus | None = None, secret: bool = False) -> None:
        """Add an entry to the lorebook."""
        await interaction.response.defer(ephemeral=secret, thinking=True)
        entry = await self.bot.game.lore_add(where_of(interaction), actor_of(interaction), kind=kind, name=name,
                                             aliases=split_aliases(aliases), description=description,
                                             secret=secret, status=status)
        await respond(interaction, f"📖 **{escape_markdown(entry.name)}** is in the lorebook"
                                   + (" as a DM secret." if entry.secret else "."),
                      embed=lore_embed(entry), ephemeral=secret)

    @app_commands.command(name="edit")
    @app_commands.describe(name="The entry to change", new_name="Its new name",
                           aliases="All its other names, separated by commas (- for none)",
                           description="Its new description", kind="Its new kind", status="A quest's status",
                           secret="Hide it from the players, or reveal it (creator or admin)")
    @app_commands.autocomplete(name=_entry_autocomplete)
    async def edit(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, LORE_NAME_MAX],
                   new_name: app_commands.Range[str, 1, LORE_NAME_MAX] | None = None,
                   description: app_commands.Range[str, 1, LORE_DESCRIPTION_MAX] | None = None,
                   aliases: app_commands.Range[str, 1, ALIASES_TEXT_MAX] | None = None,
                   kind: LoreKind | None = None, status: QuestStatus | None = None,
                   secret: bool | None = None) -> None:
        """Change a lorebook entry (only the options you give)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        edit = LoreEdit(name=new_name, kind=kind, description=description, status=status, secret=secret,
                        aliases=split_aliases(aliases) if aliases is not None else None)
        entry = await self.bot.game.lore_edit(where_of(interaction), actor_of(interaction), name, edit)
        await respond(interaction, "Entry updated.", embed=lore_embed(entry), ephemeral=True)

    @app_commands.command(name="forget")
    @app_commands.describe(name="The entry to take out of the lorebook")
    @app_commands.autocomplete(name=_entry_autocomplete)
    async def forget(self, interaction: discord.Interaction,
                     name: app_commands.Range[str, 1, LORE_NAME_MAX]) -> None:
        """Take an entry out of the lorebook (its history is kept)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        entry = await self.bot.game.lore_forget(where_of(interaction), actor_of(interaction), name)
        await respond(interaction, f"🗑️ **{escape_markdown(entry.name)}** is out of the lorebook.", ephemeral=True)

    @app_commands.command(name="pin")
    @app_commands.describe(name="The entry", pinned="False to unpin it")
    @app_commands.autocomplete(name=_entry_autocomplete)
    async def pin(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, LORE_NAME_MAX],
                  pinned: bool = True) -> None:
        """Pin an entry so the DM always keeps it in mind, or unpin it (creator or admin)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        entry = await self.bot.game.lore_pin(where_of(interaction), actor_of(interaction), name, pinned)
        state = "pinned: the DM always keeps it in mind" if entry.pinned else "no longer pinned"
        await respond(interaction, f"📌 **{escape_markdown(entry.name)}** is {state}.", ephemeral=True)

    @app_commands.command(name="history")
    @app_commands.describe(name="The entry")
    @app_commands.autocomplete(name=_entry_autocomplete)
    async def history(self, interaction: discord.Interaction,
                      name: app_commands.Range[str, 1, LORE_NAME_MAX]) -> None:
        """Every change of an entry: who made it and when (only you see it)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        entry, revisions = await self.bot.game.lore_history(where_of(interaction), actor_of(interaction), name)
        await respond(interaction, history_text(entry, list(revisions)), ephemeral=True)

    @app_commands.command(name="revert")
    @app_commands.describe(name="The entry", revision="The change to go back to (a number from /lore history)")
    @app_commands.autocomplete(name=_entry_autocomplete)
    async def revert(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, LORE_NAME_MAX],
                     revision: app_commands.Range[int, 1, 2**53]) -> None:
        """Put an entry back as it was after an earlier change (creator or admin)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        entry = await self.bot.game.lore_revert(where_of(interaction), actor_of(interaction), name, revision)
        await respond(interaction, f"↩️ **{escape_markdown(entry.name)}** is back as it was after change "
                                   f"#{revision}.", embed=lore_embed(entry), ephemeral=True)


async def setup(bot: DungeonMasterBot) -> None:
    """discord.py extension entry point: add the ``LoreCog``."""
    await bot.add_cog(LoreCog(bot))
