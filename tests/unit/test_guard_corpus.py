"""The guard on real junk: 214 replies small local models wrote with the bot's own prompts
(tests/data/guard, labelled by a person), and the human DM's narration of the FIREBALL table.

Each label is checked by its own oracle written here (not the guard's code): after the guard, a reply
labelled ``template_token`` holds no template token, ``player_voice`` no line in a party member's or
player's voice, ``table_line`` no forged ``[Table]`` line, ``context_echo`` no copied sheet line,
``repetition`` no sentence three times, ``role_prefix`` no leading DM label, ``prompt_echo`` fails;
``ok`` replies and the FIREBALL DM's messages pass byte for byte. ``off_role`` (meta or off-topic
text with no marker) is not the guard's to catch.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from bot.game.context import system_prompt
from bot.game.guard import GuardContext, guard
from bot.models import Campaign, GuildConfig

DATA = Path(__file__).resolve().parents[1] / "data"
TEMPLATE = re.compile(r"<\|[a-z_]+\|>|</s>|\[/?INST\]|<start_of_turn>|<end_of_turn>", re.IGNORECASE)
TABLE = re.compile(r"^\s*[>*_-]*\s*\[\s*table\s*\]", re.IGNORECASE | re.MULTILINE)
ROLE = re.compile(r"^\s*\W*(?:narration|the dungeon master|dungeon master|dm|narrator)\b", re.IGNORECASE)


def rules_text() -> str:
    campaign = Campaign(1, 1, 1, "The Sunken Crypt", "", "", "active", 1, 0.0)
    config = GuildConfig(1, "gpt-4o-mini", 0.8, 700, "batch", 6.0, (), (), 0, 0, "classic", "teen")
    return system_prompt(campaign, config).split("\nThe campaign:")[0]


def handled(label: str, case: dict[str, Any], out: str, failed: bool) -> bool:
    names = [*case["prompt_party"], *case.get("prompt_players", [])]
    if label == "template_token":
        return not TEMPLATE.search(out)
    if label == "player_voice":
        voice = re.compile(r"^\s*[-*>\[]*\s*\**\s*(?:{})\b[^\n:]{{0,40}}[:\]]".format("|".join(map(re.escape, names))),
                           re.IGNORECASE | re.MULTILINE)
        return not voice.search(out) and "(player:" not in out
    if label == "table_line":
        return not TABLE.search(out)
    if label == "context_echo":
        return "(played by " not in out
    if label == "repetition":
        sentences = [" ".join(re.findall(r"\w+", s.lower())) for s in re.split(r"[.!?\n]+", out)]
        return all(n < 3 for s, n in Counter(sentences).items() if len(s.split()) >= 3)
    if label == "role_prefix":
        return not ROLE.match(out)
    if label == "prompt_echo":
        return failed
    if label == "ok":
        return not failed and out == case["text"].strip()  # surrounding whitespace aside
    raise AssertionError(f"no oracle for label {label!r}")


def test_every_labelled_failure_of_the_real_corpus_is_handled() -> None:
    cases = [json.loads(line) for line in (DATA / "guard" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    rules = rules_text()
    seen: Counter[str] = Counter()
    missed: list[tuple[str, str]] = []
    for case in cases:
        names = (*case["prompt_party"], *case.get("prompt_players", []))
        verdict = guard(case["text"], GuardContext(names=names, rules_text=rules))
        for label in case["labels"]:
            if label == "off_role":
                continue
            seen[label] += 1
            if not handled(label, case, verdict.text, verdict.failed):
                missed.append((case["id"], label))
    assert missed == []
    assert seen == {"repetition": 159, "player_voice": 92, "context_echo": 61, "template_token": 54,
                    "table_line": 37, "ok": 16, "prompt_echo": 3, "role_prefix": 3}


def test_the_fireball_dms_narration_passes_byte_for_byte() -> None:
    events = [json.loads(line) for line in (DATA / "fireball" / "raw.jsonl").read_text(encoding="utf-8").splitlines()]
    narration = [e["content"] for e in events if e["event_type"] == "message" and e["author_name"] == "Player 0"
                 and not e["content"].startswith("!")]
    players = sorted({e["author_name"] for e in events if e["event_type"] == "message" and not e["author_bot"]
                      and e["author_name"] != "Player 0"})
    context = GuardContext(names=tuple(players), rules_text=rules_text())
    changed = [text for text in narration if guard(text, context).text != text.strip() or guard(text, context).failed]
    assert (len(narration), changed) == (12, [])
