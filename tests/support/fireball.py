"""The recorded FIREBALL session (tests/data/fireball/raw.jsonl, CC-BY-4.0, see its LICENSE) as the
replay test and the pace benchmark read it: its messages in recorded order, the players' ids as the
bot stores them, and how the product promises to treat each message (code independent of the bot's
filters, so the replays check them instead of copying them)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "data" / "fireball" / "raw.jsonl"


def load_messages() -> list[dict[str, Any]]:
    """The session's message events, oldest first (each a dict of the dataset's fields)."""
    events = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    return sorted((e for e in events if e["event_type"] == "message"), key=lambda e: e["created_at"])


def user_id(m: dict[str, Any]) -> int:
    """The author's id as the bot gets it (the dataset's ids are hashes wider than SQLite integers)."""
    return int(m["author_id"]) % (2 ** 62)


def expected_kind(m: dict[str, Any]) -> str:
    """How a message should be treated: "bot", "prefix" (a ``!`` command), "ooc", "empty" (wordless)
    or "act" (an in-character message the DM answers)."""
    text = m["content"].strip()
    low = text.lower()
    if m["author_bot"]:
        return "bot"
    if text.startswith("!"):
        return "prefix"
    if low.startswith(("((", "//", "ooc:", "ooc -", "[ooc]", "(ooc)")):
        return "ooc"
    if text.startswith("(") and text.endswith(")") and "(" not in text[1:-1] and ")" not in text[1:-1]:
        return "ooc"
    if not re.search(r"[A-Za-z0-9]{2}", text):
        return "empty"
    return "act"
