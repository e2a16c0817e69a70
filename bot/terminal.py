"""Terminal play: ``python -m bot play`` runs a campaign in the terminal with the same game core and
database as the Discord bot, against whatever OpenAI-compatible endpoint the settings name.

Every line is typed "as" a player. ``Aria: I search the altar`` is an action by the player Aria (each
name maps to a stable player id, so several people can share one keyboard); a line without a name is
played by the last named player (``You`` at first). Lines for the DM go through the same filters as on
Discord (``((out of character))`` and ``!commands`` are not sent) and the same group turns: actions
typed within the turn window become one DM reply.

Commands (also ``Name: /command`` to run one as that player)::

    /start <title> [| setting [| tone]]   start a campaign in this terminal "channel"
    /join <name> <class> <ancestry> [backstory]
    /sheet [name]   /party   /status   /recap [chapter]   /export [file.md]   /search <words>
    /lore [kind]   /lore show <name>   /lore history <name>   /lore forget <name>
    /lore add [secret] <kind> <name> [| description [| alias, alias]]   (kinds: npc place faction item quest fact)
    /lore edit <name> | <field>: <value> [| ...]   (name aliases description kind status secret)
    /lore pin <name>   /lore unpin <name>   /lore revert <name> <change number>
    /combat [show]   /combat add <monster or party member> [count]   /combat init [roll]
    /combat next   /combat remove <name>   /combat end   (the tracker prints as the fight changes)
    /pace <auto|live|rounds|default> [deadline hours] [reminder share]   /away (the DM stops waiting for you)
    /roll <dice> [reason]   /undo   /retry   /pause   /resume   /end   /help   /quit

The terminal player is the campaign's admin, so every command is allowed. Commands wait until the DM
has answered the actions already typed, so their output follows the story.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
import time
import zlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from bot.config import Settings
from bot.errors import BotError, UserInputError
from bot.game.api import (
    Actor,
    ChannelRef,
    CharacterSheetInput,
    DMReply,
    GameAPI,
    IncomingMessage,
    LoreEdit,
    TrackerView,
)
from bot.game.lorebook import LORE_KINDS, split_aliases
from bot.game.pace import pace_line
from bot.models import LoreEntry, RollRecord, SearchHit

if TYPE_CHECKING:
    from bot.game.ports import ModelPort

log = logging.getLogger(__name__)

HELP = (__doc__ or "").split("Commands (", 1)[-1].split("::", 1)[-1].split("The terminal player", 1)[0].rstrip()
_SPEAKER = re.compile(r"^([^\s:/][^\s:]{0,39}):(?:\s+(.*))?$", re.DOTALL)
IGNORED_NOTES = {"ooc": "out of character: not sent to the DM", "prefix": "another bot's command: not sent",
                 "paused": "the campaign is paused: /resume", "no_campaign": "no campaign yet: /start <title>",
                 "empty": "nothing for the DM to answer"}
DRAIN_SECONDS = 300.0


class TerminalGame(GameAPI, Protocol):
    """What terminal play needs of the core: ``GameAPI`` plus waiting until typed actions are answered
    (one person types for the whole table, so each command first lets the DM catch up)."""

    async def drain(self, timeout: float = ...) -> bool:
        """Wait until no actions are pending or running; False if ``timeout`` seconds passed first."""
        ...


def player_id(name: str) -> int:
    """A stable fake user id for a player name (CRC32 of the case-folded name, never 0)."""
    return zlib.crc32(name.strip().casefold().encode()) or 1


def split_speaker(line: str, current: str) -> tuple[str, str]:
    """``"Aria: I look"`` -> ``("Aria", "I look")``; a line without a leading ``Name:`` (a name of up
    to 40 characters without spaces) keeps ``current`` as the speaker."""
    match = _SPEAKER.match(line)
    if match:
        return match.group(1), (match.group(2) or "").strip()
    return current, line


def tracker_text(view: TrackerView) -> str:
    """The tracker as terminal lines: ``[combat]`` and its title, then the initiative order."""
    return "\n".join([f"[combat] {view.title}", *(f"  {line}" for line in view.lines)])


def _label(kind: str) -> str:
    return {"notice": "DM (note)", "retry": "DM (again)", "recovered": "DM (picking up)"}.get(kind, "DM")


def _dice_lines(rolls: Sequence[RollRecord]) -> str:
    out = []
    for roll in rolls:
        who = roll.character_name or roll.roller_name
        why = f" ({roll.reason})" if roll.reason else ""
        out.append(f"  [dice] {who}{why}: {roll.breakdown}\n")
    return "".join(out)


class TerminalReplyStream:
    """A reply printed as the model writes it: new text is appended as it comes; a terminal cannot
    take text back, so when the guard corrects what was printed (or the model starts over) the
    reply is printed again whole, marked as corrected. Never raises for a closed stream."""

    def __init__(self, out: IO[str], head: DMReply) -> None:
        self.out = out
        self.head = head
        self.printed = ""
        self.dice_shown = 0
        self.started = False

    def _write(self, text: str) -> None:
        try:
            self.out.write(text)
            self.out.flush()
        except (OSError, ValueError) as exc:
            log.warning("could not print a reply: %s", exc)

    async def show(self, text: str, rolls: tuple[RollRecord, ...] = ()) -> None:
        """Print what is new since the last call (the dice first, the first time)."""
        head = ""
        if not self.started:
            self.started = True
            head = f"{_dice_lines(rolls)}\n{_label(self.head.kind)}: "
            self.dice_shown = len(rolls)
        if text.startswith(self.printed):
            self._write(head + text[len(self.printed):])
        else:
            self._write(f"{head}\n  (the DM corrects that)\n{_label(self.head.kind)}: {text}")
        self.printed = text

    async def finish(self, reply: DMReply) -> None:
        """Print the rest of ``reply`` (or all of it again, marked, when it differs from what was printed)."""
        if not self.started:
            await TerminalNarrator(self.out).deliver(reply)
            return
        if reply.text.startswith(self.printed):
            rest = reply.text[len(self.printed):]
        else:
            rest = f"\n  (the DM corrects that)\n{_label(reply.kind)}: {reply.text}"
        self._write(f"{rest}\n{_dice_lines(reply.rolls[self.dice_shown:])}\n")

    async def abandon(self, text: str) -> bool:
        """Print the notice after what was printed (a terminal cannot take text back)."""
        self._write(f"\n\n{_label('notice')}: {text}\n\n")
        return True


class TerminalNarrator:
    """Prints DM replies (with dice breakdowns) and notices to ``out``."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    async def deliver(self, reply: DMReply) -> None:
        """Print ``reply``. Never raises for a closed stream (logs instead)."""
        try:
            self.out.write(f"{_dice_lines(reply.rolls)}\n{_label(reply.kind)}: {reply.text}\n\n")
            self.out.flush()
        except (OSError, ValueError) as exc:
            log.warning("could not print a reply: %s", exc)

    def stream(self, head: DMReply) -> TerminalReplyStream:
        """Print a reply as it is written (``TerminalReplyStream``)."""
        return TerminalReplyStream(self.out, head)

    async def show_tracker(self, channel_id: int, campaign_id: int, view: TrackerView) -> None:
        """Print the combat tracker (the same text Discord shows in its tracker embed)."""
        try:
            self.out.write(f"\n{tracker_text(view)}\n\n")
            self.out.flush()
        except (OSError, ValueError) as exc:
            log.warning("could not print the tracker: %s", exc)

    @contextlib.asynccontextmanager
    async def thinking(self, channel_id: int) -> AsyncIterator[None]:
        """Print a one-line "thinking" marker."""
        with contextlib.suppress(OSError, ValueError):
            self.out.write("  (the DM is thinking…)\n")
            self.out.flush()
        yield


