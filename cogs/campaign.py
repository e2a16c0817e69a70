"""``/campaign start|end|pause|resume|status|recap|search|export|pace|reminders`` and ``/campaign journal
link|revoke``: the campaign of this channel."""

from __future__ import annotations

import contextlib
import io
import re
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import DungeonMasterBot, is_server_admin, respond
from bot.game.rules import SEARCH_QUERY_MAX, SETTING_MAX, TITLE_MAX, TONE_MAX
from bot.models import PaceStatus, SearchHit
from cogs._common import actor_of, pace_lines, status_embed, where_of


def search_text(query: str, hits: list[SearchHit]) -> str:
    """``/campaign search`` as Markdown: one line per hit with where it is (turn, chapter or lore
    entry) and its snippet (the match in bold), best first."""
    shown = discord.utils.escape_markdown(" ".join(query.split()))
    if not hits:
        return f"Nothing in this campaign matches “{shown}”."
    lines = [f"**{len(hits)} result{'' if len(hits) == 1 else 's'} for “{shown}”**"]
    for hit in hits:
        snippet = " ".join(hit.snippet.split())
        if hit.source == "story":
            where = f"Turn {hit.turn} · {discord.utils.escape_markdown(hit.label)}"
        elif hit.source == "chapter":
            where = f"{hit.label} (from turn {hit.turn})"
        else:
            where = f"Lorebook · {discord.utils.escape_markdown(hit.label)}"
        lines.append(f"• {where}: {snippet}")
    return "\n".join(lines)


def pace_text(status: PaceStatus) -> str:
    """``/campaign pace``'s public answer: the table's pace as it now stands (``pace_lines``)."""
    lines = pace_lines(status)
    return "\n".join([f"⏱️ Table pace: {lines[0]}", *lines[1:]])


