"""What the DM remembers each turn: the lorebook entries a turn needs, within a token budget.

A turn's "what you remember" block (``lore_block``) holds, in order: the pinned entries, the open
quests, then the entries whose name or an alias appears in this turn's actions or the last few story
messages, the most recently named first. It goes in the turn's last user message next to the party
sheets (see ``bot.game.context``), so a change never touches the cached prompt prefix.

Finding names is ONE precompiled regex over every name and alias of the session's lorebook
(``LoreMatcher``): a trie of the casefolded names, longer names tried before their prefixes, so a
turn's text is scanned once whatever the size of the lorebook. It is rebuilt only when the session's
``lore_version`` changes. Matching is case-insensitive (casefolded text and names) and whole-word in
any script: a name edge that is a letter or digit must not touch another letter or digit, except in
scripts written without spaces between words (Han, Hiragana, Hangul with its attached particles, Thai,
Lao, Khmer, Myanmar), where no boundary can be seen; a Katakana edge must not touch more Katakana.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.models import LoreEntry

if TYPE_CHECKING:
    from bot.game.session import GameSession

RECENT_MESSAGES = 6  # story messages before the turn scanned for names, besides the actions
UNKNOWN_NAMES_MAX = 3  # names per turn looked up in the chronicle when no entry covers them
_CAPITALISED = re.compile(r"(?<![\w'’])([^\W\d_][\w'’-]*)", re.UNICODE)
# Capitalised words that are not names (sentence starts, pronouns, table words).
NOT_NAMES = frozenset((
    "i", "i'm", "i'll", "i've", "a", "an", "the", "we", "you", "he", "she", "they", "it", "my", "our", "your",
    "his", "her", "their", "this", "that", "these", "those", "there", "here", "then", "when", "what", "where",
    "who", "why", "how", "yes", "no", "ok", "okay", "so", "but", "and", "or", "if", "let", "lets", "let's",
    "dm", "gm", "ooc", "hello", "hi", "hey", "well", "oh", "ah", "now", "maybe", "please", "thanks", "sir",
    "lady", "lord", "mister", "miss", "mrs", "mr",
))
HEADER = ("[Table]: What you remember (your lorebook). Entries marked [secret] are known only to you: "
          "never reveal them unless the players find them out in play.")
SECRET_MARK = "[secret] "

# Scripts written without spaces between words: no word boundary is required at such an edge.
_UNSPACED = ("\u0e00-\u0eff\u1000-\u109f\u1100-\u11ff\u1780-\u17ff\u3040-\u309f\u3130-\u318f\u3400-\u4dbf"
             "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f")
_KATAKANA = "\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f"
_UNSPACED_RE = re.compile(f"[{_UNSPACED}]")
_KATAKANA_RE = re.compile(f"[{_KATAKANA}]")
_WORD_RE = re.compile(r"\w")
_SPACES = re.compile(r"\s+")


def _left(ch: str) -> str:
    """The lookbehind that makes a name starting with ``ch`` start a word."""
    if _UNSPACED_RE.match(ch):
        return ""
    if _KATAKANA_RE.match(ch):
        return f"(?<![{_KATAKANA}])"
    return r"(?<!\w)" if _WORD_RE.match(ch) else ""


def _right(ch: str) -> str:
    """The lookahead that makes a name ending with ``ch`` end a word."""
    if _UNSPACED_RE.match(ch):
        return ""
    if _KATAKANA_RE.match(ch):
        return f"(?![{_KATAKANA}])"
    return r"(?!\w)" if _WORD_RE.match(ch) else ""


def name_key(name: str) -> str:
    """How a name or alias is compared: casefolded, inner whitespace collapsed to one space."""
    return " ".join(name.split()).casefold()


_END = ""  # trie key marking that a name ends at this node
_Node = dict[str, "_Node"]


def _trie_pattern(node: _Node, last: str) -> str:
    """The regex of a trie node: longer continuations first, then "the name ends here" (with the
    word-end lookahead of its last character ``last``)."""
    options = []
    for ch in sorted(k for k in node if k != _END):
        options.append(re.escape(ch) + _trie_pattern(node[ch], ch))
    if _END in node:
        options.append(_right(last))
    if len(options) == 1:
        return options[0]
    return "(?:" + "|".join(options) + ")"


def compile_names(keys: Iterable[str]) -> re.Pattern[str] | None:
    """ONE regex finding any of ``keys`` (already ``name_key``-ed) as a whole word in casefolded text,
    the longest first at any position; None when there are no keys."""
    root: _Node = {}
    for key in set(keys):
        if not key:
            continue
        node = root
        for ch in key:
            node = node.setdefault(ch, {})
        node[_END] = {}
    if not root:
        return None
    groups: dict[str, list[str]] = {}  # one lookbehind per kind of word start, checked once per position
    for first in sorted(root):
        groups.setdefault(_left(first), []).append(re.escape(first) + _trie_pattern(root[first], first))
    return re.compile("|".join(f"{left}(?:{'|'.join(branches)})" for left, branches in groups.items()))


class LoreMatcher:
    """Finds lorebook entries named in text.

    Args:
        entries: the live entries to look for (by name and every alias).
        base: the matcher of the lorebook before a change. When the change only ADDED names (the
            common case: the DM recorded someone new), its compiled regexes are kept and one small
            regex covers the new names, so a change costs a compile of the new names only (a full
            compile of 2,000 names takes some 20-30 ms); after ``MAX_GENERATIONS`` such steps, or
            when a name went away, everything is compiled afresh.
    """

    __slots__ = ("_by_key", "_regexes")

    MAX_GENERATIONS = 4

    _regexes: list[re.Pattern[str]]

    def __init__(self, entries: Sequence[LoreEntry], base: LoreMatcher | None = None) -> None:
        self._by_key: dict[str, list[LoreEntry]] = {}
        for entry in entries:
            for name in (entry.name, *entry.aliases):
                key = name_key(name)
                if key:
                    bucket = self._by_key.setdefault(key, [])
                    if entry not in bucket:
                        bucket.append(entry)
        added = set(self._by_key) - set(base._by_key) if base is not None else set()
        if (base is not None and base._regexes and len(base._regexes) < self.MAX_GENERATIONS
                and set(base._by_key) <= set(self._by_key)):
            fresh = compile_names(added) if added else None
            self._regexes = [*base._regexes, *([fresh] if fresh is not None else [])]
        else:
            regex = compile_names(self._by_key)
            self._regexes = [regex] if regex is not None else []

    def named(self, texts: Iterable[str]) -> list[LoreEntry]:
        """The entries named in ``texts``, each once, in order of first mention (``texts`` in the
        order given, then by position in each). Where names overlap, the longer one wins."""
        if not self._regexes:
            return []
        seen: dict[int, LoreEntry] = {}
        for text in texts:
            folded = text.casefold()
            if len(self._regexes) == 1:
                keys = [m.group(0) for m in self._regexes[0].finditer(folded)]
            else:
                keys = _longest_spans(folded, self._regexes)
            for key in keys:
                for entry in self._by_key.get(" ".join(key.split()), ()):
                    seen.setdefault(entry.id, entry)
        return list(seen.values())

    def named_in_each(self, texts: Iterable[str]) -> list[list[LoreEntry]]:
        """For each text of ``texts``, the entries it names (in order of first mention)."""
        return [self.named([t]) for t in texts]


def _longest_spans(text: str, regexes: Sequence[re.Pattern[str]]) -> list[str]:
    """The names the ``regexes`` find in ``text``, left to right, a span inside or overlapping an
    earlier-starting or longer one dropped (what one regex over all the names would report)."""
    spans = sorted((m.start(), -(m.end() - m.start()), m.group(0)) for r in regexes for m in r.finditer(text))
    out: list[str] = []
    end = -1
    for start, neg_len, key in spans:
        if start >= end:
            out.append(key)
            end = start - neg_len
    return out


def entry_line(entry: LoreEntry) -> str:
    """One entry as a line of the block: ``- [secret] Mira (npc; also: the innkeeper): Runs the inn.``
    (names cleaned of brackets and control characters, the description on one line)."""
    from bot.game.context import clean_name

    kind = f"{entry.kind}, {entry.status}" if entry.kind == "quest" and entry.status else entry.kind
    aliases = [clean_name(a) for a in entry.aliases]
    head = f"{clean_name(entry.name)} ({kind}" + (f"; also: {', '.join(aliases)}" if aliases else "") + ")"
    description = _SPACES.sub(" ", entry.description).strip()
    return f"- {SECRET_MARK if entry.secret else ''}{head}" + (f": {description}" if description else "")


def lore_block(entries: Sequence[LoreEntry], named: Sequence[LoreEntry], *, budget: int,
               count: Callable[[str], int], extra: Sequence[str] = (),
               named_turns: dict[int, int] | None = None) -> str:
    """The "what you remember" text of a turn, at most ``budget`` tokens ("" when nothing fits or
    ``budget`` is 0).

    Args:
        entries: the live lorebook (pinned entries and open quests are taken from it).
        named: the entries named in this turn's text, most recently named first.
        budget: the most tokens the block may take (``count`` of the returned text).
        count: ``text -> tokens`` (the game's token counter for the session's model).
        extra: further lines that come last when room is left (chapter excerpts), each "- ...".
        named_turns: entry id -> the latest turn it was named in, when newer than the entries'
            ``last_named_turn`` (ranks the pinned entries and open quests).
    Lines go in the order pinned, open quests, named, extra; a line that does not fit is skipped and
    later, shorter ones may still come in.
    """
    if budget <= 0:
        return ""
    turns = named_turns or {}

    def recency(e: LoreEntry) -> tuple[int, int]:
        return (-max(e.last_named_turn, turns.get(e.id, 0)), e.id)

    pinned = sorted((e for e in entries if e.pinned), key=recency)
    quests = sorted((e for e in entries if e.kind == "quest" and e.status == "open" and not e.pinned),
                    key=recency)
    chosen: dict[int, LoreEntry] = {e.id: e for e in (*pinned, *quests)}
    ordered = [*pinned, *quests] + [e for e in named if e.id not in chosen]
    lines = [entry_line(e) for e in ordered] + list(extra)
    used = count(HEADER)
    if used > budget:
        return ""
    kept: list[str] = []
    for text in lines:
        cost = count("\n" + text)
        if used + cost <= budget:
            kept.append(text)
            used += cost
    while kept:  # the exact count of the joined text decides (BPE merges may differ from the sum)
        block = "\n".join([HEADER, *kept])
        if count(block) <= budget:
            return block
        kept.pop()
    return ""


@dataclass(frozen=True, slots=True)
class LoreChoice:
    """What a turn's prompt remembers.

    Attributes:
        text: the block for the prompt ("" for none), at most the budget in tokens.
        named: ids of the entries named in the scanned text, most recent first.
    """

    text: str
    named: tuple[int, ...]


@dataclass
class _SessionLore:
    """A session's matcher, the lorebook version it was built from, and recent naming turns."""

    version: int = -1
    matcher: LoreMatcher = field(default_factory=lambda: LoreMatcher(()))
    named_turns: dict[int, int] = field(default_factory=dict)