async def _lines(stream: IO[str]) -> AsyncIterator[str]:
    """Lines of ``stream`` without blocking the event loop (read in a worker thread)."""
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, stream.readline)
        if not line:
            return
        yield line.rstrip("\r\n")


async def run_terminal(game: TerminalGame, *, channel_id: int, inp: IO[str], out: IO[str]) -> None:
    """Read lines from ``inp`` and play them through ``game`` (a ``GameAPI``) until EOF or ``/quit``.

    Errors the core raises on purpose (``BotError``) are printed as their player message; the loop
    goes on.
    """
    where = ChannelRef(guild_id=None, channel_id=channel_id)
    current = "You"
    async for raw in _lines(inp):
        line = raw.strip()
        if not line:
            continue
        current, line = split_speaker(line, current)
        if not line:
            continue
        actor = Actor(user_id=player_id(current), name=current, is_admin=True, is_owner=True)
        try:
            if line.startswith("/"):
                if await _command(game, where, actor, line, out) is False:
                    return
            else:
                intake = await game.handle_message(IncomingMessage(
                    guild_id=None, channel_id=channel_id, author_id=actor.user_id, author_name=current,
                    content=line))
                if intake.status == "refused":
                    out.write(f"  ({intake.player_message})\n")
                elif intake.status == "ignored" and intake.reason in IGNORED_NOTES:
                    out.write(f"  ({IGNORED_NOTES[intake.reason]})\n")
        except BotError as exc:
            out.write(f"  ({exc.player_message})\n")
        out.flush()


