"""The prompt of a turn, bounded and cache-friendly.

A turn's prompt, in order::

    system     DM persona and rules, campaign (title, setting, tone), content rating and style, and the
               running summary ("the story so far")                          -- cached, byte-identical
    user/asst  the newest story messages that fit ``history_token_budget``: each past turn's actions
               and table notes as ONE user message, the DM's narration as the assistant message
                                                                              -- sticky window, see below
    user       "[Table]: the party now: <sheets>", while a fight runs "[Table]: A fight is running..."
               (``encounter_block``: round, order, every combatant's numbers, whose turn it is),
               "[Table]: What you remember ..." (the lore block of ``bot.game.lore``, within
               ``lore_token_budget``) + this turn's actions, one line each

Why the party sheets come last rather than right after the system message (as first sketched in the
design): hit points, conditions and items change in most combat turns; placed early, every change would
alter the prompt before the whole history and defeat the endpoint's prefix cache. Placed in the final
message, a sheet change only touches the tail. Having a single leading system message and alternating
user/assistant messages also keeps strict chat templates (Mistral, Llama 2 on llama.cpp/Ollama) happy.

The history window is *sticky*: it starts at a fixed message and only jumps forward (to about 60% of
the budget) when the budget is exceeded, so consecutive prompts share the window's beginning too.
Messages are chosen newest-first by their token counts stored at insert time; nothing is recounted.

Player text only ever appears inside user-role messages, labelled with the character's name and
delimited by ``<<<`` ``>>>``; delimiters and brackets inside player text and names are neutralised so a
player cannot close the quote or forge a label. Player-written campaign premises and backstories are
quoted the same way.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

from bot.game.combat import Combatant, Encounter
from bot.models import Campaign, Character, GuildConfig, StoryMessage, Summary, TableSafety

MESSAGE_OVERHEAD_TOKENS = 8  # role + label + delimiters, per history message (estimate, tokens)
JUMP_TO_FRACTION = 0.6

RATING_RULES = {
    "family": "Keep everything suitable for children: no gore, no cruelty, no romance beyond friendship, "
              "no swearing.",
    "teen": "Violence and peril are fine without graphic gore; no sexual content; mild language only.",
    "mature": "Dark themes and graphic violence are allowed when the story calls for them; no sexual "
              "content involving minors, ever.",
}

_NAME_JUNK = re.compile(r"[\[\]<>\x00-\x1f\x7f]+")


@lru_cache(maxsize=1)
def _template() -> str:
    """The DM system prompt template shipped as ``bot/game/prompts/dm_system.md``."""
    return resources.files("bot.game").joinpath("prompts/dm_system.md").read_text(encoding="utf-8")


def quote(text: str) -> str:
    """Player text made safe to put between ``<<<`` and ``>>>``: inner delimiters are neutralised."""
    if "<<<" in text or ">>>" in text:
        text = text.replace("<<<", "< < <").replace(">>>", "> > >")
    return text


@lru_cache(maxsize=4096)
def clean_name(name: str) -> str:
    """A display or character name made safe for a ``[label]``: no brackets, angle brackets or control
    characters, at most 60 characters. (Cached: a table has few names, rendered every turn.)"""
    cleaned = " ".join(_NAME_JUNK.sub(" ", name).split())
    return cleaned[:60] or "someone"


def safety_block(safety: TableSafety | None) -> str:
    """The table's lines and veils as rules of the system message ("" when none are set)."""
    if safety is None or not (safety.lines or safety.veils):
        return ""
    parts = ["Table safety (agreed by the players; always keep it):"]
    if safety.lines:
        parts.append("- Lines, never part of the story in any form: " + "; ".join(quote(x) for x in safety.lines) + ".")
    if safety.veils:
        parts.append("- Veils, may happen but only off screen (fade to black, no detail): "
                     + "; ".join(quote(x) for x in safety.veils) + ".")
    return "\n".join(parts)


def system_prompt(campaign: Campaign, config: GuildConfig, summary: Summary | None = None,
                  safety: TableSafety | None = None) -> str:
    """The one system message: DM persona and rules with the campaign's title, setting and tone, the
    server's content rating and style, the table's lines and veils, and the running summary (if any)."""
    text = _template().format(
        content_rating=config.content_rating, rating_rule=RATING_RULES.get(config.content_rating, ""),
        dm_style=config.dm_style or "classic", title=quote(campaign.title),
        setting=quote(campaign.setting or "(the DM decides)"), tone=quote(campaign.tone or "(the DM decides)"))
    rules = safety_block(safety)
    return text.rstrip("\n") + ("\n\n" + rules if rules else "") + "\n\n" + summary_block(summary)


def summary_block(summary: Summary | None) -> str:
    """The running summary as a section of the system message."""
    if summary is None or not summary.content.strip():
        return "The story so far: the campaign is just beginning."
    return "The story so far (summary of earlier play):\n" + summary.content.strip()


