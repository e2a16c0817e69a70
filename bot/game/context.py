"""The prompt of a turn, bounded and cache-friendly.

Prompt = [system: DM persona, rules, campaign, rating, style] + [system: party sheets] + [system: the
story so far (running summary)] + the newest story messages that fit ``history_token_budget`` + the
turn's actions. The first three are built once and cached until the party, summary or options change,
so they stay byte-identical between turns and endpoints that cache prompt prefixes can reuse them.

The history window is *sticky*: it starts at a fixed message and only jumps forward (to about 60% of
the budget) when the budget is exceeded, so consecutive prompts share the window's beginning too.

Player text only ever appears inside user-role messages, labelled with the character name and
delimited by ``<<<`` ``>>>``; it is never spliced into a system message.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any

from bot.models import Campaign, Character, GuildConfig, StoryMessage, Summary

MESSAGE_OVERHEAD_TOKENS = 8  # role + label + delimiters, per history message (estimate)
JUMP_TO_FRACTION = 0.6

_RATING_RULES = {
    "family": "Keep everything suitable for children: no gore, no cruelty, no romance beyond friendship, no swearing.",
    "teen": "Violence and peril are fine without graphic gore; no sexual content; mild language only.",
    "mature": "Dark themes and graphic violence are allowed when the story calls for them; no sexual content involving minors, ever.",
}


def _template() -> str:
    return resources.files("bot.game").joinpath("prompts/dm_system.md").read_text(encoding="utf-8")


_TEMPLATE: str | None = None


def system_prompt(campaign: Campaign, config: GuildConfig) -> str:
    """The DM persona and rules with the campaign's title, setting, tone and the server's rating/style."""
    global _TEMPLATE  # read-only after first load: the file ships with the package
    if _TEMPLATE is None:
        _TEMPLATE = _template()
    return _TEMPLATE.format(
        content_rating=config.content_rating, rating_rule=_RATING_RULES.get(config.content_rating, ""),
        dm_style=config.dm_style or "classic", title=campaign.title,
        setting=campaign.setting or "(the DM decides)", tone=campaign.tone or "(the DM decides)")


def party_block(party: Sequence[Character]) -> str:
    """The party's sheets as compact text for the prompt."""
    if not party:
        return "The party: nobody has joined yet."
    lines = ["The party (player characters):"]
    for c in party:
        lines.append(
            f"- {c.name}: level {c.level} {c.ancestry} {c.char_class}, HP {c.hp}/{c.max_hp}, AC {c.ac}"
            + (f", conditions: {', '.join(c.conditions)}" if c.conditions else "")
            + (f", carrying: {', '.join(c.inventory)}" if c.inventory else "")
            + f" (played by {c.player_name})"
            + (f". Backstory: {c.backstory}" if c.backstory else ""))
    return "\n".join(lines)


def summary_block(summary: Summary | None) -> str:
    """The running summary as a system message text."""
    if summary is None or not summary.content.strip():
        return "The story so far: the campaign is just beginning."
    return "The story so far (summary of earlier sessions):\n" + summary.content


def label(msg: StoryMessage) -> str:
    """How a player's action is labelled: ``Aria (player: bob)`` or the display name alone."""
    if msg.character_name:
        return f"{msg.character_name} (player: {msg.author_name})"
    return f"{msg.author_name} (no character yet)"


def render(msg: StoryMessage) -> dict[str, Any]:
    """A stored story message as a chat message: player → user (delimited), DM → assistant,
    table notes (rolls, joins) → user with a ``[Table]`` label."""
    if msg.role == "dm":
        return {"role": "assistant", "content": msg.content}
    if msg.role == "system":
        return {"role": "user", "content": f"[Table]: {msg.content}"}
    return {"role": "user", "content": f"[{label(msg)}]: <<<{msg.content}>>>"}


def render_actions(actions: Sequence[StoryMessage]) -> dict[str, Any]:
    """This turn's actions as ONE user message, one line per action, in order."""
    return {"role": "user", "content": "\n".join(f"[{label(a)}]: <<<{a.content}>>>" for a in actions)}


def message_cost(msg: StoryMessage) -> int:
    """Tokens a history message costs in the prompt: its stored count plus the label overhead."""
    return msg.token_count + MESSAGE_OVERHEAD_TOKENS


class HistoryWindow:
    """Chooses which history messages go into the prompt, keeping the start sticky.

    ``start_id`` is the id of the first message in the window; it only moves forward.
    """

    def __init__(self) -> None:
        self.start_id = 0

    def select(self, history: Sequence[StoryMessage], budget: int) -> list[StoryMessage]:
        """Messages of ``history`` (oldest first) from the sticky start that fit ``budget`` tokens.

        When the messages from the current start exceed the budget, the start jumps forward so that
        about 60% of the budget is used, leaving room to grow before the next jump.
        """
        window = [m for m in history if m.id >= self.start_id]
        total = sum(message_cost(m) for m in window)
        if total <= budget:
            return window
        target = int(budget * JUMP_TO_FRACTION)
        kept: list[StoryMessage] = []
        used = 0
        for m in reversed(window):
            cost = message_cost(m)
            if used + cost > target and kept:
                break
            kept.append(m)
            used += cost
        kept.reverse()
        # Start the window at a turn boundary: drop leading DM replies / notes without their actions.
        while len(kept) > 1 and kept[0].role != "player":
            kept.pop(0)
        self.start_id = kept[0].id if kept else self.start_id
        return kept
