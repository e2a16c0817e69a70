"""Helpers shared by the cogs: who is calling, where, the owner check, and how sheets and reports look
as embeds."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

import discord
from discord import app_commands

from bot.app import EMBED_COLOUR, CheckRefused, DungeonMasterBot, is_server_admin
from bot.errors import UserInputError
from bot.game.api import Actor, ChannelRef
from bot.game.pace import describe_gap
from bot.models import CampaignStatusReport, Character, GuildConfig, PaceStatus, UsageLine, UsageReport

T = TypeVar("T")

NOT_IN_A_SERVER = "That command only works in a server channel."


def bot_of(interaction: discord.Interaction) -> DungeonMasterBot:
    """The bot that received ``interaction``. Every command of this project is registered on a
    ``DungeonMasterBot``'s tree, so its client is one; discord.py types it only as ``Client``."""
    return cast(DungeonMasterBot, interaction.client)


def actor_of(interaction: discord.Interaction) -> Actor:
    """The caller as the game core sees them. ``is_admin`` comes from the caller's resolved channel
    permissions (Manage Server), checked at run time, not only by Discord's command visibility;
    ``is_owner`` from ``DISCORD_OWNER_IDS``."""
    owner_ids = bot_of(interaction).settings.discord_owner_ids
    return Actor(user_id=interaction.user.id, name=interaction.user.display_name,
                 is_admin=is_server_admin(interaction), is_owner=interaction.user.id in owner_ids)


def where_of(interaction: discord.Interaction) -> ChannelRef:
    """The guild and channel the command was called in."""
    return ChannelRef(guild_id=interaction.guild_id, channel_id=interaction.channel_id or 0)


def guild_id_of(interaction: discord.Interaction) -> int:
    """The server the command was called in. Raises ``UserInputError`` (shown as a sentence) outside
    one; the server-only groups cannot be called there, but a command must not rely on that alone."""
    if interaction.guild_id is None:
        raise UserInputError(NOT_IN_A_SERVER)
    return interaction.guild_id


def owner_only(refusal: str) -> Callable[[T], T]:
    """An ``app_commands.check`` for the bot's owners (``DungeonMasterBot.is_owner``). Anyone else
    gets ``refusal`` as an ephemeral sentence, through the bot's one error handler."""

    async def predicate(interaction: discord.Interaction) -> bool:
        if await bot_of(interaction).is_owner(interaction.user):
            return True
        raise CheckRefused(refusal)

    return app_commands.check(predicate)


def sheet_embed(character: Character) -> discord.Embed:
    """A character sheet as an embed: class, ancestry, level, HP, AC, conditions, inventory."""
    embed = discord.Embed(title=character.name, colour=EMBED_COLOUR,
                          description=character.backstory[:1000] or None)
    embed.add_field(name="Class", value=character.char_class or "—")
    embed.add_field(name="Ancestry", value=character.ancestry or "—")
    embed.add_field(name="Level", value=str(character.level))
    embed.add_field(name="Hit points", value=f"{character.hp} / {character.max_hp}")
    embed.add_field(name="Armor class", value=str(character.ac))
    embed.add_field(name="Conditions", value=", ".join(character.conditions)[:1000] or "none")
    embed.add_field(name="Inventory", value=", ".join(character.inventory)[:1000] or "empty", inline=False)
    if character.notes:
        embed.add_field(name="Notes", value=character.notes[:1000], inline=False)
    embed.set_footer(text=f"Played by {character.player_name}")
    return embed


def pace_lines(pace: PaceStatus) -> list[str]:
    """The table's pace for people (``/campaign status``, ``/campaign pace``): the pace in force and
    how turns close now, with why; under rounds the deadline and the reminder, the open round's
    deadline as a Discord timestamp, whom the DM waits for; who is away. Characters by name, never
    mentions."""
    head = f"`{pace.configured}`" + (f", now `{pace.mode}`" if pace.configured == "auto" else "")
    lines = [f"{head} — {pace.reason}"]
    if pace.mode == "rounds":
        reminder = (f"a reminder at {pace.reminder_share:.0%} of it" if pace.reminder_share > 0
                    else "no reminder")
        lines.append(f"A round closes when every active character has acted, or "
                     f"{describe_gap(pace.deadline_s)} after its first post; {reminder}.")
        if pace.round_deadline_at is not None:
            lines.append(f"This round closes <t:{int(pace.round_deadline_at)}:R> at the latest.")
        if pace.waiting_for:
            lines.append("Waiting for: " + ", ".join(_plain(n) for n in pace.waiting_for))
    if pace.away:
        lines.append("Away: " + ", ".join(_plain(n) for n in pace.away))
    return lines


