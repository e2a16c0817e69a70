"""Splitting DM replies for Discord's 2,000-character message limit."""

from __future__ import annotations

import re

import pytest

from bot.chunking import settled_chunks, split_message


def _fences_balanced(chunk: str) -> bool:
    return len(re.findall(r"^\s*```", chunk, flags=re.M)) % 2 == 0


def test_short_text_is_one_chunk() -> None:
    assert split_message("The door creaks open.") == ["The door creaks open."]
    assert split_message("   \n ") == []


def test_splits_at_paragraphs_first() -> None:
    para = "word " * 300  # 1,500 characters
    text = f"{para.strip()}\n\n{para.strip()}"
    chunks = split_message(text)
    assert len(chunks) == 2
    assert chunks[0] == para.strip() and chunks[1] == para.strip()


def test_splits_at_sentence_when_paragraph_too_long() -> None:
    sentence = "The goblin snarls and raises its blade. "
    text = sentence * 80  # ~3,200 characters, no paragraph breaks
    chunks = split_message(text)
    assert len(chunks) == 2
    assert all(len(c) <= 2000 for c in chunks)
    assert chunks[0].endswith("blade.")
    assert chunks[1].startswith("The goblin")


def test_never_cuts_inside_a_word() -> None:
    words = [f"w{i:04d}" for i in range(900)]
    text = " ".join(words)
    chunks = split_message(text, limit=500)
    rejoined = " ".join(chunks).split()
    assert rejoined == words
    assert all(len(c) <= 500 for c in chunks)


def test_code_block_not_split_when_boundary_outside_exists() -> None:
    block = "```\n" + "\n".join(f"line {i}" for i in range(40)) + "\n```"
    text = ("Intro paragraph. " * 60) + "\n\n" + block + "\n\nAfter the block."
    chunks = split_message(text)
    assert all(len(c) <= 2000 for c in chunks)
    assert sum(block in c for c in chunks) == 1
    assert all(_fences_balanced(c) for c in chunks)


def test_oversized_code_block_is_closed_and_reopened() -> None:
    block = "```md\n" + "\n".join(f"initiative row {i}" for i in range(300)) + "\n```"
    chunks = split_message(block)
    # 5,599 characters: "```md\n" (6) + 300 rows (10 of 16, 90 of 17, 200 of 18 = 5,290) + 299 newlines
    # + "\n```" (4). A chunk cuts at the last newline in its window, so it takes 1,972..1,996 characters
    # of the block: two chunks leave 1,613..1,649, which fit in the third with its reopening fence.
    assert len(chunks) == 3
    assert all(len(c) <= 2000 for c in chunks)
    assert all(_fences_balanced(c) for c in chunks)
    assert all(c.startswith("```md") for c in chunks)
    rows = [ln for c in chunks for ln in c.splitlines() if ln.startswith("initiative row")]
    assert rows == [f"initiative row {i}" for i in range(300)]


def test_word_longer_than_limit_is_cut() -> None:
    chunks = split_message("a" * 45, limit=20)
    assert "".join(chunks) == "a" * 45
    assert all(len(c) <= 20 for c in chunks)


def test_rejects_tiny_limit() -> None:
    with pytest.raises(ValueError):
        split_message("x", limit=5)


def _prose(n: int) -> str:
    sentences = ["The goblin snarls and raises its blade.", "Rain hammers the slate roof of the inn.",
                 "Somewhere below, a door slams twice.", "Aria's lantern gutters, then steadies."]
    parts = []
    for i in range(n):
        parts.append(sentences[i % 4])
        parts.append("\n\n" if i % 7 == 6 else (" " if i % 3 else "\n"))
    return "".join(parts)


@pytest.mark.parametrize("limit", [80, 500, 1900])
def test_settled_chunks_of_every_prefix_are_the_whole_split(limit: int) -> None:
    rows = "\n".join(f"row {i}" for i in range(limit // 6))  # a code block longer than a chunk
    text = _prose(limit // 8) + "```\n" + rows + "\n```\nThe end."
    whole = split_message(text, limit)
    for end in range(1, len(text) + 1, max(7, limit // 40)):
        settled, rest = settled_chunks(text[:end], limit)
        assert settled == whole[:len(settled)], f"prefix of {end} characters"
        assert len(rest.rstrip()) <= limit, f"prefix of {end} characters left {len(rest)} open"
    settled, rest = settled_chunks(text, limit)
    assert settled + split_message(rest, limit) == whole


def test_settled_chunks_of_short_text_settle_nothing() -> None:
    assert settled_chunks("The door creaks", 1900) == ([], "The door creaks")
    assert settled_chunks("", 1900) == ([], "")