@app_commands.guild_only()  # on the class: discord.py ignores guild_only on a GroupCog's subcommands
class CampaignCog(commands.GroupCog, group_name="campaign", group_description="Run this channel's campaign"):
    """Start, pause, resume and end the campaign played in a channel; read its story. The whole
    ``/campaign`` group is server-only (a campaign started in a DM could never be played)."""

    journal = app_commands.Group(name="journal", description="The campaign's read-only web journal")

    def __init__(self, bot: DungeonMasterBot) -> None:
        self.bot = bot
        super().__init__()

    @journal.command(name="link")
    async def journal_link(self, interaction: discord.Interaction) -> None:
        """Get your own private link to this campaign's web journal (story, party, world)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        url = await self.bot.game.journal_link(where_of(interaction), actor_of(interaction))
        await respond(interaction, f"📖 Your link to the journal (keep it to yourself: anyone with it can read "
                                   f"the campaign): {url}", ephemeral=True)

    @journal.command(name="revoke")
    async def journal_revoke(self, interaction: discord.Interaction) -> None:
        """Make every link to this campaign's journal stop working (creator or admin)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        count = await self.bot.game.journal_revoke(where_of(interaction), actor_of(interaction))
        await respond(interaction, f"🔒 {count} journal link{'' if count == 1 else 's'} revoked. Anyone who still "
                                   "wants to read it asks for a new one with `/campaign journal link`.",
                      ephemeral=True)

    @app_commands.command(name="start")
    @app_commands.describe(title="The campaign's name", setting="Where and when it takes place",
                           tone="e.g. heroic, grim, comedic, horror")
    async def start(self, interaction: discord.Interaction,
                    title: app_commands.Range[str, 1, TITLE_MAX],
                    setting: app_commands.Range[str, 0, SETTING_MAX] = "",
                    tone: app_commands.Range[str, 0, TONE_MAX] = "") -> None:
        """Start a new campaign in this channel."""
        await interaction.response.defer(thinking=True)
        campaign = await self.bot.game.start_campaign(where_of(interaction), actor_of(interaction),
                                                      title=title, setting=setting, tone=tone)
        await respond(interaction, f"📜 **{campaign.title}** begins! Everyone: `/join` with your character,"
                                   " then just type what you do.")

    @app_commands.command(name="end")
    async def end(self, interaction: discord.Interaction) -> None:
        """End this channel's campaign (its story stays readable with /campaign export)."""
        await interaction.response.defer(thinking=True)
        campaign = await self.bot.game.end_campaign(where_of(interaction), actor_of(interaction))
        await respond(interaction, f"🏁 **{campaign.title}** has ended after {campaign.turn} turns.")

    @app_commands.command(name="pause")
    async def pause(self, interaction: discord.Interaction) -> None:
        """Pause play: channel messages are not answered until /campaign resume."""
        await interaction.response.defer(thinking=True)
        campaign = await self.bot.game.pause_campaign(where_of(interaction), actor_of(interaction))
        await respond(interaction, f"⏸️ **{campaign.title}** is paused.")

    @app_commands.command(name="resume")
    async def resume(self, interaction: discord.Interaction) -> None:
        """Resume a paused campaign."""
        await interaction.response.defer(thinking=True)
        campaign = await self.bot.game.resume_campaign(where_of(interaction), actor_of(interaction))
        await respond(interaction, f"▶️ **{campaign.title}** resumes!")

    @app_commands.command(name="status")
    async def status(self, interaction: discord.Interaction) -> None:
        """Show the campaign, the party and what the DM is working on."""
        await interaction.response.defer(thinking=True)
        report = await self.bot.game.status(where_of(interaction))
        await respond(interaction, embed=status_embed(report, for_admin=is_server_admin(interaction)))

    @app_commands.command(name="pace")
    @app_commands.describe(
        mode="live, rounds (play by post), auto (follows the table) or default (the server's)",
        deadline_hours="Hours from a round's first post until the DM answers anyway (1/60 to 168)",
        reminder_share="When the reminder comes, as a share of the deadline (0: never, up to 0.95)")
    async def pace(self, interaction: discord.Interaction,
                   mode: Literal["auto", "live", "rounds", "default"] | None = None,
                   deadline_hours: app_commands.Range[float, 1 / 60, 168.0] | None = None,
                   reminder_share: app_commands.Range[float, 0.0, 0.95] | None = None) -> None:
        """Choose how the DM waits for the table: live, by rounds (play by post) or auto (creator or admin)."""
        await interaction.response.defer(thinking=True)  # public: the table sees the change
        try:
            status = await self.bot.game.set_pace(where_of(interaction), actor_of(interaction), pace=mode,
                                                  deadline_hours=deadline_hours, reminder_share=reminder_share)
        except Exception:
            # After a public defer, Discord shows the first follow-up in place of the public "thinking"
            # message whatever its flags: take that message away first, so the refusal stays private.
            with contextlib.suppress(discord.HTTPException):
                await interaction.delete_original_response()
            raise
        await respond(interaction, pace_text(status))

    @app_commands.command(name="reminders")
    @app_commands.describe(ping="Mention (ping) you in round reminders; off: only your character is named")
    async def reminders(self, interaction: discord.Interaction, ping: bool) -> None:
        """Whether the round reminder pings you when the DM is waiting for your character."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        pinged = await self.bot.game.reminders(where_of(interaction), actor_of(interaction), ping=ping)
        text = ("🔔 Round reminders will ping you when the DM is waiting for your character." if pinged else
                "🔕 Round reminders will name your character without pinging you.")
        await respond(interaction, text, ephemeral=True)

    @app_commands.command(name="recap")
    @app_commands.describe(private="Only you see the recap",
                           chapter="A chapter of the chronicle by number (default: the latest, with the latest turns)")
    async def recap(self, interaction: discord.Interaction, private: bool = False,
                    chapter: app_commands.Range[int, 1, 1_000_000] | None = None) -> None:
        """The story so far."""
        await interaction.response.defer(ephemeral=private, thinking=True)
        text = await self.bot.game.recap(where_of(interaction), chapter)
        await respond(interaction, text, ephemeral=private)

    @app_commands.command(name="search")
    @app_commands.describe(query="Words or names to find (each word may be the start of a longer one)",
                           private="Only you see the results (default)")
    async def search(self, interaction: discord.Interaction, query: app_commands.Range[str, 1, SEARCH_QUERY_MAX],
                     private: bool = True) -> None:
        """Find moments of the whole story, the chronicle and the lorebook."""
        await interaction.response.defer(ephemeral=private, thinking=True)
        hits = await self.bot.game.search(where_of(interaction), actor_of(interaction), query,
                                          for_table=not private)
        await respond(interaction, search_text(query, list(hits)), ephemeral=private)

    @app_commands.command(name="export")
    @app_commands.describe(secrets="Include the DM's secret lore entries (creator or admin)")
    async def export(self, interaction: discord.Interaction, secrets: bool = False) -> None:
        """Download the whole story as a Markdown file."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        markdown = await self.bot.game.export_markdown(where_of(interaction), actor_of(interaction),
                                                       include_secrets=secrets)
        status = await self.bot.game.status(where_of(interaction))
        slug = re.sub(r"[^a-z0-9]+", "-", status.campaign.title.lower()).strip("-") or "campaign"
        file = discord.File(io.BytesIO(markdown.encode("utf-8")), filename=f"{slug}.md")
        await respond(interaction, "Here is the story so far.", file=file, ephemeral=True)


async def setup(bot: DungeonMasterBot) -> None:
    """discord.py extension entry point: add the ``CampaignCog``."""
    await bot.add_cog(CampaignCog(bot))
