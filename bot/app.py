"""The Discord bot: the ``commands.Bot`` subclass, its Narrator, the one error path, and ``run_bot``.

``run_bot(settings)`` opens the database and the model client with ``async with`` and passes them to the
bot through its constructor (discord.py's examples/advanced_startup.py), which also builds the game core
(``bot.game.core.Game``, typed as ``GameAPI``). ``setup_hook`` loads one cog per feature from ``cogs/``,
syncs slash commands to the dev guild when one is configured (never globally on start: owners use
``/admin sync``), starts the game core and the heartbeat the container health check reads.

Errors: every slash command's error reaches ``DungeonMasterTree.on_error`` and becomes one ephemeral
sentence there (``describe_error``); a ``BotError``'s ``admin_hint`` is logged and, for callers with
Manage Server, appended to that sentence.

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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot.chunking import split_message
from bot.config import Settings
from bot.discord_narrator import (  # re-exported: the cogs import them from here
    EMBED_COLOUR,
    NO_MENTIONS,
    DiscordNarrator,
    render_roll,
    rolls_embed,
    tracker_embed,
)
from bot.errors import BotError
from bot.game.api import GameAPI

if TYPE_CHECKING:
    from bot.game.turns import Clock
    from bot.llm import LLMClient
    from bot.store import Store

log = logging.getLogger(__name__)

__all__ = ["COGS", "EMBED_COLOUR", "NO_MENTIONS", "CheckRefused", "DiscordNarrator", "DungeonMasterBot",
           "describe_error", "is_server_admin", "render_roll", "respond", "rolls_embed", "run_bot", "tracker_embed"]

COGS = ("cogs.campaign", "cogs.characters", "cogs.lore", "cogs.combat", "cogs.safety", "cogs.play", "cogs.dice",
        "cogs.admin")
HEARTBEAT_SECONDS = 30.0
GENERIC_APOLOGY = "Something went wrong on the DM's side of the screen. The table's actions are safe; try again."


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
            channel = interaction.channel
            if ephemeral or not isinstance(channel, discord.abc.Messageable):
                log.info("dropping ephemeral answer to expired interaction %s", interaction.id)
                return
            await channel.send(chunk or None, allowed_mentions=NO_MENTIONS, **extra)
        elif not interaction.response.is_done():
            await interaction.response.send_message(chunk or None, ephemeral=ephemeral,
                                                    allowed_mentions=NO_MENTIONS, **extra)
        else:
            await interaction.followup.send(chunk or discord.utils.MISSING, ephemeral=ephemeral,
                                            allowed_mentions=NO_MENTIONS, **extra)


class CheckRefused(app_commands.CheckFailure):
    """Raised by an ``app_commands.check`` predicate that refuses the caller; ``player_message`` is
    the sentence they see (ephemeral), e.g. "Only the bot's owner can sync commands."."""

    def __init__(self, player_message: str) -> None:
        super().__init__(player_message)
        self.player_message = player_message


def unwrap_error(error: BaseException) -> BaseException:
    """The exception a command raised, without discord.py's ``CommandInvokeError`` wrapper."""
    if isinstance(error, (app_commands.CommandInvokeError, commands.CommandInvokeError)):
        return error.original
    return error


def describe_error(error: BaseException) -> tuple[str, bool]:
    """Turn any error from a command into (sentence for the user, whether it is unexpected).

    ``BotError`` → its ``player_message``; a refused check → its sentence; permission and other check
    failures → a short explanation; anything else → a generic apology (unexpected: the caller logs the
    trace). A ``BotError``'s ``admin_hint`` is not part of the sentence: see ``admin_note``.
    """
    error = unwrap_error(error)
    if isinstance(error, BotError):
        return error.player_message, False
    if isinstance(error, CheckRefused):
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


def admin_note(hint: str) -> str:
    """The line appended to an error sentence for callers with Manage Server."""
    return f"\n-# For admins: {hint}"


def is_server_admin(interaction: discord.Interaction) -> bool:
    """Whether the caller has Manage Server (or Administrator) in the channel of ``interaction``."""
    perms = interaction.permissions
    return bool(perms.manage_guild or perms.administrator)


class DungeonMasterTree(app_commands.CommandTree["DungeonMasterBot"]):
    """The bot's command tree: its ``on_error`` is the bot's single error path for slash commands."""

    async def on_error(self, interaction: discord.Interaction[DungeonMasterBot],
                       error: app_commands.AppCommandError) -> None:
        """Hand every slash command error to ``DungeonMasterBot.on_app_command_error``."""
        await self.client.on_app_command_error(interaction, error)


