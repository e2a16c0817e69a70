"""Which channel messages are for the DM: a pure function over the message and the server's options.

Ignored (never stored as actions): other bots, empty text, other bots' commands (configured prefixes,
``!`` by default, so Avrae's ``!roll`` stays Avrae's), and out-of-character text: ``((...))``,
``//...``, ``OOC:``/``[OOC]``/``(OOC)`` at the start. In "mention" mode only messages that mention or
reply to the bot count. ``/act`` (``explicit_action``) is always in character.
Refused (the author is told why): text longer than ``max_input_chars``, never cut silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.game.api import IncomingMessage
from bot.models import GuildConfig

_OOC = re.compile(r"^\s*(\(\(|//|\[\s*ooc\s*\]|\(\s*ooc\s*\)|ooc\s*[:\-])", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Verdict:
    """``status`` is "act", "ignored" or "refused"; ``reason`` a short word; ``message`` for refusals."""

    status: str
    reason: str = ""
    message: str | None = None


def is_ooc(text: str) -> bool:
    """True for out-of-character text: ``((...))``, ``//...``, ``OOC: ...``, ``[OOC] ...``."""
    return bool(_OOC.match(text))


def classify(msg: IncomingMessage, config: GuildConfig, *, max_input_chars: int) -> Verdict:
    """Decide what to do with a message (see module docstring). Pure: no I/O."""
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
    if len(text) > max_input_chars:
        return Verdict("refused", "too_long",
                       f"That message is {len(text):,} characters; the DM reads at most "
                       f"{max_input_chars:,}. Split it into shorter actions — nothing was sent to the DM.")
    return Verdict("act")