async def _command(game: TerminalGame, where: ChannelRef, actor: Actor, line: str, out: IO[str]) -> bool:
    """Run one ``/command``. Returns False for ``/quit``."""
    cmd, _, arg = line[1:].partition(" ")
    cmd, arg = cmd.lower(), arg.strip()
    if cmd in ("quit", "exit", "q"):
        return False
    if cmd == "help":
        out.write(HELP.strip("\n") + "\n")
        return True
    await game.drain(DRAIN_SECONDS)  # answer what was already typed first
    if cmd == "start":
        title, _, rest = arg.partition("|")
        setting, _, tone = rest.partition("|")
        c = await game.start_campaign(where, actor, title=title.strip() or "A New Adventure",
                                      setting=setting.strip(), tone=tone.strip())
        out.write(f"Campaign '{c.title}' begins. Join with /join <name> <class> <ancestry>, then act.\n")
    elif cmd == "join":
        parts = arg.split(maxsplit=3)
        if len(parts) < 3:
            out.write("Usage: /join <name> <class> <ancestry> [backstory]\n")
            return True
        ch = await game.join(where, actor, CharacterSheetInput(parts[0], parts[1], parts[2],
                                                               parts[3] if len(parts) > 3 else ""))
        out.write(f"{ch.name} ({ch.ancestry} {ch.char_class}, HP {ch.hp}/{ch.max_hp}, AC {ch.ac}) joins "
                  f"the party, played by {actor.name}.\n")
    elif cmd in ("sheet", "character"):
        ch = await game.character(where, user_id=None if arg else actor.user_id, name=arg or None)
        extra = "".join([f"; conditions: {', '.join(ch.conditions)}" if ch.conditions else "",
                         f"; carrying: {', '.join(ch.inventory)}" if ch.inventory else ""])
        out.write(f"{ch.name}: level {ch.level} {ch.ancestry} {ch.char_class}, HP {ch.hp}/{ch.max_hp}, "
                  f"AC {ch.ac}{extra}\n")
    elif cmd == "party":
        party = await game.party(where)
        out.write(("\n".join(f"- {c.name} ({c.player_name}): HP {c.hp}/{c.max_hp}" for c in party)
                   or "Nobody has joined yet.") + "\n")
    elif cmd == "roll":
        expr, _, reason = arg.partition(" ")
        r = await game.roll(where, actor, expr, reason)
        out.write(f"  [dice] {r.character_name or r.roller_name}: {r.breakdown}\n")
    elif cmd == "recap":
        if arg and not arg.isdigit():
            out.write("Usage: /recap [chapter number]\n")
            return True
        out.write(await game.recap(where, int(arg) if arg else None) + "\n")
    elif cmd == "search":
        out.write(search_lines(arg, await game.search(where, actor, arg)) + "\n")
    elif cmd == "lore":
        await _lore(game, where, actor, arg, out)
    elif cmd == "combat":
        await _combat(game, where, actor, arg, out)
    elif cmd == "export":
        text = await game.export_markdown(where)
        if arg:
            Path(arg).write_text(text, encoding="utf-8")
            out.write(f"Transcript written to {arg}.\n")
        else:
            out.write(text + "\n")
    elif cmd == "status":
        st = await game.status(where)
        members = ", ".join(f"{p.name} HP {p.hp}/{p.max_hp}" for p in st.party) or "nobody"
        out.write(f"{st.campaign.title} ({st.campaign.status}), turn {st.campaign.turn}; party: {members}; "
                  f"waiting actions: {st.pending_actions}; story messages: {st.story_messages}\n")
        if st.pace is not None:
            out.write(pace_line(st.pace, time.time()) + "\n")
    elif cmd == "pace":
        parts = arg.split()
        if not parts:
            out.write("Usage: /pace <auto|live|rounds|default> [deadline hours] [reminder share]\n")
            return True
        try:
            hours = float(parts[1]) if len(parts) > 1 else None
            share = float(parts[2]) if len(parts) > 2 else None
        except ValueError:
            out.write("Usage: /pace <auto|live|rounds|default> [deadline hours] [reminder share]\n")
            return True
        pace = await game.set_pace(where, actor, pace=parts[0], deadline_hours=hours, reminder_share=share)
        out.write(pace_line(pace, time.time()) + "\n")
    elif cmd == "away":
        away = await game.away(where, actor)
        out.write(f"{actor.name} is {'away: the DM does not wait for them in rounds' if away else 'back'}.\n")
    elif cmd == "undo":
        u = await game.undo(where, actor)
        out.write(f"Turn {u.turn} taken back ({u.messages_undone} messages).\n")
    elif cmd == "retry":
        await game.retry(where, actor)
    elif cmd in ("pause", "resume", "end"):
        method = {"pause": game.pause_campaign, "resume": game.resume_campaign, "end": game.end_campaign}[cmd]
        c = await method(where, actor)
        out.write(f"Campaign '{c.title}' is now {c.status}.\n")
    else:
        out.write(f"Unknown command /{cmd}. /help lists them.\n")
    return True