class LoreRecall:
    """Chooses each turn's lore for every session, keeping one matcher per session (dropped with the
    session) that is rebuilt only when the session's ``lore_version`` changes."""

    def __init__(self) -> None:
        self._sessions: weakref.WeakKeyDictionary[GameSession, _SessionLore] = weakref.WeakKeyDictionary()

    def matcher(self, session: GameSession) -> LoreMatcher:
        """The session's matcher over its live lorebook (rebuilt when ``session.lore_version`` moved)."""
        return self._state(session).matcher

    def _state(self, session: GameSession) -> _SessionLore:
        state = self._sessions.get(session)
        if state is None:
            state = self._sessions[session] = _SessionLore()
        if state.version != session.lore_version:
            state.matcher = LoreMatcher(session.lore, base=state.matcher if state.version >= 0 else None)
            state.version = session.lore_version
        return state

    def choose(self, session: GameSession, actions: Sequence[str], recent: Sequence[str], *, budget: int,
               count: Callable[[str], int], extra: Sequence[str] = ()) -> LoreChoice:
        """The lore of a turn.

        Args:
            session: the channel's session (its ``lore`` and ``lore_version``).
            actions: this turn's action texts, oldest first.
            recent: the story messages' texts before the turn, oldest first (the last
                ``RECENT_MESSAGES`` are scanned).
            budget: tokens the block may take (``Settings.lore_token_budget``).
            count: ``text -> tokens``.
            extra: chapter-excerpt lines to add when room is left.
        Entries named in the actions rank first, then by the newest story message naming them, then
        by the turn they were last named in.
        """
        state = self._state(session)
        texts = [*reversed(actions), *reversed(recent[-RECENT_MESSAGES:])] if RECENT_MESSAGES else list(actions)
        ranked: list[LoreEntry] = []
        seen: set[int] = set()
        for found in state.matcher.named_in_each(texts):
            found.sort(key=lambda e: (-max(e.last_named_turn, state.named_turns.get(e.id, 0)), e.id))
            for entry in found:
                if entry.id not in seen:
                    seen.add(entry.id)
                    ranked.append(entry)
        text = lore_block(session.lore, ranked, budget=budget, count=count, extra=extra,
                          named_turns=state.named_turns)
        return LoreChoice(text, tuple(e.id for e in ranked))

    def mark(self, session: GameSession, turn: int, texts: Iterable[str]) -> list[int]:
        """Note that the entries named in ``texts`` were named in ``turn``; returns their ids (for
        ``LoreStore.mark_named``)."""
        state = self._state(session)
        ids = [e.id for e in state.matcher.named(texts)]
        for entry_id in ids:
            state.named_turns[entry_id] = max(turn, state.named_turns.get(entry_id, 0))
        return ids


def unknown_names(texts: Iterable[str], matcher: LoreMatcher, known: Iterable[str]) -> list[str]:
    """Capitalised words of ``texts`` that look like names but that no lore entry and none of
    ``known`` (the party's names) covers: at most ``UNKNOWN_NAMES_MAX``, in order of first use. Only
    scripts with letter case have such words; others rely on the lorebook alone."""
    covered = {w for name in known for w in name_key(name).split()}
    for text in texts:
        for entry in matcher.named([text]):
            covered.update(w for n in (entry.name, *entry.aliases) for w in name_key(n).split())
    found: list[str] = []
    for text in texts:
        for match in _CAPITALISED.finditer(text):
            word = match.group(1).strip("'’-")
            key = word.casefold()
            if (len(word) < 3 or not word[0].isupper() or key in NOT_NAMES or key in covered
                    or word in found):
                continue
            found.append(word)
            if len(found) == UNKNOWN_NAMES_MAX:
                return found
    return found
