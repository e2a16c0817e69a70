"""Streamed narration: the table reads the DM's reply while the model writes it, through the guard.

The model's text arrives in pieces. After each, ``visible`` runs the whole output guard
(``bot.game.guard``) over everything received and decides what the table may see *now*:

- when the guard cuts the reply (a turn-ending template token, a line in a player's voice, a forged
  ``[Table]`` record, copied sheets, a loop) or fails it (a leak), the stream stops there: the model's
  connection is closed, and what it wrote after the cut is never shown;
- otherwise the guard's text is shown, minus a held-back tail that the next pieces could still turn
  into something the guard removes: an unfinished line that may still become a speaker label
  (``Aria:``, ``[Bram (player: bob)]``, ``User:``), an unclosed ``<...`` or ``[...`` (a template token
  in the making), the beginning of a configured secret, and a half-written word.

Nothing else differs from a whole reply: the text the turn stores is checked by the same guard once
complete (``TurnPipeline.check``), and the adapter's last edit shows exactly that (``finish``), so a
correction (a wrapper quote unwrapped, a repeat cut) replaces what was shown.

``NarrationStream`` is one turn's presenter: it opens the adapter's ``ReplyStream`` once the first
sentence (or ``FIRST_POST_CHARS`` characters) can be shown, then hands it every change.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.game.api import DMReply, Narrator, ReplyStream
from bot.game.guard import SECRET_MIN_CHARS, GuardContext, guard
from bot.models import RollRecord

FIRST_POST_CHARS = 32  # characters of narration that open the first message when no sentence has ended yet
NAME_LABEL_SLACK = 34  # characters a name label may run past the name before its colon (the guard's 30, + markup)
GENERIC_LABELS = ("player", "user", "you", "human", "dm", "gm", "narrator", "assistant", "system", "table",
                  "dungeon master", "game master", "storyteller", "### instruction", "### response", "### input")
GENERIC_LABEL_SLACK = 4  # "Player 2:", "**User**:"
BRACKET_HOLD = 100  # an unclosed "[" at a line's start is held this long (the guard reads 80-character labels)
TOKEN_HOLD = 40  # an unclosed "<" or "[" within this many characters of the end is held
_LEAD = re.compile(r"^\s*(?:[-•>*]\s*)*(?:\*\*|__|\*)?\s*\[?\s*")
_BULLETS = re.compile(r"^[\s\-•>*]*")
_BOUNDARY = re.compile(r"(?:\n|[.!?…][\"')\]*_]*\s)")
_CHECK_AT = ("\n", "<", "[", ":", ".", "!", "?", "…")  # a piece with one of these is checked at once
CHECK_EVERY_SECONDS = 0.15  # otherwise the guard looks at the stream at most this often
_SENTENCE_END = re.compile(r"[.!?…][\"')\]*_]*(?:\s|$)")
_STOPPING = ("secret_leak", "prompt_leak")
NO_CONTEXT = GuardContext()


@dataclass(frozen=True, slots=True)
class StreamView:
    """What the table may see of a reply being written: ``text`` (guard-checked, held-back tail
    removed) and ``stop``: the guard cut or failed the reply, so the stream should end."""

    text: str
    stop: bool


def _may_become_label(line: str, names: Sequence[str]) -> bool:
    """True when the unfinished ``line`` could still grow into a speaker label the guard cuts at."""
    stripped = _BULLETS.sub("", line)
    if stripped.startswith(("[", "**[", "__[")) and "]" not in stripped:
        return len(stripped) < BRACKET_HOLD
    head = _LEAD.sub("", line).casefold()
    if not head:
        return True
    for name, slack in ([(n.casefold(), NAME_LABEL_SLACK) for n in names if n.strip()]
                        + [(g, GENERIC_LABEL_SLACK) for g in GENERIC_LABELS]):
        if name.startswith(head) or (head.startswith(name) and len(head) - len(name) <= slack):
            return True
    return False


def _secret_hold(text: str, secrets: Sequence[str]) -> int:
    """Where a configured secret may be starting in ``text``: the index of the earliest suffix that
    is a prefix of a secret (of ``SECRET_MIN_CHARS`` or more); ``len(text)`` when none."""
    hold = len(text)
    for secret in secrets:
        if len(secret) < SECRET_MIN_CHARS:  # the guard ignores these too (they occur in ordinary words)
            continue
        for k in range(min(len(secret), len(text)), 0, -1):
            if text.endswith(secret[:k]):
                hold = min(hold, len(text) - k)
                break
    return hold


def visible(raw: str, context: GuardContext = NO_CONTEXT) -> StreamView:
    """What may be shown of ``raw`` (everything the model wrote so far), as the module docstring says.

    Args:
        raw: the reply so far, unmodified.
        context: the party's names, the DM rules and the secrets (``bot.game.guard.GuardContext``).
    Returns:
        A ``StreamView``; its text is always a prefix of (or equal to) the guard's text for ``raw``.
    """
    verdict = guard(raw, context)
    if verdict.failed and any(i in _STOPPING for i in verdict.interventions):
        return StreamView("", True)  # a leak: stop at once, show nothing of it
    if verdict.cut and _final_cut(raw, context):
        return StreamView(verdict.text, True)
    if verdict.failed:
        return StreamView("", False)
    text = verdict.text
    hold = _secret_hold(text, context.secrets)
    if not raw.endswith("\n"):
        start = text.rfind("\n") + 1
        if _may_become_label(text[start:], context.names):
            hold = min(hold, start)
    tail_from = max(0, len(text) - TOKEN_HOLD)
    for opener, closer in (("<", ">"), ("[", "]")):
        at = text.rfind(opener, tail_from)
        if at >= 0 and closer not in text[at:]:
            hold = min(hold, at)
    shown = text[:hold]
    following = text[hold:hold + 1] if hold < len(text) else ("" if raw[-1:].isspace() else "more")
    if shown and not shown[-1].isspace() and following and not following.isspace():
        space = max(shown.rfind(" "), shown.rfind("\n"))
        if space > 0 and not _SENTENCE_END.search(shown[-3:]):
            shown = shown[:space]  # a word still being written (or held back)
    return StreamView(shown.rstrip(), False)


def _final_cut(raw: str, context: GuardContext) -> bool:
    """Whether the guard's cut of ``raw`` stands whatever the model writes next: a label, a forged
    record or a template token is final once the words that make it are whole (the last word may
    still be growing: ``### Instruction`` may become ``### Instructions``); a repeat is final once
    its sentence has ended (``The drums beat`` may go on ``faster``)."""
    words_done = raw if raw[-1:].isspace() else raw[:max(raw.rfind(" "), raw.rfind("\n")) + 1]
    by_words = guard(words_done, context)
    if by_words.cut and by_words.cut_by != "repetition":
        return True
    ends = [m.end() for m in _BOUNDARY.finditer(raw)]
    return bool(ends) and guard(raw[:ends[-1]], context).cut


def ready_to_open(text: str) -> bool:
    """True once ``text`` is worth a first message: a sentence has ended, or it has
    ``FIRST_POST_CHARS`` characters."""
    return len(text) >= FIRST_POST_CHARS or _SENTENCE_END.search(text) is not None


class NarrationStream:
    """One turn's narration on its way to the table while the model writes it.

    Args:
        narrator: the adapter; its ``stream(head)`` gives the ``ReplyStream`` (None: no streaming).
        head: the reply being written (channel, turn, kind, campaign, answered messages).
        context: the guard's context for this session.
        rolls: the turn's dice so far (read at each show: the tool rounds add to them).
        opening: the "Previously..." text shown before the narration ("" for none).
    """

    def __init__(self, narrator: Narrator, head: DMReply, context: GuardContext,
                 rolls: Callable[[], Sequence[RollRecord]] = tuple, opening: str = "") -> None:
        self.narrator = narrator
        self.head = head
        self.context = context
        self.rolls = rolls
        self.opening = opening
        self.raw = ""
        self.shown = ""
        self.stopped = False
        self.stream: ReplyStream | None = None
        self.unavailable = False
        self._checked_at = 0.0

    @property
    def opened(self) -> bool:
        """True once something reached the adapter (a message may be in front of the table)."""
        return self.stream is not None

    async def feed(self, delta: str) -> bool:
        """Take the next piece of the model's text; returns False when the guard ended the reply
        (the caller stops the stream). Shows the visible text when it changed."""
        self.raw += delta
        if self.unavailable:  # the adapter shows whole replies: the guard reads the reply once, complete
            return True
        now = time.monotonic()
        if self.opened and not any(c in delta for c in _CHECK_AT) and now - self._checked_at < CHECK_EVERY_SECONDS:
            return True  # plain words: looked at with the next piece that may change the verdict
        self._checked_at = now
        view = visible(self.raw, self.context)
        self.stopped = view.stop
        if view.text != self.shown and (self.opened or ready_to_open(view.text)):
            await self._show(view.text)
        return not view.stop

    async def reset(self) -> None:
        """What the model wrote is not the narration (tools follow, or it is asked again): forget it;
        what was shown is taken back until the next text comes."""
        self.raw = ""
        self.stopped = False
        if self.shown:
            await self._show("")

    async def finish(self, reply: DMReply) -> bool:
        """Show the stored ``reply`` in place of the stream; False when nothing was shown yet (the
        caller delivers it the ordinary way)."""
        if self.stream is None:
            return False
        await self.stream.finish(reply)
        return True

    async def abandon(self, text: str) -> bool:
        """Replace what was shown with the notice ``text``. True when the table now reads it in place
        of the reply; False when nothing was shown or the adapter could not show it (the caller then
        tells the table the ordinary way)."""
        if self.stream is None:
            return False
        return await self.stream.abandon(text)

    async def _show(self, text: str) -> None:
        if self.stream is None:
            if self.unavailable:
                return
            opener = getattr(self.narrator, "stream", None)
            self.stream = opener(self.head) if opener is not None else None
            if self.stream is None:
                self.unavailable = True
                return
        self.shown = text
        body = f"{self.opening}\n\n{text}" if self.opening and text else text
        await self.stream.show(body, tuple(self.rolls()))
