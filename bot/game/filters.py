"""Which channel messages are for the DM: a pure function over the message and the server's options.

Ignored (never stored as actions), with the ``Intake.reason`` word:

- ``bot``: another bot wrote it (Avrae, music bots, ...).
- ``empty``: nothing to answer: blank, or no word at all (``1``, ``y``, ``...``, an emoji) — such
  lines are answers to another bot's menu or table chatter, not actions.
- ``channel_not_allowed``: the server limits the DM to other channels.
- ``prefix``: another bot's command (configured prefixes, ``!`` by default, so Avrae's ``!roll`` stays
  Avrae's).
- ``ooc``: out of character: ``((...))``, ``//...``, ``OOC:``/``OOC -``/``[OOC]``/``(OOC)`` at the
  start, or a message wholly inside one pair of parentheses (``(gah, disadvantage)``), the common
  Discord role-play convention for an aside. ``I (carefully) open the door`` stays in character.
- ``not_mentioned``: "mention" turn mode and the message neither mentions nor replies to the bot.

``/act`` (``explicit_action``) is always in character: only bots, blanks and disallowed channels are
ignored for it.

Refused (the author is told why): text longer than ``max_input_chars`` characters, never cut silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bot.game.api import IncomingMessage, IntakeReason
from bot.models import GuildConfig

_OOC = re.compile(r"^\s*(\(\(|//|\[\s*ooc\s*\]|\(\s*ooc\s*\)|ooc\s*[:\-])", re.IGNORECASE)
_WRAPPED = re.compile(r"^\([^()]*\)$", re.DOTALL)
_WORD = re.compile(r"\w\w", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Verdict:
    """``status`` is "act", "ignored" or "refused"; ``reason`` a short word (see module docstring);
    ``message`` the sentence for the author of a refused message."""

    status: Literal["act", "ignored", "refused"]
    reason: IntakeReason = ""
    message: str | None = None


def is_ooc(text: str) -> bool:
    """True for out-of-character text (see module docstring). ``text`` is the raw message."""
    stripped = text.strip()
    return bool(_OOC.match(stripped) or _WRAPPED.match(stripped))


def has_words(text: str) -> bool:
    """True when ``text`` holds at least one run of two letters or digits (a word worth answering)."""
    return bool(_WORD.search(text))


def too_long_message(length: int, limit: int) -> str:
    """The refusal sentence for a message of ``length`` characters over ``limit``."""
    return (f"That message is {length:,} characters; the DM reads at most {limit:,}. Split it into "
            "shorter actions — nothing was sent to the DM.")


def classify(msg: IncomingMessage, config: GuildConfig, *, max_input_chars: int) -> Verdict:
    """Decide what to do with a message (see module docstring). Pure: no I/O, no clock.

    Args:
        msg: the message as the adapter saw it.
        config: the server's effective options (prefixes, allowed channels, turn mode).
        max_input_chars: longest accepted message, characters.
    Returns:
        ``Verdict("act")``, ``Verdict("ignored", reason)`` or ``Verdict("refused", reason, message)``.
    """
    if msg.author_is_bot:
        return Verdict("ignored", "bot")
    text = msg.content.strip()
    if not text:
        return Verdict("ignored", "empty")
    if config.allowed_channel_ids and msg.channel_id not in config.allowed_channel_ids:
        return Verdict("ignored", "channel_not_allowed")
    if not msg.explicit_action:
        if any(text.startswith(p) for p in config.ignored_prefixes if p):
            return Verdict("ignored", "prefix")
        if is_ooc(text):
            return Verdict("ignored", "ooc")
        if config.turn_mode == "mention" and not (msg.mentions_bot or msg.replies_to_bot):
            return Verdict("ignored", "not_mentioned")
        if not has_words(text):
            return Verdict("ignored", "empty")
    if len(text) > max_input_chars:
        return Verdict("refused", "too_long", too_long_message(len(text), max_input_chars))
    return Verdict("act")
