"""Recap and export: the story as Markdown for people to read. Pure functions, no model call.

Neither the recap nor an export without ``include_secrets`` ever shows a secret lorebook entry: a
recap may be posted to the whole table.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from bot.game.session import GameSession
from bot.models import Campaign, Chapter, Character, LoreEntry, StoryMessage

RECAP_TURN_MESSAGES = 12  # player and DM messages shown under "Latest turns"
RECAP_QUESTS = 10  # open quests listed in a recap
KIND_TITLES = {"npc": "People", "place": "Places", "faction": "Factions", "item": "Items", "quest": "Quests",
               "fact": "Facts"}


def day(seconds: float) -> str:
    """UNIX seconds as a UTC date, ``2024-05-01``."""
    return time.strftime("%Y-%m-%d", time.gmtime(seconds))


def chapter_heading(chapter: Chapter) -> str:
    """``Chapter 2 · turns 11–20 · 2024-05-01`` (one date, or ``from – to`` when the span ran over
    several days)."""
    first, last = day(chapter.started_at), day(chapter.ended_at)
    dates = first if first == last else f"{first} – {last}"
    return f"Chapter {chapter.number} · turns {chapter.first_turn}–{chapter.last_turn} · {dates}"


def lore_line(entry: LoreEntry) -> str:
    """One lorebook entry as a Markdown list item: name, aliases, quest status, pin and secret marks,
    description."""
    extra = [f"aka {', '.join(entry.aliases)}"] if entry.aliases else []
    if entry.status:
        extra.append(entry.status)
    if entry.pinned:
        extra.append("pinned")
    if entry.secret:
        extra.append("DM secret")
    head = f"- **{entry.name}**" + (f" ({'; '.join(extra)})" if extra else "")
    return head + (f": {entry.description}" if entry.description else "")


def recap(session: GameSession, *, chapter: Chapter | None = None, chapters: int = 0,
          latest_turns: bool = True) -> str:
    """The story so far, as Markdown: ``chapter`` of the chronicle (or, without one, the running
    summary), a line naming the other chapters when there are several, the open quests the players
    know of (never secrets), and, with ``latest_turns``, the newest ``RECAP_TURN_MESSAGES`` player and
    DM messages.

    Args:
        session: the channel's session (campaign, summary, history, lore).
        chapter: the chapter to show (None: the running summary, if any).
        chapters: how many chapters the chronicle holds.
        latest_turns: False to show the chapter only (an older chapter asked for by number).
    """
    parts = [f"## {session.campaign.title} — the story so far"]
    if chapter is not None:
        parts += [f"### {chapter_heading(chapter)}", chapter.content]
        if chapters > 1:
            parts.append(f"*Chapter {chapter.number} of {chapters}: ask for a recap with a chapter number "
                         f"(1–{chapters}) to read another.*")
    elif session.summary is not None:
        parts.append(session.summary.content)
    if not latest_turns:
        return "\n\n".join(parts)
    quests = [e for e in session.lore if e.kind == "quest" and e.status == "open" and not e.secret]
    if quests:
        parts.append("### Open quests")
        parts.append("\n".join(lore_line(e) for e in quests[:RECAP_QUESTS]))
    recent = [m for m in session.history if m.role in ("dm", "player")][-RECAP_TURN_MESSAGES:]
    if recent:
        parts.append("### Latest turns")
        for m in recent:
            who = "DM" if m.role == "dm" else (m.character_name or m.author_name)
            parts.append(f"**{who}:** {m.content}")
    if len(parts) == 1:
        parts.append("Nothing has happened yet. Type what your character does to begin!")
    return "\n\n".join(parts)


def export_line(m: StoryMessage) -> str:
    """One story message as a Markdown paragraph: the DM's narration, a table note, or an action."""
    if m.role == "dm":
        return f"**DM:** {m.content}"
    if m.role == "system":
        return f"> {m.content}"
    return f"**{m.character_name or m.author_name}:** {m.content}"


def export_markdown(campaign: Campaign, party: Sequence[Character], messages: Sequence[StoryMessage],
                    *, chapters: Sequence[Chapter] = (), lore: Sequence[LoreEntry] = (),
                    include_secrets: bool = False) -> str:
    """The whole transcript: title, setting, party, the lorebook, the chronicle's chapters, every turn
    with its actions, table notes (dice, sheet changes) and the DM's reply; actions still waiting are
    marked.

    Args:
        campaign: the campaign.
        party: the active characters.
        messages: every live (not undone) story message, oldest first.
        chapters: the chronicle, in story order.
        lore: the live lorebook entries.
        include_secrets: True for an admin's export: secret entries are listed (marked "DM secret");
            otherwise they are left out.
    """
    c = campaign
    lines = [f"# {c.title}", "", f"*Setting:* {c.setting or '—'}  ", f"*Tone:* {c.tone or '—'}", "",
             "## Party", ""]
    lines += [f"- **{p.name}**, {p.ancestry} {p.char_class} (level {p.level}, HP {p.hp}/{p.max_hp}, "
              f"AC {p.ac}) — played by {p.player_name}" for p in party] or ["- (nobody)"]
    shown = [e for e in lore if include_secrets or not e.secret]
    if shown:
        lines += ["", "## Lorebook"]
        for kind, title in KIND_TITLES.items():
            of_kind = sorted((e for e in shown if e.kind == kind), key=lambda e: e.name.casefold())
            if of_kind:
                lines += ["", f"### {title}", ""] + [lore_line(e) for e in of_kind]
    if chapters:
        lines += ["", "## Chronicle"]
        for chapter in chapters:
            lines += ["", f"### {chapter_heading(chapter)}", "", chapter.content]
    lines += ["", "## Story", ""]
    answered = sorted((m for m in messages if m.state != "pending"), key=lambda m: (m.turn, m.id))
    waiting = [m for m in messages if m.state == "pending"]
    turn = None
    for m in answered:
        if m.turn != turn:
            turn = m.turn
            lines += [f"### Turn {turn}" if turn else "### Before the first turn", ""]
        lines += [export_line(m), ""]
    if waiting:
        lines += ["### Waiting for the DM", ""]
        lines += [line for m in waiting for line in (export_line(m), "")]
    lines += ["---", "Exported from the AI Dungeon Master."]
    return "\n".join(lines)