def party_block(party: Sequence[Character]) -> str:
    """The party's current sheets as a compact ``[Table]`` paragraph for the turn's last message."""
    if not party:
        return "[Table]: The party: nobody has joined with a character yet."
    lines = ["[Table]: The party now:"]
    for c in party:
        lines.append(
            f"- {clean_name(c.name)}: level {c.level} {clean_name(c.ancestry)} {clean_name(c.char_class)}, "
            f"HP {c.hp}/{c.max_hp}, AC {c.ac}"
            + (f", conditions: {', '.join(c.conditions)}" if c.conditions else "")
            + (f", carrying: {', '.join(c.inventory)}" if c.inventory else "")
            + f" (played by {clean_name(c.player_name)})"
            + (f". Backstory: <<<{quote(c.backstory)}>>>" if c.backstory else ""))
    return "\n".join(lines)


FOLLOWING_MAX = 8  # monsters named in the encounter block's "play them next" sentence


def _combatant_line(c: Combatant, acting: bool) -> str:
    kind = "player character" if c.kind == "pc" else c.kind
    text = (f"{'>>' if acting else '-'} {clean_name(c.name)} [{c.id}] ({kind}), initiative {c.initiative}: "
            f"HP {c.hp}/{c.max_hp}, AC {c.ac}")
    if c.conditions:
        text += f", conditions: {', '.join(clean_name(x) for x in c.conditions)}"
    if c.dead:
        text += ", DEAD"
    elif c.hp <= 0 and c.kind != "pc":
        text += ", down"
    elif c.unconscious:
        text += (", unconscious and stable" if c.stable else
                 f", unconscious, death saves {c.death_successes} succeeded / {c.death_failures} failed")
    return text


def _following(encounter: Encounter, start: int) -> tuple[list[Combatant], Combatant | None]:
    """After the combatant at ``start``: the monsters/NPCs whose turns come before the next player
    character's, and that player character (None: none can act)."""
    n = len(encounter.combatants)
    monsters: list[Combatant] = []
    for step in range(1, n + 1):
        c = encounter.combatants[(start + step) % n]
        if c.down:
            continue
        if c.kind == "pc":
            return monsters, c
        if step < n:
            monsters.append(c)
    return monsters, None


def encounter_block(encounter: Encounter, acted: Collection[int] = ()) -> str:
    """The running fight as a compact ``[Table]`` paragraph for the turn's last message, beside the
    party's sheets: the round, the initiative order with every combatant's hit points, AC,
    conditions and death saves (the DM sees the numbers; the table's tracker words them), whose
    turn it is, and what this turn resolves.

    Args:
        encounter: the fight (player characters' numbers synced with their sheets).
        acted: user ids of the players whose actions this turn answers: when the combatant whose turn
            it is belongs to one of them, the turn resolves that character's action.
    """
    active = encounter.active
    lines = [f"[Table]: A fight is running; the game keeps its numbers. Round {encounter.round}, initiative "
             "order (>> marks whose turn it is):"]
    lines += [_combatant_line(c, c is active) for c in encounter.combatants]
    if active is None:
        lines.append("Nobody's turn has begun: call end_turn to begin round 1.")
        return "\n".join(lines)
    monsters, next_pc = _following(encounter, encounter.current % len(encounter.combatants))
    names = ", ".join(clean_name(m.name) for m in monsters[:FOLLOWING_MAX]) + (
        ", ..." if len(monsters) > FOLLOWING_MAX else "")
    stop = (f"and stop when it is {clean_name(next_pc.name)}'s turn: ask them what they do." if next_pc is not None
            else "and go on until the fight is decided.")
    who = clean_name(active.name)
    if active.kind == "pc" and active.player_id in acted:
        then = (f"then play the monsters whose turns follow ({names}) with the attack tool, calling end_turn after "
                "each, " if monsters else "")
        lines.append(f"This turn resolves {who}'s action: resolve it with the tools (attack, damage, heal...), "
                     f"call end_turn, {then}{stop}")
    elif active.kind == "pc":
        lines.append(f"It is {who}'s turn, but their player has not acted yet: answer the others in the scene "
                     f"without giving them a turn out of order, ask {who} what they do, and do not end {who}'s turn.")
    else:
        more = f"then the monsters after it ({names}) the same way, " if monsters else ""
        lines.append(f"It is {who}'s turn: play it with the attack tool and call end_turn, {more}{stop}")
    lines.append("Others who spoke are answered in the scene. Every hit point changes through the tools; "
                 "call end_encounter when the fight is over.")
    return "\n".join(lines)


def label(msg: StoryMessage) -> str:
    """How a player's action is labelled: ``Aria (player: bob)``, or ``bob (no character yet)``."""
    return _label(msg.character_name, msg.author_name)


@lru_cache(maxsize=4096)
def _label(character_name: str | None, author_name: str) -> str:
    if character_name:
        return f"{clean_name(character_name)} (player: {clean_name(author_name)})"
    return f"{clean_name(author_name)} (no character yet)"