def entry_line(entry: LoreEntry) -> str:
    """One lorebook entry as a terminal line: name, kind, aliases, status, marks, description."""
    extra = [entry.kind, *([f"aka {', '.join(entry.aliases)}"] if entry.aliases else []),
             *([entry.status] if entry.status else []), *(["pinned"] if entry.pinned else []),
             *(["DM secret"] if entry.secret else [])]
    return f"{entry.name} ({'; '.join(extra)})" + (f": {entry.description}" if entry.description else "")


def search_lines(query: str, hits: Sequence[SearchHit]) -> str:
    """Search results as terminal lines: where each hit is (turn, chapter, lore entry) and its snippet."""
    if not hits:
        return f"Nothing in this campaign matches '{query}'."
    where = {"story": lambda h: f"turn {h.turn}, {h.label}", "chapter": lambda h: f"{h.label}, from turn {h.turn}",
             "lore": lambda h: f"lorebook, {h.label}"}
    return "\n".join(f"- [{where[h.source](h)}] {' '.join(h.snippet.split())}" for h in hits)


LORE_EDIT_FIELDS = ("name", "aliases", "description", "kind", "status", "secret")  # what /lore edit changes


def _lore_edit(spec: str) -> LoreEdit:
    """``"description: A tall vampire | secret: yes"`` -> the ``LoreEdit``. Raises ``UserInputError``."""
    fields: dict[str, Any] = {}
    for part in spec.split("|"):
        key, sep, value = part.partition(":")
        key, value = key.strip().lower(), value.strip()
        if not sep or key not in LORE_EDIT_FIELDS:
            raise UserInputError(f"Write changes as `field: value` with a field among {', '.join(LORE_EDIT_FIELDS)}.")
        if key == "aliases":
            fields[key] = split_aliases(value) if value else []
        elif key == "secret":
            fields[key] = value.lower() in ("yes", "true", "on", "1")
        else:
            fields[key] = value
    return LoreEdit(**fields)