class DungeonMasterBot(commands.AutoShardedBot):
    """The bot. ``store`` and ``llm`` are opened by the caller and passed in; the game core is built
    here unless one is given (``bot.game.core.Game``, on ``clock``: the real clock unless a test passes
a ``ManualClock``), started in ``setup_hook`` and closed in ``close``.

    Sharding: with ``DISCORD_SHARD_COUNT``/``DISCORD_SHARD_IDS`` set, this process runs those shards;
    otherwise one shard (no ``GET /gateway/bot`` round trip for a shard count).
    """

    def __init__(self, *, settings: Settings, store: Store, llm: LLMClient, game: GameAPI | None = None,
                 clock: Clock | None = None) -> None:
        intents = discord.Intents.default()
        intents.message_content = settings.discord_message_content_intent
        intents.members = False
        intents.presences = False
        shards: dict[str, Any] = {"shard_ids": list(settings.discord_shard_ids)} if settings.discord_shard_ids else {}
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=NO_MENTIONS,
            help_command=None,
            tree_cls=DungeonMasterTree,
            shard_count=settings.discord_shard_count or 1,
            owner_ids=set(settings.discord_owner_ids) or None,
            **shards,
        )
        self.settings = settings
        self.store = store
        self.llm = llm
        self.narrator = DiscordNarrator(self)
        if game is None:
            from bot.game.core import Game

            game = Game(store=store, llm=llm, settings=settings, narrator=self.narrator, clock=clock)
        self.game: GameAPI = game
        self._heartbeat_task: asyncio.Task[None] | None = None
        self.journal: Any = None  # bot.journal.server.JournalServer while the journal is served

    async def setup_hook(self) -> None:
        """Load the cogs, sync to the dev guild if one is set, start the game core and the heartbeat."""
        for name in COGS:
            await self.load_extension(name)
        if self.settings.discord_dev_guild_id:
            guild = discord.Object(id=self.settings.discord_dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to dev guild %s", len(synced), guild.id)
        await self.game.start()
        if self.settings.journal_enabled:
            from bot.journal.server import JournalServer

            self.journal = JournalServer(self.store, self.settings)
            try:
                await self.journal.start()
            except OSError as exc:  # the bot plays on without its journal
                log.error("the journal cannot listen on JOURNAL_LISTEN=%s: %s", self.settings.journal_listen, exc)
                self.journal = None
        from bot.runtime import freeze_startup_heap

        freeze_startup_heap()  # libraries and cogs are loaded: keep them out of later GC passes
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="heartbeat")

    async def close(self) -> None:
        """Stop the heartbeat, close the game core (running turns get their grace period), then the
        gateway connection."""
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
        if self.journal is not None:
            await self.journal.close()
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
        """Log the connection and touch the heartbeat file at once (the health check reads it)."""
        log.info("connected as %s (%s) to %d servers", self.user, self.user.id if self.user else None,
                 len(self.guilds))
        with contextlib.suppress(OSError):
            self.heartbeat_path.parent.mkdir(parents=True, exist_ok=True)
            self.heartbeat_path.write_text(f"{time.time():.0f}\n")

    async def on_app_command_error(self, interaction: discord.Interaction,
                                   error: app_commands.AppCommandError) -> None:
        """The ONE place where a slash command's error becomes a sentence for the user (ephemeral).

        A ``BotError``'s ``admin_hint`` is always logged, and appended to the sentence when the caller
        has Manage Server."""
        message, unexpected = describe_error(error)
        original = unwrap_error(error)
        name = interaction.command.qualified_name if interaction.command else None
        if unexpected:
            log.error("command %s failed:\n%s", name, "".join(traceback.format_exception(original)))
        else:
            log.info("command %s refused: %s", name, message)
        hint = original.admin_hint if isinstance(original, BotError) else None
        if hint:
            log.warning("command %s: admin hint: %s", name, hint)
        # After a public defer, Discord shows the first follow-up publicly whatever its flags; the hint
        # then goes in a follow-up of its own, which is private.
        deferred = interaction.response.is_done()
        with contextlib.suppress(discord.HTTPException):
            if hint and is_server_admin(interaction) and not deferred:
                message += admin_note(hint)
            await respond(interaction, message, ephemeral=True)
            if hint and is_server_admin(interaction) and deferred:
                await respond(interaction, admin_note(hint).lstrip("\n"), ephemeral=True)

    async def is_owner(self, user: discord.abc.User) -> bool:
        """Owners are ``DISCORD_OWNER_IDS`` when set, else the application's owner (or team)."""
        if self.settings.discord_owner_ids:
            return user.id in self.settings.discord_owner_ids
        return await super().is_owner(user)


def _close_on_signals(bot: DungeonMasterBot) -> None:
    """SIGTERM (``docker stop``, systemd) and SIGINT close the bot cleanly: a running turn gets
    ``CLOSE_GRACE_SECONDS`` to finish and deliver, the gateway and database close, exit code 0.
    Whatever is not answered by then stays pending in the database and is answered on the next start."""
    loop = asyncio.get_running_loop()
    closing: set[asyncio.Task[None]] = set()  # holds the task: the loop keeps only weak references

    def close(signame: str) -> None:
        log.info("%s received: closing", signame)
        if not bot.is_closed():
            task = loop.create_task(bot.close(), name="close-on-signal")
            closing.add(task)
            task.add_done_callback(closing.discard)

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
    from bot.store import Database, DatabaseUnavailable, Store

    apply_discord_endpoints(settings)
    try:
        database = await Database.connect(settings.database_target, pool_size=settings.database_pool_size)
    except DatabaseUnavailable as exc:
        log.error("cannot open the database: %s", exc)
        print(f"Cannot open the database: {exc}")
        return 1
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(database.close)
        await database.migrate()
        db = database
        llm = await stack.enter_async_context(LLMClient.from_settings(settings))
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
