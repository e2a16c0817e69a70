"""Play: channel messages and ``/act`` become actions (an edit before the DM answers changes one, a
deletion withdraws it); ``/retry`` and ``/undo`` fix the last turn; ``/away`` tells the DM not to wait
for your character in rounds (``bot.game.pace``).

Free text in a channel with an active campaign goes to the game core, which filters it (other bots,
OOC, other bots' commands), stores it and collects it into a group turn. Without the message-content
intent Discord sends empty content except for messages that mention the bot, so play still works
through mentions and ``/act``.
"""

from __future__ import annotations

import contextlib
import logging
import re

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import NO_MENTIONS, DungeonMasterBot, describe_error, respond
from bot.errors import BotError
from bot.game.api import IncomingMessage
from cogs._common import actor_of, where_of

log = logging.getLogger(__name__)
REFUSAL_SECONDS = 20.0


class PlayCog(commands.Cog):
    """Turns channel messages and /act into actions for the DM."""

    def __init__(self, bot: DungeonMasterBot) -> None:
        self.bot = bot

    def _incoming(self, message: discord.Message, me: discord.ClientUser) -> IncomingMessage:
        content = message.content
        mentions_bot = any(u.id == me.id for u in message.mentions)
        if mentions_bot:
            content = re.sub(rf"<@!?{me.id}>", "", content).strip()
        replies_to_bot = False
        ref = message.reference
        if ref is not None and isinstance(ref.resolved, discord.Message):
            replies_to_bot = ref.resolved.author.id == me.id
        return IncomingMessage(
            guild_id=message.guild.id if message.guild else None, channel_id=message.channel.id,
            author_id=message.author.id, author_name=message.author.display_name, content=content,
            message_id=message.id, author_is_bot=message.author.bot, mentions_bot=mentions_bot,
            replies_to_bot=replies_to_bot, created_at=message.created_at.timestamp())

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        """An edited message (raw: also one discord.py's cache never saw): a pending action the DM has
        not started to answer takes the new text; after the DM answered, nothing changes."""
        me = self.bot.user
        message = payload.message
        if me is None or payload.guild_id is None or message.author.id == me.id or message.author.bot:
            return
        try:
            intake = await self.bot.game.handle_edit(self._incoming(message, me))
        except Exception:
            log.exception("handling the edit of message %s failed", payload.message_id)
            return
        if intake.status == "refused" and intake.player_message:
            await self._tell(message, f"{intake.player_message} (Your action stays as you first wrote it.)")

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        """A deleted message: a pending action the DM has not started to answer is withdrawn."""
        if payload.guild_id is None:
            return
        try:
            await self.bot.game.handle_delete(payload.channel_id, payload.message_id)
        except Exception:
            log.exception("handling the deletion of message %s failed", payload.message_id)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """A channel message: hand it to the game core; tell its author (briefly) if it was refused."""
        me = self.bot.user
        if me is None or message.author.id == me.id:
            return
        if message.guild is None:
            return  # campaigns live in server channels
        try:
            intake = await self.bot.game.handle_message(self._incoming(message, me))
        except Exception as exc:  # one error path: a sentence for the player, the trace for the log
            text, unexpected = describe_error(exc)
            if unexpected:
                log.exception("handling message %s failed", message.id)
            elif isinstance(exc, BotError) and exc.admin_hint:
                log.warning("message %s refused: %s; admin hint: %s", message.id, text, exc.admin_hint)
            await self._tell(message, text)
            return
        if intake.status == "refused" and intake.player_message:
            await self._tell(message, intake.player_message)

    async def _tell(self, message: discord.Message, text: str) -> None:
        try:
            await message.reply(text, delete_after=REFUSAL_SECONDS, mention_author=False,
                                allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as exc:
            log.info("could not tell %s: %s", message.author.id, exc)

    @app_commands.command(name="act")
    @app_commands.guild_only()
    @app_commands.describe(action="What your character does or says")
    async def act(self, interaction: discord.Interaction, action: app_commands.Range[str, 1, 2000]) -> None:
        """Take an action in the story without typing in the channel."""
        # Deferred like every command that touches the database: the first action of the evening
        # loads the campaign, and a busy disk must not cost the player Discord's 3-second window.
        await interaction.response.defer(thinking=True)
        msg = IncomingMessage(guild_id=interaction.guild_id, channel_id=interaction.channel_id or 0,
                              author_id=interaction.user.id, author_name=interaction.user.display_name,
                              content=action, message_id=interaction.id, explicit_action=True)
        intake = await self.bot.game.handle_message(msg)
        if intake.status == "queued":
            name = interaction.user.display_name
            await respond(interaction, f"**{name}**: {action}")
            return
        # After a public defer, Discord shows the first follow-up in place of the public "thinking"
        # message whatever its flags: take that message away first, so the refusal stays private.
        with contextlib.suppress(discord.HTTPException):
            await interaction.delete_original_response()
        await respond(interaction, intake.player_message or "The DM can't take that action here.", ephemeral=True)

    @app_commands.command(name="retry")
    @app_commands.guild_only()
    async def retry(self, interaction: discord.Interaction) -> None:
        """Ask the DM to write the last reply again."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.bot.game.retry(where_of(interaction), actor_of(interaction))
        await respond(interaction, "The DM rewrites the last scene…", ephemeral=True)

    @app_commands.command(name="undo")
    @app_commands.guild_only()
    async def undo(self, interaction: discord.Interaction) -> None:
        """Take back the last turn: the actions and the DM's reply leave the story."""
        await interaction.response.defer(thinking=True)
        result = await self.bot.game.undo(where_of(interaction), actor_of(interaction))
        await respond(interaction, f"⏪ Turn {result.turn} was taken back ({result.messages_undone} messages).")

    @app_commands.command(name="away")
    @app_commands.guild_only()
    async def away(self, interaction: discord.Interaction) -> None:
        """Rounds don't wait for your character until you post again (or use /away again)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        where, actor = where_of(interaction), actor_of(interaction)
        name = discord.utils.escape_markdown((await self.bot.game.character(where, user_id=actor.user_id)).name)
        gone = await self.bot.game.away(where, actor)
        if gone:
            text = f"💤 The DM won't wait for **{name}** in rounds until you post again or use `/away` again."
        else:
            text = f"👋 Welcome back! The DM waits for **{name}** in rounds again."
        await respond(interaction, text, ephemeral=True)


async def setup(bot: DungeonMasterBot) -> None:
    """discord.py extension entry point: add the ``PlayCog``."""
    await bot.add_cog(PlayCog(bot))