def _plain(name: str) -> str:
    """A character name shown as text: no Markdown, no mention syntax (``<@...>``) that would render."""
    return discord.utils.escape_mentions(discord.utils.escape_markdown(name))


def status_embed(report: CampaignStatusReport, *, for_admin: bool = False) -> discord.Embed:
    """``/campaign status`` as an embed; ``for_admin`` adds how often the output guard stepped in."""
    c = report.campaign
    embed = discord.Embed(title=c.title, colour=EMBED_COLOUR,
                          description=(c.setting[:1500] or None))
    embed.add_field(name="State", value=c.status)
    embed.add_field(name="Turn", value=str(c.turn))
    embed.add_field(name="Tone", value=c.tone or "—")
    party = "\n".join(f"**{p.name}** ({p.ancestry} {p.char_class}, HP {p.hp}/{p.max_hp}) — {p.player_name}"
                      for p in report.party)
    embed.add_field(name="Party", value=party[:1024] or "nobody yet: /join", inline=False)
    embed.add_field(name="Story", value=f"{report.story_messages} messages, summary {report.summary_tokens} tokens, "
                    f"{report.unsummarised_tokens} tokens not yet summarised")
    embed.add_field(name="Table", value=f"turn mode `{report.turn_mode}`, model `{report.model}`")
    embed.add_field(name="Waiting", value=f"{report.pending_actions} action(s)"
                    + (" — the DM is writing" if report.busy else ""))
    if report.pace is not None:
        embed.add_field(name="Pace", value="\n".join(pace_lines(report.pace))[:1024], inline=False)
    if for_admin:
        guarded = ", ".join(f"{rule} {n}" for rule, n in sorted(report.guard_interventions.items()))
        embed.add_field(name="Output guard (admins)", value=guarded or "never needed", inline=False)
    return embed


def config_embed(config: GuildConfig) -> discord.Embed:
    """``/config show`` as an embed, one field per option."""
    embed = discord.Embed(title="Dungeon Master settings for this server", colour=EMBED_COLOUR)
    for key in GuildConfig.keys():
        value = getattr(config, key)
        if isinstance(value, tuple):
            if key == "allowed_channel_ids":
                text = ", ".join(f"<#{v}>" for v in value) or "any channel"
            else:
                text = " ".join(f"`{v}`" for v in value) or "none"
        elif key.endswith("budget"):
            text = "unlimited" if not value else f"{value:,} tokens/day"
        else:
            text = str(value)
        embed.add_field(name=key, value=text[:1024] or "—")
    return embed


def _usage_lines(lines: tuple[UsageLine, ...]) -> str:
    if not lines:
        return "nothing yet"
    out = []
    for line in lines:
        cost = "unknown price" if line.cost_usd is None else f"${line.cost_usd:.4f}"
        estimated = f" ({line.estimated_requests} counted by the bot: estimated)" if line.estimated_requests else ""
        out.append(f"`{line.model}`: {line.requests} calls{estimated}, {line.prompt_tokens:,} in"
                   f" ({line.cached_prompt_tokens:,} cached) / {line.completion_tokens:,} out, {cost}")
    return "\n".join(out)[:1024]


def usage_embed(report: UsageReport) -> discord.Embed:
    """``/usage`` as an embed: tokens and US dollars by model, today (UTC) and all time."""
    embed = discord.Embed(title="Model usage", colour=EMBED_COLOUR)
    embed.add_field(name="This server, today (UTC)", value=_usage_lines(report.guild_today), inline=False)
    embed.add_field(name="This server, all time", value=_usage_lines(report.guild_all_time), inline=False)
    if report.campaign_title is not None:
        embed.add_field(name=f"{report.campaign_title}, today", value=_usage_lines(report.campaign_today),
                        inline=False)
        embed.add_field(name=f"{report.campaign_title}, all time",
                        value=_usage_lines(report.campaign_all_time), inline=False)
    return embed
