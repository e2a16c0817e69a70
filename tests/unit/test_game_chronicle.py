"""The chronicle: reading a fold's answer as model output (validated), rebuilding the story so far
from chapters, merging extracted entities, and the "Previously..." opening."""

from __future__ import annotations

import json

from bot.game import rules
from bot.game.chronicle import EntityDraft, merge_entity, parse_fold_reply, previously, story_so_far
from bot.models import Chapter, LoreEntry


def words(text: str) -> int:
    return len(text.split())


def chapter(n: int, text: str, tokens: int | None = None) -> Chapter:
    return Chapter(n, 1, n, n * 10 - 9, n * 10, n * 40, 0.0, 0.0, text, tokens if tokens is not None else words(text),
                   0.0)


def test_a_json_answer_gives_the_chapter_and_valid_entities_only() -> None:
    answer = json.dumps({"chapter": "The party met Marta at the Drowned Rat.", "entities": [
        {"kind": "npc", "name": "Marta", "aliases": ["the innkeeper", "marta"], "description": "Runs the inn."},
        {"kind": "quest", "name": "Find the idol", "status": "someday"},
        {"kind": "dragon", "name": "Not a kind"},
        {"kind": "place", "name": ""},
        {"kind": "place", "name": "  The   Drowned Rat  ", "description": 42},
        {"kind": "npc", "name": "MARTA", "description": "a duplicate"},
        "not an object"]})
    reply = parse_fold_reply(f"```json\n{answer}\n```")
    assert reply.structured and reply.chapter == "The party met Marta at the Drowned Rat."
    assert reply.entities == (
        EntityDraft("npc", "Marta", ("the innkeeper",), "Runs the inn.", None),
        EntityDraft("quest", "Find the idol", (), "", "open"),
        EntityDraft("place", "The Drowned Rat", (), "", None))


def test_an_answer_that_is_not_json_is_the_chapter_whole() -> None:
    reply = parse_fold_reply("The party crossed the crypt and found a key.")
    assert (reply.chapter, reply.entities, reply.structured) == ("The party crossed the crypt and found a key.", (),
                                                                  False)
    broken = parse_fold_reply('{"chapter": "unterminated')
    assert (broken.chapter, broken.structured) == ('{"chapter": "unterminated', False)
    assert parse_fold_reply(json.dumps({"chapter": "   ", "entities": []})).structured is False


def test_entities_are_bounded_like_tool_calls() -> None:
    many = [{"kind": "fact", "name": f"Fact {i}", "aliases": [f"alias {j}" for j in range(20)],
             "description": "x" * 5000} for i in range(50)]
    reply = parse_fold_reply(json.dumps({"chapter": "A long night.", "entities": many}))
    assert len(reply.entities) == rules.LORE_EXTRACT_MAX
    assert all(len(e.aliases) == rules.LORE_ALIASES_MAX for e in reply.entities)
    assert all(len(e.description) == rules.LORE_DESCRIPTION_MAX for e in reply.entities)
    long_name = parse_fold_reply(json.dumps({"chapter": "c", "entities": [{"kind": "npc", "name": "N" * 500}]}))
    assert long_name.entities[0].name == "N" * rules.LORE_NAME_MAX


def test_the_story_so_far_keeps_the_newest_chapters_that_fit_and_names_the_rest() -> None:
    chapters = [chapter(1, "one two three four"), chapter(2, "five six seven eight"), chapter(3, "nine ten")]
    assert story_so_far(chapters, 100, words) == ("Chapter 1 (turns 1-10): one two three four\n"
                                                  "Chapter 2 (turns 11-20): five six seven eight\n"
                                                  "Chapter 3 (turns 21-30): nine ten")
    # stored counts + 8 each: chapters 3 and 2 (10 + 12) fit in 25, chapter 1 does not; checked by
    # the counter: 11 words of the "Earlier" line + 8 + 6 = 25 still fit
    assert story_so_far(chapters, 25, words) == (
        "(Earlier: chapters 1-1, turns 1-10, in the chronicle and the lorebook.)\n"
        "Chapter 2 (turns 11-20): five six seven eight\nChapter 3 (turns 21-30): nine ten")
    # at 24 the counter drops chapter 2 as well; the newest chapter always stays
    assert story_so_far(chapters, 24, words) == (
        "(Earlier: chapters 1-2, turns 1-20, in the chronicle and the lorebook.)\nChapter 3 (turns 21-30): nine ten")
    assert story_so_far([], 100, words) == ""


def lore(name: str, **kw: object) -> LoreEntry:
    return LoreEntry(id=kw.pop("id", 1), campaign_id=1, kind=kw.pop("kind", "npc"), name=name, **kw)  # type: ignore[arg-type]  # test builder


def test_merging_adds_aliases_fills_a_missing_description_and_moves_quests() -> None:
    existing = [lore("Marta", aliases=("the innkeeper",)), lore("Find the idol", id=2, kind="quest", status="open",
                                                                description="Old text.")]
    entry, changes = merge_entity(existing, EntityDraft("npc", "The Innkeeper", ("Marta of the Rat",), "Runs it.",
                                                        None))
    assert entry is existing[0]
    assert changes == {"aliases": ["the innkeeper", "Marta of the Rat"], "description": "Runs it."}
    entry, changes = merge_entity(existing, EntityDraft("quest", "find the idol", (), "New text.", "done"))
    assert entry is existing[1] and changes == {"status": "done"}  # a description is never overwritten
    assert merge_entity(existing, EntityDraft("place", "Saltmarsh", (), "", None)) == (None, {})


def test_merging_never_changes_what_a_person_edited_or_a_secret() -> None:
    edited = [lore("Marta", edited_by_people=True)]
    assert merge_entity(edited, EntityDraft("npc", "Marta", ("Innkeeper",), "Runs it.", None)) == (edited[0], {})
    secret = [lore("The Cult", kind="faction", secret=True)]
    assert merge_entity(secret, EntityDraft("faction", "The Cult", ("cultists",), "Bad.", None)) == (secret[0], {})


def test_previously_opens_with_the_latest_chapter_and_the_known_open_quests() -> None:
    quests = [lore("Find the idol", kind="quest", status="open"), lore("Pay Marta", id=2, kind="quest", status="done"),
              lore("Kill the king", id=3, kind="quest", status="open", secret=True),
              lore("Marta", id=4)]
    assert previously(chapter(4, "The party fled the crypt. Borin was hurt."), quests) == (
        "*Previously…* The party fled the crypt. Borin was hurt.\n*Open quests:* Find the idol.")
    long = "First thing happened. " + "Then more. " * 80
    text = previously(chapter(5, long), [])
    assert text.startswith("*Previously…* First thing happened. Then more.") and text.endswith("Then more.")
    assert len(text) <= len("*Previously…* ") + 500
    assert previously(None, []) == ""
