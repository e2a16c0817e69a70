"""The check step: is the model's narration fit to show the table?

Today it refuses an empty narration (nothing, or only whitespace), which small local models return
often enough; the pipeline then asks once more with a corrective note and, if that fails too, tells
the table and keeps the actions pending. The output guard (chat-template tokens, a player's voice,
repetition, leaks) grows here as further checks of the same shape: text in, usable text or None out.
"""

from __future__ import annotations

from typing import Any

from bot.game.errors import EmptyReply

__all__ = ["CORRECTIVE_NOTE", "EmptyReply", "check", "corrected"]

CORRECTIVE_NOTE = ("[Table]: Your previous answer was empty. Answer now as the DM: narrate what happens "
                   "next in response to the actions above.")


def check(text: str) -> str | None:
    """The narration to show, or None when nothing usable is left of ``text``."""
    text = text.strip()
    return text or None


def corrected(prompt: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``prompt`` with the corrective note added to its last (user) message: a new list; the note
    joins that message rather than following it, so strict chat templates still alternate roles."""
    last = dict(prompt[-1])
    last["content"] = f"{last['content']}\n\n{CORRECTIVE_NOTE}"
    return [*prompt[:-1], last]
