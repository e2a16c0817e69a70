"""The lore matcher and the "what you remember" block: whole words in any script, exact budgets."""

from __future__ import annotations

import random
from typing import Any

from bot.game.lore import HEADER, LoreMatcher, entry_line, lore_block, unknown_names
from bot.llm.tokens import count_tokens
from bot.models import LoreEntry, LoreKind


def words(text: str) -> int:
    """One token per word (deterministic stand-in tokenizer)."""
    return len(text.split())


def entry(i: int, name: str, kind: LoreKind = "npc", **kw: Any) -> LoreEntry:
    return LoreEntry(i, 1, kind, name, **kw)


def names(matcher: LoreMatcher, text: str) -> list[str]:
    return [e.name for e in matcher.named([text])]


def test_whole_words_only_case_insensitive() -> None:
    m = LoreMatcher([entry(1, "Mira"), entry(2, "Vex")])
    assert names(m, "I greet MIRA, then vex.") == ["Mira", "Vex"]
    assert names(m, "Miranda and Vexing Vexes") == []
    assert names(m, "mira_2 or 2mira") == []
    assert names(m, "(Mira)") == ["Mira"]


def test_non_latin_scripts() -> None:
    m = LoreMatcher([entry(1, "Борис"), entry(2, "ヤマダ"), entry(3, "山田"), entry(4, "Ελένη")])
    assert names(m, "борис пришёл") == ["Борис"]
    assert names(m, "Борисов пришёл") == []
    assert names(m, "ヤマダさんに会う") == ["ヤマダ"]  # particles attach in Japanese: still a word
    assert names(m, "ヤマダイを見た") == []  # a longer Katakana word
    assert names(m, "山田さんと話す") == ["山田"]
    assert names(m, "ΕΛΈΝΗ γελά") == ["Ελένη"]


def test_aliases_and_the_longest_name_win() -> None:
    m = LoreMatcher([entry(1, "Mira"), entry(2, "Old Mira", aliases=("the Innkeeper",)), entry(3, "Old")])
    assert names(m, "Old Mira smiles") == ["Old Mira"]
    assert names(m, "Mira smiles at the old man") == ["Mira", "Old"]
    assert names(m, "THE INNKEEPER nods, and so does  Mira") == ["Old Mira", "Mira"]
    assert names(m, "nobody here") == [] and LoreMatcher([]).named(["Mira"]) == []


def test_a_matcher_grown_from_a_base_still_prefers_the_longest_name() -> None:
    base = LoreMatcher([entry(1, "Mira"), entry(3, "Old")])
    grown = LoreMatcher([entry(1, "Mira"), entry(3, "Old"), entry(2, "Old Mira")], base=base)
    assert names(grown, "Old Mira smiles") == ["Old Mira"]  # the new, longer name beats both old ones
    assert names(grown, "Mira smiles at the old man") == ["Mira", "Old"]
    shrunk = LoreMatcher([entry(2, "Old Mira")], base=grown)  # names went away: compiled afresh
    assert names(shrunk, "Mira and Old Mira") == ["Old Mira"]
    chain = base
    for i in range(10, 20):  # many small additions in a row stay correct
        chain = LoreMatcher([entry(1, "Mira"), entry(3, "Old"), *(entry(k, f"Name{k}") for k in range(10, i + 1))],
                            base=chain)
    assert names(chain, "name19 met name10 and mira") == ["Name19", "Name10", "Mira"]


def test_entry_lines_label_secrets_and_quests() -> None:
    assert entry_line(entry(1, "Mira", aliases=("the innkeeper",), description="Runs the\ninn.")) \
        == "- Mira (npc; also: the innkeeper): Runs the inn."
    assert entry_line(entry(2, "Vex", secret=True, description="Is the thief.")) \
        == "- [secret] Vex (npc): Is the thief."
    assert entry_line(entry(3, "Find the crown", "quest", status="open")) == "- Find the crown (quest, open)"
    assert entry_line(entry(4, "[Table] x")) == "- Table x (npc)"


def test_block_orders_pinned_quests_then_named_and_drops_the_rest() -> None:
    pinned = entry(1, "Guild", "faction", pinned=True, description="Rules the city.")
    quest = entry(2, "Crown", "quest", status="open", description="Find it.")
    done = entry(3, "Rats", "quest", status="done")
    mira = entry(4, "Mira", description="Innkeeper.", last_named_turn=3)
    vex = entry(5, "Vex", secret=True, description="The thief.", last_named_turn=9)
    unnamed = entry(6, "Bram")
    everything = [pinned, quest, done, mira, vex, unnamed]
    block = lore_block(everything, [vex, mira], budget=1000, count=words)
    assert block == "\n".join([HEADER, "- Guild (faction): Rules the city.", "- Crown (quest, open): Find it.",
                               "- [secret] Vex (npc): The thief.", "- Mira (npc): Innkeeper."])
    assert lore_block(everything, [vex], budget=0, count=words) == ""
    assert lore_block([], [], budget=1000, count=words) == ""  # nothing to remember: no block


def test_block_never_exceeds_the_budget_exactly() -> None:
    a = entry(1, "Mira", description="one two three")  # line: 6 words
    b = entry(2, "Vex", description="a b c d e f g h")  # line: 11 words
    c = entry(3, "Bo")  # line: 3 words
    head = words(HEADER)
    assert lore_block([], [a, b, c], budget=head - 1, count=words) == ""
    assert lore_block([], [a, b, c], budget=head, count=words) == ""  # no entry fits: no block
    assert lore_block([], [a, b, c], budget=head + 6, count=words) == f"{HEADER}\n- Mira (npc): one two three"
    assert lore_block([], [a, b, c], budget=head + 9, count=words) \
        == f"{HEADER}\n- Mira (npc): one two three\n- Bo (npc)"  # Vex is skipped, the shorter Bo fits
    assert lore_block([], [a, b, c], budget=head + 20, count=words).count("\n") == 3
    rng = random.Random(5)
    pool = [entry(i, f"Name{i}", description=" ".join("word" for _ in range(rng.randint(0, 40))),
                  pinned=rng.random() < 0.1, secret=rng.random() < 0.3) for i in range(1, 60)]
    for budget in range(0, 700, 7):
        for count in (words, lambda t: count_tokens(t, "gpt-4o-mini")):
            block = lore_block(pool, pool[10:], budget=budget, count=count)
            assert block == "" or (block.startswith(HEADER) and count(block) <= budget)


def test_unknown_names_are_capitalised_words_no_entry_or_party_member_covers() -> None:
    m = LoreMatcher([entry(1, "Old Mira", aliases=("the Innkeeper",))])
    texts = ["I ask Old Mira about Zorvath and the Gull.", "We tell Aria that Zorvath went to Saltmarsh."]
    assert unknown_names(texts, m, ["Aria"]) == ["Zorvath", "Gull", "Saltmarsh"]
    assert unknown_names(["Борис говорит с Мирой"], m, []) == ["Борис", "Мирой"]
    assert unknown_names(["I said OK. Then we go."], m, []) == []  # table words are not names
    assert unknown_names(["山田さんに会う"], m, []) == []  # no letter case: the lorebook alone decides