async def _lore(game: TerminalGame, where: ChannelRef, actor: Actor, arg: str, out: IO[str]) -> None:
    """Run one ``/lore ...`` command (see the module docstring)."""
    sub, _, rest = arg.partition(" ")
    sub, rest = sub.lower(), rest.strip()
    if sub in ("", "list") or (sub in LORE_KINDS and not rest):
        kind = sub if sub in LORE_KINDS else (rest or None)
        entries = await game.lore_list(where, actor, kind=kind)
        out.write(("\n".join(f"- {entry_line(e)}" for e in entries) or "The lorebook is empty.") + "\n")
    elif sub == "show":
        out.write(entry_line(await game.lore_show(where, actor, rest)) + "\n")
    elif sub == "add":
        secret = rest.lower().startswith("secret ")
        head, _, tail = (rest[len("secret "):] if secret else rest).partition("|")
        kind, _, name = head.strip().partition(" ")
        description, _, aliases = tail.partition("|")
        if not name.strip():
            out.write("Usage: /lore add [secret] <kind> <name> [| description [| alias, alias]]\n")
            return
        entry = await game.lore_add(where, actor, kind=kind.lower(), name=name, description=description.strip(),
                                    aliases=split_aliases(aliases), secret=secret)
        out.write(f"Added to the lorebook: {entry_line(entry)}\n")
    elif sub == "edit":
        name, _, spec = rest.partition("|")
        entry = await game.lore_edit(where, actor, name, _lore_edit(spec))
        out.write(f"Updated: {entry_line(entry)}\n")
    elif sub == "forget":
        entry = await game.lore_forget(where, actor, rest)
        out.write(f"{entry.name} is out of the lorebook.\n")
    elif sub in ("pin", "unpin"):
        entry = await game.lore_pin(where, actor, rest, sub == "pin")
        out.write(f"{entry.name} is {'pinned' if entry.pinned else 'no longer pinned'}.\n")
    elif sub == "history":
        entry, revisions = await game.lore_history(where, actor, rest)
        out.write(f"{entry.name}, changes oldest first:\n")
        for r in revisions:
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(r.created_at))
            out.write(f"  #{r.id} turn {r.turn}: {r.action} by {r.author_name or r.author_kind} "
                      f"({r.author_kind}), {when}\n")
    elif sub == "revert":
        name, _, number = rest.rpartition(" ")
        if not name.strip() or not number.lstrip("#").isdigit():
            out.write("Usage: /lore revert <name> <change number from /lore history>\n")
            return
        entry = await game.lore_revert(where, actor, name, int(number.lstrip("#")))
        out.write(f"Reverted: {entry_line(entry)}\n")
    else:
        out.write(f"Unknown /lore command '{sub}'. /help lists them.\n")


async def _combat(game: TerminalGame, where: ChannelRef, actor: Actor, arg: str, out: IO[str]) -> None:
    """Run one ``/combat ...`` command (see the module docstring); the tracker itself is printed by
    the narrator after every change."""
    sub, _, rest = arg.partition(" ")
    sub, rest = sub.lower(), rest.strip()
    if sub in ("", "show"):
        out.write(tracker_text(await game.combat_show(where)) + "\n")
        return
    if sub == "add":
        name, count = rest, 1
        head, _, tail = rest.rpartition(" ")
        if head.strip() and tail.isdigit():
            name, count = head.strip(), int(tail)
        if not name:
            out.write("Usage: /combat add <monster or party member> [count]\n")
            return
        change = await game.combat_add(where, actor, name, count)
    elif sub == "init":
        if rest and not rest.lstrip("-").isdigit():
            out.write("Usage: /combat init [your roll's total]\n")
            return
        change = await game.combat_init(where, actor, int(rest) if rest else None)
    elif sub == "next":
        change = await game.combat_next(where, actor)
    elif sub == "remove":
        change = await game.combat_remove(where, actor, rest)
    elif sub == "end":
        change = await game.combat_end(where, actor)
    else:
        out.write(f"Unknown /combat command '{sub}'. /help lists them.\n")
        return
    out.write(f"  ({change.text})\n")


async def play(settings: Settings, *, channel_id: int = 1, inp: IO[str] | None = None,
               out: IO[str] | None = None, llm: ModelPort | None = None) -> int:
    """Run terminal play until EOF or ``/quit``, then wait for the DM to answer what was typed.

    Args:
        settings: process settings (database in ``DATA_DIR``, model endpoint, timings).
        channel_id: the terminal "channel"; each id holds its own campaign.
        inp, out: text streams (default stdin/stdout).
        llm: a ``ModelPort``; default ``LLMClient.from_settings(settings)``.
    Returns the process exit code (0).
    """
    from bot.game.core import Game
    from bot.store import Database, Store

    inp = inp or sys.stdin
    out = out or sys.stdout
    narrator = TerminalNarrator(out)
    async with Database.open(settings.database_target, migrate=True) as db, contextlib.AsyncExitStack() as stack:
        client = llm
        if client is None:
            from bot.llm import LLMClient

            client = await stack.enter_async_context(LLMClient.from_settings(settings))
        game = Game(store=Store(db), llm=client, settings=settings, narrator=narrator)
        await game.start()
        out.write(f"AI Dungeon Master — terminal play (channel {channel_id}, model {settings.dm_model}). "
                  "/help for commands.\n")
        out.flush()
        try:
            await run_terminal(game, channel_id=channel_id, inp=inp, out=out)
            await game.drain(DRAIN_SECONDS)
        finally:
            await game.close()
    return 0
