"""The Discord bot: the ``commands.Bot`` subclass, its Narrator, the one error path, and ``run_bot``.

``run_bot(settings)`` opens the database and the model client with ``async with`` and passes them to the
bot through its constructor (discord.py's examples/advanced_startup.py). ``setup_hook`` builds the game
core, loads one cog per feature from ``cogs/``, syncs slash commands to the dev guild when one is
configured (never globally on start: owners use ``/admin sync``) and starts the heartbeat the
container health check reads.

Safety: the client is created with ``AllowedMentions.none()`` and every send passes it again, so
nothing a player or the model writes can ping @everyone, a role or a user.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot.chunking import split_message
from bot.config import Settings
from bot.errors import BotError
from bot.game.api import DMReply, Narrator
from bot.models import RollRecord

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
COGS = ("cogs.campaign", "cogs.characters", "cogs.play", "cogs.dice", "cogs.admin")
HEARTBEAT_SECONDS = 30.0
GENERIC_APOLOGY = "Something went wrong on the DM's side of the screen. The table's actions are safe; try again."
EMBED_COLOUR = discord.Colour.dark_gold()


def apply_discord_endpoints(settings: Settings) -> None:
    """Point discord.py at REST and gateway proxies when ``DISCORD_API_BASE`` / ``DISCORD_GATEWAY_URL``
    are set (large deployments put proxies in front of Discord; the tests use loopback stand-ins).

    discord.py reads these from class attributes (``discord.http.Route.BASE`` and
    ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY``), so this is called once at start-up,
    before the client connects.
    """
    if settings.discord_api_base:
        discord.http.Route.BASE = settings.discord_api_base
    if settings.discord_gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


def render_roll(roll: RollRecord) -> str:
    """One line for a dice roll: who, why, and d20's breakdown (``1d20 (14) + 5 = `19```)."""
    who = roll.character_name or roll.roller_name
    why = f" ({roll.reason})" if roll.reason else ""
    return f"🎲 **{who}**{why}: {roll.breakdown}"


def rolls_embed(rolls: tuple[RollRecord, ...] | list[RollRecord]) -> discord.Embed | None:
    """An embed listing dice rolls with their breakdown, or None for no rolls (4,096-char cap)."""
    if not rolls:
        return None
    lines = [render_roll(r) for r in rolls]
    text = "\n".join(lines)
    if len(text) > 4000:
        text = text[:3990].rsplit("\n", 1)[0] + "\n…"
    return discord.Embed(title="Dice", description=text, colour=EMBED_COLOUR)


async def respond(interaction: discord.Interaction, content: str | None = None, *,
                  embed: discord.Embed | None = None, file: discord.File | None = None,
                  ephemeral: bool = False) -> None:
    """Answer an interaction whatever its state: first response, follow-up after ``defer()``, or a
    plain channel message when the 15-minute interaction token has expired.

    Long ``content`` is split into several messages (2,000 characters each); the embed and file go
    with the first. Ephemeral answers that outlive the token are dropped with a log line (they cannot
    go to the channel without showing a private answer to everyone).
    """
    chunks = split_message(content) if content else [""]
    for index, chunk in enumerate(chunks):
        extra: dict[str, Any] = {}
        if index == 0:
            if embed is not None:
                extra["embed"] = embed
            if file is not None:
                extra["file"] = file
        if not chunk and not extra:
            continue
        if interaction.is_expired():
            if ephemeral or interaction.channel is None:
                log.info("dropping ephemeral answer to expired interaction %s", interaction.id)
                return
            await interaction.channel.send(chunk or None, allowed_mentions=NO_MENTIONS, **extra)  # type: ignore[union-attr]
        elif not interaction.response.is_done():
            await interaction.response.send_message(chunk or None, ephemeral=ephemeral,
                                                    allowed_mentions=NO_MENTIONS, **extra)
        else:
            await interaction.followup.send(chunk or discord.utils.MISSING, ephemeral=ephemeral,
                                            allowed_mentions=NO_MENTIONS, **extra)