def line(msg: StoryMessage) -> str:
    """One non-DM story message as a line of a user message: a delimited action or a table note."""
    if msg.role == "system":
        return f"[Table]: {msg.content}"
    return f"[{label(msg)}]: <<<{quote(msg.content)}>>>"


def render(msg: StoryMessage) -> dict[str, Any]:
    """A single stored story message as a chat message (DM → assistant, anything else → user)."""
    if msg.role == "dm":
        return {"role": "assistant", "content": msg.content}
    return {"role": "user", "content": line(msg)}


def render_history(window: Sequence[StoryMessage]) -> list[dict[str, Any]]:
    """The history window as alternating chat messages: consecutive actions and table notes become ONE
    user message (one line each), each DM reply an assistant message. Leading DM replies (without the
    actions they answered) are dropped so the history starts with a user message."""
    out: list[dict[str, Any]] = []
    lines: list[str] = []
    for msg in window:
        if msg.role == "dm":
            if lines:
                out.append({"role": "user", "content": "\n".join(lines)})
                lines = []
            if out:
                out.append({"role": "assistant", "content": msg.content})
        else:
            lines.append(line(msg))
    if lines:
        out.append({"role": "user", "content": "\n".join(lines)})
    return out


def render_turn(party_text: str, actions: Sequence[StoryMessage], lead: str = "", lore: str = "",
                encounter: str = "") -> dict[str, Any]:
    """The turn's last user message: ``lead`` (table notes since the last reply, if any), the party's
    sheets, the encounter block (``encounter``, while a fight runs), the lore block (``lore``, if
    any), then this turn's actions, one line each, in order."""
    parts = [lead, party_text, encounter, lore, "\n".join(line(a) for a in actions)]
    return {"role": "user", "content": "\n\n".join(p for p in parts if p)}


def render_actions(actions: Sequence[StoryMessage]) -> dict[str, Any]:
    """This turn's actions alone as ONE user message (one line per action, in order)."""
    return {"role": "user", "content": "\n".join(line(a) for a in actions)}


def build_prompt(system: str, window: Sequence[StoryMessage], party_text: str,
                 actions: Sequence[StoryMessage], *, lore: str = "", encounter: str = "") -> list[dict[str, Any]]:
    """The whole prompt of a turn (a new list; nothing passed in is mutated).

    Args:
        system: the cached ``system_prompt`` text.
        window: history messages chosen by ``HistoryWindow.select``, oldest first.
        party_text: the cached ``party_block`` text.
        actions: this turn's actions, oldest first.
        lore: the turn's "what you remember" block (``bot.game.lore``), "" for none; it goes in the
            last message, after the party's sheets, so it never changes the cached prefix.
        encounter: the running fight's ``encounter_block``, "" outside combat; in the last message,
            right after the party's sheets (likewise outside the cached prefix).
    """
    history = render_history(window)
    lead = ""
    if history and history[-1]["role"] == "user":  # table notes after the last reply: same message
        lead = history.pop()["content"]
    return [{"role": "system", "content": system}, *history, render_turn(party_text, actions, lead, lore, encounter)]


def message_cost(msg: StoryMessage) -> int:
    """Tokens a history message costs in the prompt: its stored count plus the label overhead."""
    return msg.token_count + MESSAGE_OVERHEAD_TOKENS


class HistoryWindow:
    """Chooses which history messages go into the prompt, keeping the start sticky.

    ``start_id`` is the id of the first message in the window (0: the start of the history). It only
    moves forward; when that message leaves the history (folded into the summary, undone), the
    window starts at the beginning of what is left.
    """

    __slots__ = ("start_id",)

    def __init__(self) -> None:
        self.start_id = 0

    def select(self, history: Sequence[StoryMessage], budget: int) -> list[StoryMessage]:
        """Messages of ``history`` (oldest first, ids ascending) from the sticky start that fit
        ``budget`` tokens (``message_cost`` each).

        When the messages from the current start exceed the budget, the start jumps forward so that
        about 60% of the budget is used (newest first), leaving room to grow before the next jump. The
        window then starts at a player action, so no reply appears without what it answered.
        """
        first = 0
        if self.start_id:  # by identity, not by id order: ids are not monotonic in story order
            for i, m in enumerate(history):
                if m.id == self.start_id:
                    first = i
                    break
        total = 0
        for i in range(first, len(history)):
            total += history[i].token_count
        total += MESSAGE_OVERHEAD_TOKENS * (len(history) - first)
        if total <= budget:
            return list(history[first:])
        target = int(budget * JUMP_TO_FRACTION)
        used = 0
        cut = len(history)
        while cut > first:
            cost = message_cost(history[cut - 1])
            if used + cost > target and cut < len(history):
                break
            used += cost
            cut -= 1
        # Start at a turn boundary: skip leading DM replies / notes that lack their actions.
        while cut < len(history) - 1 and history[cut].role != "player":
            cut += 1
        if cut < len(history):
            self.start_id = history[cut].id
        return list(history[cut:])
