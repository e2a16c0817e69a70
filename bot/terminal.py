"""Terminal play: ``python -m bot play`` runs a campaign in the terminal with the same game core and
database as the Discord bot, against whatever OpenAI-compatible endpoint the settings name.

Lines like ``Aria: I search the altar`` are actions by different players (each name is a player with a
stable id); a line without a name is played by ``You``. Commands:
``/start <title>``, ``/join <name> <class> <ancestry> [backstory]`` (as the last named player, or
``Name: /join ...``), ``/roll <expression> [reason]``, ``/recap``, ``/status``, ``/export``,
``/undo``, ``/retry``, ``/pause``, ``/resume``, ``/end``, ``/help``, ``/quit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import zlib
from collections.abc import AsyncIterator
from typing import IO

from bot.config import Settings
from bot.errors import BotError
from bot.game.api import Actor, CharacterSheetInput, ChannelRef, DMReply, IncomingMessage

HELP = __doc__.split("Commands:", 1)[1].strip() if __doc__ else ""


def player_id(name: str) -> int:
    """A stable fake user id for a player name (CRC32, so the same name maps to the same player)."""
    return zlib.crc32(name.strip().casefold().encode()) or 1


class TerminalNarrator:
    """Prints DM replies and dice breakdowns to ``out``."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    async def deliver(self, reply: DMReply) -> None:
        for roll in reply.rolls:
            who = roll.character_name or roll.roller_name
            self.out.write(f"  [dice] {who} ({roll.reason}): {roll.breakdown}\n")
        label = "DM" if reply.kind != "notice" else "DM (note)"
        self.out.write(f"\n{label}: {reply.text}\n\n")
        self.out.flush()

    @contextlib.asynccontextmanager
    async def thinking(self, channel_id: int) -> AsyncIterator[None]:
        self.out.write("  (the DM is thinking…)\n")
        self.out.flush()
        yield


async def _lines(stream: IO[str]) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, stream.readline)
        if not line:
            return
        yield line.rstrip("\n")


async def run_terminal(game: object, *, channel_id: int, inp: IO[str], out: IO[str]) -> None:
    """Read lines from ``inp`` and play them through ``game`` (a ``GameAPI``) until EOF or /quit."""
    where = ChannelRef(guild_id=None, channel_id=channel_id)
    current = "You"
    counter = 0
    async for raw in _lines(inp):
        line = raw.strip()
        if not line:
            continue
        name, sep, rest = line.partition(":")
        if sep and name and len(name) <= 40 and not name.startswith("/") and " " not in name.strip():
            current, line = name.strip(), rest.strip()
        actor = Actor(user_id=player_id(current), name=current, is_admin=True, is_owner=True)
        try:
            if line.startswith("/"):
                cmd, _, arg = line[1:].partition(" ")
                cmd = cmd.lower()
                if cmd in ("quit", "exit"):
                    return
                if cmd == "help":
                    out.write(HELP + "\n")
                elif cmd == "start":
                    c = await game.start_campaign(where, actor, title=arg or "A New Adventure")  # type: ignore[attr-defined]
                    out.write(f"Campaign '{c.title}' begins. /join a character, then act.\n")
                elif cmd == "join":
                    parts = arg.split(maxsplit=3)
                    if len(parts) < 3:
                        out.write("Usage: /join <name> <class> <ancestry> [backstory]\n")
                        continue
                    ch = await game.join(where, Actor(player_id(current), current, True, True),  # type: ignore[attr-defined]
                                         CharacterSheetInput(parts[0], parts[1], parts[2],
                                                             parts[3] if len(parts) > 3 else ""))
                    out.write(f"{ch.name} ({ch.ancestry} {ch.char_class}, HP {ch.hp}, AC {ch.ac}) joins.\n")
                elif cmd == "roll":
                    expr, _, reason = arg.partition(" ")
                    r = await game.roll(where, actor, expr, reason)  # type: ignore[attr-defined]
                    out.write(f"  [dice] {r.character_name or r.roller_name}: {r.breakdown}\n")
                elif cmd == "recap":
                    out.write(await game.recap(where) + "\n")  # type: ignore[attr-defined]
                elif cmd == "export":
                    out.write(await game.export_markdown(where) + "\n")  # type: ignore[attr-defined]
                elif cmd == "status":
                    st = await game.status(where)  # type: ignore[attr-defined]
                    party = ", ".join(f"{p.name} HP {p.hp}/{p.max_hp}" for p in st.party) or "nobody"
                    out.write(f"{st.campaign.title} ({st.campaign.status}), turn {st.campaign.turn}; "
                              f"party: {party}; waiting: {st.pending_actions}\n")
                elif cmd == "undo":
                    u = await game.undo(where, actor)  # type: ignore[attr-defined]
                    out.write(f"Turn {u.turn} taken back.\n")
                elif cmd == "retry":
                    await game.retry(where, actor)  # type: ignore[attr-defined]
                elif cmd in ("pause", "resume", "end"):
                    method = {"pause": game.pause_campaign, "resume": game.resume_campaign,  # type: ignore[attr-defined]
                              "end": game.end_campaign}[cmd]  # type: ignore[attr-defined]
                    c = await method(where, actor)
                    out.write(f"Campaign '{c.title}' is now {c.status}.\n")
                else:
                    out.write(f"Unknown command /{cmd}. /help lists them.\n")
            else:
                counter += 1
                intake = await game.handle_message(IncomingMessage(  # type: ignore[attr-defined]
                    guild_id=None, channel_id=channel_id, author_id=actor.user_id, author_name=current,
                    content=line))
                if intake.status == "refused":
                    out.write(f"  ({intake.player_message})\n")
                elif intake.status == "ignored" and intake.reason == "no_campaign":
                    out.write("  (no campaign yet: /start <title>)\n")
        except BotError as exc:
            out.write(f"  ({exc.player_message})\n")
        out.flush()


async def play(settings: Settings, *, channel_id: int = 1, inp: IO[str] | None = None,
               out: IO[str] | None = None, llm: object | None = None) -> int:
    """Run terminal play until EOF or /quit; waits for outstanding turns before returning.

    Returns the exit code (0). ``llm`` defaults to ``LLMClient.from_settings(settings)``.
    """
    from bot.game.sessions import Game
    from bot.store import Database, Store

    inp = inp or sys.stdin
    out = out or sys.stdout
    narrator = TerminalNarrator(out)
    async with Database.open(settings.database_path, migrate=True) as db:
        client = llm
        close_client = None
        if client is None:
            from bot.llm import LLMClient

            client = LLMClient.from_settings(settings)
            close_client = client
        game = Game(store=Store(db), llm=client, settings=settings, narrator=narrator)  # type: ignore[arg-type]
        await game.start()
        out.write("AI Dungeon Master — terminal play. /help for commands.\n")
        try:
            await run_terminal(game, channel_id=channel_id, inp=inp, out=out)
            # let the last collected turn finish before leaving
            for _ in range(600):
                busy = [s for s in game.sessions.values() if s.pending or s.busy]
                if not busy:
                    break
                await asyncio.sleep(0.1)
        finally:
            await game.close()
            if close_client is not None:
                await close_client.aclose()  # type: ignore[attr-defined]
    return 0
