"""Table notes: the story's record of things that happened at the table rather than in the
narration (dice rolls, sheet changes, a character joining), stored as ``system`` story messages so
the model remembers them in later turns. The one place that words them.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.game.ports import TokenCounter
from bot.game.session import GameSession
from bot.models import RollRecord
from bot.store import Store


def roll_line(roll: RollRecord) -> str:
    """Who rolled what for what, and the total: ``Aria 1d20+5 for Perception = 17``. A roll by the
    DM for nobody in particular has no name (``2d6 for damage = 7``)."""
    who = roll.character_name or ("" if roll.by_dm else roll.roller_name)
    why = f" for {roll.reason}" if roll.reason else ""
    return f"{who + ' ' if who else ''}{roll.expression}{why} = {roll.total}"


def rolls_note(rolls: Sequence[RollRecord]) -> str:
    """The table note of some rolls: ``Dice rolled: <roll_line>; <roll_line>``."""
    return "Dice rolled: " + "; ".join(roll_line(r) for r in rolls)


def changes_note(changes: Sequence[str]) -> str:
    """The table note of a turn's sheet changes (``bot.game.tools.describe_change`` sentences)."""
    return "Sheet changes: " + "; ".join(changes)


def with_changes(text: str, changes: Sequence[str]) -> str:
    """The narration as delivered: with a short line listing the sheet changes, if any."""
    if not changes:
        return text
    return f"{text}\n\n*Sheets: {'; '.join(changes)}*"


class TableNotes:
    """Stores table notes in a session's story.

    Args:
        store: where the story is kept.
        count: the token counter (each note is counted once, when stored).
    """

    def __init__(self, store: Store, count: TokenCounter) -> None:
        self.store = store
        self.count = count

    def counted(self, texts: Sequence[str], model: str) -> list[tuple[str, int]]:
        """``texts`` with their token counts for ``model``, as ``complete_turn`` takes them."""
        return [(t, self.count(t, model)) for t in texts]

    async def add(self, session: GameSession, text: str) -> None:
        """Store ``text`` as a table note of the current turn and add it to the session's story."""
        note = await self.store.story.add_system(campaign_id=session.campaign.id, turn=session.campaign.turn,
                                                 content=text, token_count=self.count(text, session.config.model))
        session.add_note(note)