def describe_error(error: BaseException) -> tuple[str, bool]:
    """Turn any error from a command into (sentence for the user, whether it is unexpected).

    ``BotError`` → its ``player_message``; permission and check failures → a short explanation;
    anything else → a generic apology (unexpected: the caller logs the trace).
    """
    if isinstance(error, (app_commands.CommandInvokeError, commands.CommandInvokeError)):
        error = error.original
    if isinstance(error, BotError):
        return error.player_message, False
    if isinstance(error, app_commands.MissingPermissions):
        return "You need the **Manage Server** permission to do that.", False
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Easy there! Try again in {error.retry_after:.0f} s.", False
    if isinstance(error, (app_commands.NoPrivateMessage,)):
        return "That command only works in a server channel.", False
    if isinstance(error, app_commands.CheckFailure):
        return "You can't use that command here.", False
    if isinstance(error, app_commands.TransformerError):
        return f"I couldn't read the value {error.value!r}.", False
    return GENERIC_APOLOGY, True


class DiscordNarrator(Narrator):
    """Delivers DM replies to Discord channels: split to 2,000 characters, rolls as an embed, a reply
    reference to the last answered action (without pinging its author), no mentions ever."""

    def __init__(self, bot: DungeonMasterBot) -> None:
        self.bot = bot

    async def _channel(self, channel_id: int) -> discord.abc.Messageable | None:
        channel = self.bot.get_channel(channel_id)
        if channel is None:
            try:
                channel = await self.bot.fetch_channel(channel_id)
            except discord.HTTPException:
                log.warning("channel %s is gone; reply not delivered", channel_id)
                return None
        return channel  # type: ignore[return-value]

    async def deliver(self, reply: DMReply) -> None:
        """Send ``reply`` to its channel. Platform errors are logged, never raised (the reply is
        already stored and shows in /campaign recap)."""
        channel = await self._channel(reply.channel_id)
        if channel is None:
            return
        embed = rolls_embed(reply.rolls)
        chunks = split_message(reply.text) or ([""] if embed else [])
        reference = None
        if reply.answered_message_ids:
            reference = discord.MessageReference(message_id=reply.answered_message_ids[-1],
                                                 channel_id=reply.channel_id, fail_if_not_exists=False)
        try:
            for index, chunk in enumerate(chunks):
                kwargs: dict[str, Any] = {"allowed_mentions": NO_MENTIONS}
                if index == 0:
                    if embed is not None:
                        kwargs["embed"] = embed
                    if reference is not None:
                        kwargs["reference"] = reference
                await channel.send(chunk or None, **kwargs)
        except discord.HTTPException as exc:
            log.warning("could not deliver reply to channel %s: %s", reply.channel_id, exc)

    @contextlib.asynccontextmanager
    async def thinking(self, channel_id: int) -> AsyncIterator[None]:
        """Show "DM is typing…" while the block runs (discord.py re-sends it every 5 s)."""
        channel = self.bot.get_channel(channel_id)
        if channel is None or not hasattr(channel, "typing"):
            yield
            return
        try:
            typing = channel.typing()  # type: ignore[union-attr]
            await typing.__aenter__()
        except discord.HTTPException:
            yield
            return
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await typing.__aexit__(None, None, None)


