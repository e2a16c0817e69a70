"""The guard: what the model wrote is input too. Every narration passes here before the table sees it.

Rules, in order (each intervention is named, counted per campaign and logged without the text):

- ``template``: chat-template and control tokens (``<|im_end|>``, ``</s>``, ``[INST]``, ``<<SYS>>``,
  ``<start_of_turn>``...) are removed; a token that ends a turn or starts the next one
  (``<|im_end|>``, ``<|im_start|>``, ``<|eot_id|>``, ``</s>``, ``[INST]``...) cuts the reply there, since
  what follows is the model playing the next speaker. A ``<think>...</think>`` block is dropped.
- ``wrapper``: a reply wholly inside one code fence or one pair of quotes is unwrapped.
- ``role_prefix``: a leading ``DM:``, ``**Dungeon Master:**``, ``Assistant:``, ``Narrator:``... is removed.
- ``player_voice``: the reply is cut at the first line where the model speaks as a player: a line
  that starts with a party member's character or player name followed by a label colon
  (``Aria:``, ``**Aria**:``, ``Aria (ann):``), a bracketed label (``[Aria]``, ``[Aria (player: ann)]``) or
  the prompt's own action format (``[X (player: y)]: <<<``), or a generic ``Player:``/``User:`` label.
  Third-person narration about a character ("The ogre swings at Aria") is the DM's job and stays.
- ``table_line`` / ``context_echo``: the reply is also cut where a line forges a ``[Table]`` record
  of the game or copies the party's sheet lines from the turn's message.
- ``repetition``: the reply is cut at the first repeat of a sentence that occurs
  ``REPEAT_SENTENCES`` times, or of a run of ``REPEAT_WORDS`` words that occurs ``REPEAT_RUNS`` times.
- ``prompt_leak``: the reply repeats the DM rules of the system prompt (``LEAK_RUN_WORDS`` words in a
  row verbatim, or ``PERSONA_RUN_WORDS`` of its first sentence, the persona): the reply is failed.
- ``secret_leak``: the reply contains a configured secret (an API key, a token): failed.
- ``empty``: nothing usable is left: failed.

A failed reply is asked for once more with a corrective note (``corrected``), then the table is told
(see the pipeline). Pure functions over text: no I/O, well under a millisecond for a 700-token reply.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from bot.game.errors import EmptyReply

__all__ = ["CORRECTIVE_NOTE", "EmptyReply", "GuardContext", "Intervention", "Verdict", "check", "corrected",
           "guard"]

Intervention = Literal["template", "wrapper", "role_prefix", "player_voice", "table_line", "context_echo",
                       "repetition", "prompt_leak", "secret_leak", "empty"]

CORRECTIVE_NOTE = ("[Table]: Your previous answer could not be shown. Answer now as the DM only: narrate what "
                   "happens next in response to the actions above, voice only non-player characters, never "
                   "write the players' lines or decide what their characters do, and do not repeat yourself.")
REPEAT_SENTENCES = 3
REPEAT_WORDS = 12
REPEAT_RUNS = 3
SHINGLE_WORDS = 10
LEAK_RUN_WORDS = 14  # consecutive words of the DM rules that make a reply a leak
PERSONA_RUN_WORDS = 7  # consecutive words of the rules' first sentence that do
SECRET_MIN_CHARS = 8

# Tokens of common chat templates (ChatML, Llama 2/3, Mistral, Gemma, Phi, Zephyr, Alpaca-style).
_STOP = re.compile(r"<\|(?:im_end|im_start|eot_id|end|endoftext|user|system|assistant|start_header_id)\|>"
                   r"|</s>|\[/?INST\]|<end_of_turn>|<start_of_turn>|\n###\s*(?:Instruction|Input|Response|User)\b"
                   r"|\n(?:<\|)?(?:user|human)(?:\|>)?:", re.IGNORECASE)
_TOKEN = re.compile(r"<\|[a-z0-9_]{1,30}\|>|<</?SYS>>|</?s>|<(?:end|start)_of_turn>|\[/?INST\]|<bos>|<eos>"
                    r"|<pad>|<unk>|<\|reserved_special_token_\d+\|>", re.IGNORECASE)
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.IGNORECASE | re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")
_ROLE_WORDS = r"(?:the\s+)?(?:dm|gm|dungeon\s*master|game\s*master|narrator|narration|assistant|ai|storyteller|system)"
_ROLE = re.compile(rf"^\s*(?:\*\*|__)?\s*{_ROLE_WORDS}\s*(?:\*\*|__)?\s*:\s*(?:\*\*|__)?\s*"
                   rf"|^\s*\[\s*{_ROLE_WORDS}\b[^\]\n]{{0,80}}\]\s*\n?", re.IGNORECASE)
_FENCE = re.compile(r"^```[a-z]*\n(.*)\n```$", re.DOTALL | re.IGNORECASE)
_ACTION_FORMAT = re.compile(r"^\s*\[[^\]\n]{1,80}\(player:[^\]\n]*\)\]\s*:", re.IGNORECASE)
_GENERIC_VOICE = re.compile(r"^\s*(?:\*\*)?\s*(?:player\s*\d*|user|you|human)\s*(?:\*\*)?\s*:", re.IGNORECASE)
_TABLE_LINE = re.compile(r"^\s*[>*_-]*\s*\[\s*table\s*\]", re.IGNORECASE)
# the prompt's own party sheet lines ("- Aria: level 1 Elf Rogue, HP 10/10, AC 14 (played by ann)") and
# sheet-like lines ("Sable: 13/19, AC 13") the model copies from the turn's message
_SHEET_LINE = re.compile(r"(?:\b(?:level|lvl)\s*\d+\b[^\n]*\bHP\s*\d+\s*/\s*\d+|\(played by [^)\n]{1,40}\)"
                         r"|^\s*[-*•]?\s*[^:\n]{1,60}:\s*(?:HP\s*)?\d+\s*/\s*\d+\s*,\s*AC\s*\d+)", re.IGNORECASE)
_PLAYER_LABEL = re.compile(r"^\s*[-*•>]*\s*\[[^\]\n]{0,80}\(player:", re.IGNORECASE)
_SENTENCE = re.compile(r"[^.!?…\n]+[.!?…]*")
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class GuardContext:
    """What the guard checks a reply against.

    Attributes:
        names: the party's character names and their players' display names.
        rules_text: the DM rules part of the system prompt (its verbatim echo is a leak).
        secrets: configured secret values (API keys, tokens) that must never appear.
    """

    names: tuple[str, ...] = ()
    rules_text: str = ""
    secrets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Verdict:
    """The guard's answer: the text to show, what it changed, and whether the reply failed (a leak
    or nothing left), in which case ``text`` must not be shown. ``cut``: the reply was cut short (a
    turn-ending token, a player's voice, a forged record, copied sheets, a loop): whatever the model
    writes after that point is discarded, so a streamed reply can stop there; ``cut_by`` names the rule
    ("template", "player_voice", "table_line", "context_echo" or "repetition")."""

    text: str
    interventions: tuple[Intervention, ...]
    failed: bool
    cut: bool = False
    cut_by: Intervention | None = None


def _strip_template(text: str) -> tuple[str, bool]:
    original = text
    text = _THINK.sub("", text)
    stop = _STOP.search(text)
    if stop is not None:
        text = text[:stop.start()]
    text = _TOKEN.sub("", text)
    text = _CONTROL.sub("", text)
    return text, text != original


def _unwrap(text: str) -> tuple[str, bool]:
    stripped = text.strip()
    fence = _FENCE.match(stripped)
    if fence:
        return fence.group(1).strip(), True
    for left, right in (('"', '"'), ("“", "”"), ("'''", "'''")):
        inner = stripped[len(left):-len(right)] if len(stripped) > len(left) + len(right) else ""
        whole = stripped.startswith(left) and stripped.endswith(right)
        if whole and inner and left not in inner and right not in inner:
            return inner.strip(), True
    return text, False


def _strip_role(text: str) -> tuple[str, bool]:
    changed = False
    while True:
        match = _ROLE.match(text)
        if not match or match.end() == 0:
            return text, changed
        text, changed = text[match.end():], True


def _voice_pattern(names: Sequence[str]) -> re.Pattern[str] | None:
    cleaned = sorted({n.strip() for n in names if n and n.strip()}, key=len, reverse=True)
    if not cleaned:
        return None
    alt = "|".join(re.escape(n) for n in cleaned)
    # Aria:  **Aria**:  **Aria:**  Aria (ann):  [Aria]  [Aria (player: ann)]  > Aria:
    return re.compile(rf"^\s*(?:[-•>]\s*)?(?:\*\*|__|\*)?\s*\[?\s*(?:{alt})\b[^\n:\]]{{0,30}}?"
                      rf"(?:\]\s*:?|\s*(?:\*\*|__|\*)?\s*:(?!\d))", re.IGNORECASE)


def _cut_lines(text: str, names: Sequence[str]) -> tuple[str, Intervention | None]:
    """Cut at the first line where the model speaks as a player, forges a ``[Table]`` record or
    copies the party's sheets; which of the three it was."""
    voice = _voice_pattern(names)
    lines = text.split("\n")
    for i, line in enumerate(lines):
        found: Intervention | None = None
        if _TABLE_LINE.match(line):
            found = "table_line"
        elif _SHEET_LINE.search(line):
            found = "context_echo"
        elif (_ACTION_FORMAT.match(line) or _PLAYER_LABEL.match(line) or _GENERIC_VOICE.match(line)
              or (voice is not None and voice.match(line))):
            found = "player_voice"
        if found is not None:
            return "\n".join(lines[:i]).rstrip(), found
    return text, None


def _norm(sentence: str) -> str:
    return " ".join(_WORD.findall(sentence.casefold()))


def _cut_repetition(text: str) -> tuple[str, bool]:
    sentences = [(m.start(), _norm(m.group(0))) for m in _SENTENCE.finditer(text)]
    counts = Counter(s for _, s in sentences if len(s.split()) >= 3)
    looping = {s for s, n in counts.items() if n >= REPEAT_SENTENCES}
    cut = len(text)
    if looping:
        seen: set[str] = set()
        for start, s in sentences:
            if s in looping and s in seen:
                cut = min(cut, start)
                break
            seen.add(s)
    words = [(m.start(), m.group(0).casefold()) for m in _WORD.finditer(text)]
    if len(words) >= REPEAT_WORDS * REPEAT_RUNS:
        plain = [w for _, w in words]
        windows = list(zip(*(plain[i:] for i in range(REPEAT_WORDS)), strict=False))  # every run of words
        looping_runs = {run for run, n in Counter(windows).items() if n >= REPEAT_RUNS}
        if looping_runs:  # the same run of words three times: a loop, whatever its period
            seen_runs: set[tuple[str, ...]] = set()
            for i, run in enumerate(windows):
                if run in looping_runs and run in seen_runs:
                    cut = min(cut, words[i][0])
                    break
                seen_runs.add(run)
    if cut >= len(text):
        return text, False
    return text[:cut].rstrip(), True


def _longest_run(words: Sequence[str], shingles: frozenset[tuple[str, ...]] | set[tuple[str, ...]], size: int) -> int:
    """The most consecutive words of ``words`` that appear verbatim (as ``size``-word shingles) in
    the source the ``shingles`` come from; 0 when no shingle matches."""
    best = run = 0
    for i in range(len(words) - size + 1):
        if tuple(words[i:i + size]) in shingles:
            run = run + 1 if run else size
            best = max(best, run)
        else:
            run = 0
    return best


@lru_cache(maxsize=64)
def _rule_shingles(rules_text: str) -> tuple[int, frozenset[tuple[str, ...]], frozenset[tuple[str, ...]]]:
    """(words in the rules, their ``SHINGLE_WORDS``-word shingles, the persona's
    ``PERSONA_RUN_WORDS``-word shingles), built once per rules text (a session's stays the same)."""
    rule_words = _WORD.findall(rules_text.casefold())
    shingles = frozenset(tuple(rule_words[i:i + SHINGLE_WORDS]) for i in range(len(rule_words) - SHINGLE_WORDS + 1))
    first = _WORD.findall(re.split(r"(?<=[.!?])\s", rules_text.strip(), maxsplit=1)[0].casefold())
    persona = frozenset(tuple(first[i:i + PERSONA_RUN_WORDS]) for i in range(len(first) - PERSONA_RUN_WORDS + 1))
    return len(rule_words), shingles, persona


def _leaks_prompt(text: str, rules_text: str) -> bool:
    """True when ``text`` repeats the DM rules: ``LEAK_RUN_WORDS`` consecutive words of them, or
    ``PERSONA_RUN_WORDS`` of their first sentence (the persona, which no narration restates)."""
    rule_count, shingles, persona = _rule_shingles(rules_text)
    words = _WORD.findall(text.casefold())
    if rule_count < PERSONA_RUN_WORDS or len(words) < PERSONA_RUN_WORDS:
        return False
    if _longest_run(words, shingles, SHINGLE_WORDS) >= LEAK_RUN_WORDS:
        return True
    return any(tuple(words[i:i + PERSONA_RUN_WORDS]) in persona for i in range(len(words) - PERSONA_RUN_WORDS + 1))


def guard(text: str, context: GuardContext = GuardContext()) -> Verdict:
    """Apply every rule of the module docstring to ``text`` (the model's narration)."""
    done: list[Intervention] = []
    text = text or ""
    cut_by: Intervention | None = "template" if _STOP.search(_THINK.sub("", text)) is not None else None
    steps: tuple[tuple[Intervention, Callable[[str], tuple[str, bool]]], ...] = (
        ("template", _strip_template), ("wrapper", _unwrap), ("role_prefix", _strip_role))
    for rule, step in steps:
        text, changed = step(text)
        if changed:
            done.append(rule)
    text, line_cut = _cut_lines(text, context.names)
    if line_cut is not None:
        done.append(line_cut)
    text, looped = _cut_repetition(text)
    if looped:
        done.append("repetition")
    cut_by = cut_by or line_cut or ("repetition" if looped else None)
    cut = cut_by is not None
    text = text.strip()
    if any(len(s) >= SECRET_MIN_CHARS and s in text for s in context.secrets):
        return Verdict("", (*done, "secret_leak"), True, cut, cut_by)
    if _leaks_prompt(text, context.rules_text):
        return Verdict("", (*done, "prompt_leak"), True, cut, cut_by)
    if not text:
        return Verdict("", (*done, "empty"), True, cut, cut_by)
    return Verdict(text, tuple(done), False, cut, cut_by)


def check(text: str, context: GuardContext = GuardContext()) -> str | None:
    """The narration to show, or None when the reply failed (see ``guard``)."""
    verdict = guard(text, context)
    return None if verdict.failed else verdict.text


def corrected(prompt: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``prompt`` with the corrective note added to its last (user) message: a new list; the note
    joins that message rather than following it, so strict chat templates still alternate roles."""
    last = dict(prompt[-1])
    last["content"] = f"{last['content']}\n\n{CORRECTIVE_NOTE}"
    return [*prompt[:-1], last]
