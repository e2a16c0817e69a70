"""Recap and export: the story as Markdown for people to read. Pure functions, no model call."""

from __future__ import annotations

from collections.abc import Sequence

from bot.game.session import GameSession
from bot.models import Campaign, Character, StoryMessage

RECAP_TURN_MESSAGES = 12  # player and DM messages shown under "Latest turns"


def recap(session: GameSession) -> str:
    """The story so far: the running summary and the latest turns."""
    parts = [f"## {session.campaign.title} — the story so far"]
    if session.summary is not None:
        parts.append(session.summary.content)
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


def export_markdown(campaign: Campaign, party: Sequence[Character], messages: Sequence[StoryMessage]) -> str:
    """The whole transcript: title, setting, party, every turn with its actions, table notes (dice,
    sheet changes) and the DM's reply; actions still waiting are marked.

    Args:
        campaign: the campaign.
        party: the active characters.
        messages: every live (not undone) story message, oldest first.
    """
    c = campaign
    lines = [f"# {c.title}", "", f"*Setting:* {c.setting or '—'}  ", f"*Tone:* {c.tone or '—'}", "",
             "## Party", ""]
    lines += [f"- **{p.name}**, {p.ancestry} {p.char_class} (level {p.level}, HP {p.hp}/{p.max_hp}, "
              f"AC {p.ac}) — played by {p.player_name}" for p in party] or ["- (nobody)"]
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