class DungeonMasterBot(commands.AutoShardedBot):
    """The bot. ``store`` and ``llm`` are opened by the caller and passed in; the game core is built in
    ``setup_hook`` and closed in ``close``.

    Sharding: with ``DISCORD_SHARD_COUNT``/``DISCORD_SHARD_IDS`` set, this process runs those shards;
    otherwise one shard (no ``GET /gateway/bot`` round trip for a shard count).
    """

    def __init__(self, *, settings: Settings, store: Any, llm: Any, game: Any | None = None) -> None:
        intents = discord.Intents.default()
        intents.message_content = settings.discord_message_content_intent
        intents.members = False
        intents.presences = False
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=NO_MENTIONS,
            help_command=None,
            shard_count=settings.discord_shard_count or 1,
            shard_ids=settings.discord_shard_ids or None,
            owner_ids=set(settings.discord_owner_ids) or None,
        )
        self.settings = settings
        self.store = store
        self.llm = llm
        self.game = game
        self.narrator = DiscordNarrator(self)
        self._heartbeat_task: asyncio.Task[None] | None = None
        self.tree.on_error = self.on_app_command_error  # type: ignore[method-assign]

    async def setup_hook(self) -> None:
        if self.game is None:
            from bot.game.sessions import Game

            self.game = Game(store=self.store, llm=self.llm, settings=self.settings, narrator=self.narrator)
        for name in COGS:
            await self.load_extension(name)
        if self.settings.discord_dev_guild_id:
            guild = discord.Object(id=self.settings.discord_dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to dev guild %s", len(synced), guild.id)
        await self.game.start()
        from bot.runtime import freeze_startup_heap

        freeze_startup_heap()  # libraries and cogs are loaded: keep them out of later GC passes
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="heartbeat")

    async def close(self) -> None:
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
        if self.game is not None:
            await self.game.close()
        await super().close()

    @property
    def heartbeat_path(self) -> Path:
        """``DATA_DIR/heartbeat``: its mtime is refreshed every 30 s while the gateway is connected;
        the container health check (``dungeon-master health``) reads it."""
        return self.settings.data_dir / "heartbeat"

    async def _heartbeat(self) -> None:
        while True:
            try:
                if self.is_ready() and not self.is_closed():
                    self.heartbeat_path.parent.mkdir(parents=True, exist_ok=True)
                    self.heartbeat_path.write_text(f"{time.time():.0f}\n")
            except OSError as exc:
                log.warning("cannot write heartbeat file: %s", exc)
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def on_ready(self) -> None:
        assert self.user is not None
        log.info("connected as %s (%s) to %d servers", self.user, self.user.id, len(self.guilds))
        with contextlib.suppress(OSError):
            self.heartbeat_path.parent.mkdir(parents=True, exist_ok=True)
            self.heartbeat_path.write_text(f"{time.time():.0f}\n")

    async def on_app_command_error(self, interaction: discord.Interaction,
                                   error: app_commands.AppCommandError) -> None:
        """The ONE place where a slash command's error becomes a sentence for the user."""
        message, unexpected = describe_error(error)
        if unexpected:
            original = getattr(error, "original", error)
            log.error("command %s failed:\n%s", interaction.command and interaction.command.qualified_name,
                      "".join(traceback.format_exception(original)))
        else:
            log.info("command %s refused: %s", interaction.command and interaction.command.qualified_name,
                     message)
        with contextlib.suppress(discord.HTTPException):
            await respond(interaction, message, ephemeral=True)

    async def is_owner(self, user: discord.abc.User) -> bool:
        if self.settings.discord_owner_ids:
            return user.id in self.settings.discord_owner_ids
        return await super().is_owner(user)


def _close_on_signals(bot: DungeonMasterBot) -> None:
    """SIGTERM (``docker stop``, systemd) and SIGINT close the bot cleanly: a running turn gets
    ``CLOSE_GRACE_SECONDS`` to finish and deliver, the gateway and database close, exit code 0.
    Whatever is not answered by then stays pending in the database and is answered on the next start."""
    loop = asyncio.get_running_loop()

    def close(signame: str) -> None:
        log.info("%s received: closing", signame)
        if not bot.is_closed():
            asyncio.ensure_future(bot.close())

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows / not main thread
            loop.add_signal_handler(sig, close, sig.name)


async def run_bot(settings: Settings) -> int:
    """Run the bot until it is stopped. Returns the process exit code.

    Raises nothing for a missing or refused token: prints a sentence and returns 2 (missing) or 1.
    """
    if settings.discord_token is None:
        print("DISCORD_TOKEN is not set. Put your bot token in .env (see .env.example) "
              "or the environment, then start again.")
        return 2
    from bot.llm import LLMClient
    from bot.store import Database, Store

    apply_discord_endpoints(settings)
    async with Database.open(settings.database_path, migrate=True) as db, \
            LLMClient.from_settings(settings) as llm:
        bot = DungeonMasterBot(settings=settings, store=Store(db), llm=llm)
        _close_on_signals(bot)
        async with bot:
            try:
                await bot.start(settings.discord_token.get_secret_value())
            except discord.LoginFailure:
                log.error("Discord refused the token (401). Check DISCORD_TOKEN.")
                return 1
            except discord.PrivilegedIntentsRequired:
                log.error("The message content intent is not enabled for this bot in the Developer "
                          "Portal. Enable it, or set DISCORD_MESSAGE_CONTENT_INTENT=false to play via "
                          "/act and mentions only.")
                return 1
    return 0
