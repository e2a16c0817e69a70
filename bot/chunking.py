"""Split long text into Discord-sized messages without breaking a code block, a sentence or a word.

Discord refuses a message content longer than 2,000 characters (Discord API docs, "Create Message":
content up to 2000 characters). ``split_message`` cuts at the best boundary available, in this order:
paragraph (blank line), line, sentence end, then a space; a word is cut only if a single word is longer
than the limit. Code blocks (```` ``` ````) are never split where a boundary outside them exists; when a
single code block is itself longer than the limit, it is closed at the end of one chunk and reopened
(with its language tag) at the start of the next, so each chunk renders as valid Markdown.
"""

from __future__ import annotations

import re

DISCORD_MESSAGE_LIMIT = 2000

_FENCE = re.compile(r"^\s*```(\S*)")
_SENTENCE_END = re.compile(r"[.!?…][\"')\]*_]*\s+")


def _open_fence_after(text: str, start_state: str | None) -> str | None:
    """The language tag of the code block still open at the end of ``text`` (``""`` for no tag), or
    None if no block is open. ``start_state`` is the block open at the start of ``text``."""
    state = start_state
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if match:
            state = None if state is not None else match.group(1)
    return state


def _best_cut(text: str, limit: int, open_at_start: str | None) -> int:
    """Index to cut ``text`` at (1..limit), preferring boundaries outside code blocks."""
    window = text[:limit]
    candidates: list[tuple[int, int]] = []  # (priority, index); lower priority is better
    for pattern, priority in ((r"\n\s*\n", 0), (r"\n", 1)):
        for m in re.finditer(pattern, window):
            candidates.append((priority, m.end()))
    for m in _SENTENCE_END.finditer(window):
        candidates.append((2, m.end()))
    for m in re.finditer(r" +", window):
        candidates.append((3, m.end()))
    # Prefer cuts that leave no code block open; among those the best priority, then the latest.
    best: tuple[int, int, int] | None = None
    for priority, index in candidates:
        if index <= 0 or index > limit:
            continue
        inside = _open_fence_after(text[:index], open_at_start) is not None
        key = (int(inside), priority, -index)
        if best is None or key < best:
            best = key
    if best is None:
        return limit  # one word longer than the limit: cut it
    # Do not accept a tiny first chunk just for a better boundary kind: if the best cut keeps
    # less than a quarter of the window, take the latest cut of any kind outside code instead.
    index = -best[2]
    if index < limit // 4:
        outside = [i for _, i in candidates
                   if _open_fence_after(text[:i], open_at_start) is None and i > index]
        if outside:
            index = max(outside)
    return index


def _chunks(text: str, limit: int, *, final: bool) -> tuple[list[str], str]:
    """The chunks of ``text`` and, unless ``final``, the text still open at its end (see
    ``settled_chunks``)."""
    if limit < 20:
        raise ValueError("limit must be at least 20 characters")
    text = text.strip() if final else text.lstrip()
    chunks: list[str] = []
    open_lang: str | None = None  # code block open at the start of `text`
    while text:
        prefix = f"```{open_lang}\n" if open_lang is not None else ""
        room = limit - len(prefix)
        if not final and len(text.rstrip()) <= room:
            return chunks, prefix + text  # may still grow: whether and where it is cut is not known
        if len(text) <= room and _open_fence_after(text, open_lang) is None:
            chunks.append(prefix + text)
            break
        reserve = 4  # room for a closing "\n```" if we must cut inside a block
        cut = _best_cut(text, room - reserve, open_lang) if len(text) > room - reserve else len(text)
        piece = text[:cut].rstrip()
        still_open = _open_fence_after(text[:cut], open_lang)
        chunk = prefix + piece + ("\n```" if still_open is not None else "")
        chunks.append(chunk)
        text = text[cut:].lstrip("\n ")
        open_lang = still_open
        if not piece and not text:
            break
    return [c for c in chunks if c.strip()], ""


def split_message(text: str, limit: int = DISCORD_MESSAGE_LIMIT) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` characters (see module docstring).

    Args:
        text: Markdown text of any length.
        limit: maximum characters per chunk (Discord: 2,000); at least 20.
    Returns:
        Non-empty chunks, in order; ``[]`` for blank text. Joining them gives back the text except for
        whitespace at the cuts and the fences added to close/reopen a split code block.
    Raises:
        ValueError: ``limit`` below 20.
    """
    return _chunks(text, limit, final=True)[0]


def settled_chunks(text: str, limit: int = DISCORD_MESSAGE_LIMIT) -> tuple[list[str], str]:
    """For text still being written (a streamed reply): the chunks that no continuation can change,
    and the rest.

    A chunk is cut only once more than ``limit`` characters follow the previous cut, and where it is
    cut depends only on those characters, so the settled chunks of a prefix of ``t`` are the first
    chunks of ``split_message(t, limit)``: a reply shown while streaming is split exactly as the whole
    reply would be. Returns ``(settled, open_text)``: ``open_text`` is the text after the last settled
    chunk (with the fence that reopens a code block cut open), possibly "".

    Raises:
        ValueError: ``limit`` below 20.
    """
    return _chunks(text, limit, final=False)
