"""Dice through the d20 library: expressions, advantage, breakdowns, limits, helpful errors."""

from __future__ import annotations

import random

import pytest

from bot.game.dice import MAX_ROLLS, MAX_SIDES, DiceError, make_roll, roll


@pytest.fixture(autouse=True)
def _seeded() -> None:
    random.seed(1234)  # d20 rolls with the random module


def test_expressions_roll_within_their_range() -> None:
    for expr, lo, hi in [("1d20+5", 6, 25), ("4d6kh3", 3, 18), ("2d6+1d4-1", 2, 15), ("8d6", 8, 48), ("3", 3, 3)]:
        for _ in range(50):
            total, breakdown, normalised = roll(expr)
            assert lo <= total <= hi and normalised == expr and breakdown.endswith(f"`{total}`")


def test_keep_highest_strikes_the_dropped_die() -> None:
    total, breakdown, _ = roll("4d6kh3")
    assert "~~" in breakdown and breakdown.startswith("4d6kh3 (")


def test_advantage_and_disadvantage() -> None:
    for _ in range(50):
        total, breakdown, expr = roll("adv 1d20+2")
        assert breakdown.startswith("2d20kh1") and 3 <= total <= 22 and expr == "1d20+2"
        total, breakdown, _ = roll("disadvantage 1d20")
        assert breakdown.startswith("2d20kl1") and 1 <= total <= 20
    _, breakdown, expr = roll("adv")
    assert expr == "1d20" and breakdown.startswith("2d20kh1")


@pytest.mark.parametrize("bad, hint", [("", "Give a dice expression"), ("1d20+", "write it like"),
                                       ("fireball", "write it like"), (f"{MAX_ROLLS + 1}d6", "too many dice"),
                                       (f"1d{MAX_SIDES + 1}", "sides"), ("1000d1000000", "sides"),
                                       ("1d20+" * 30, "too long")])
def test_bad_expressions_raise_a_helpful_user_error(bad: str, hint: str) -> None:
    with pytest.raises(DiceError) as info:
        roll(bad)
    assert hint in info.value.player_message


def test_make_roll_builds_a_record() -> None:
    record = make_roll("1d20+3", reason="  Stealth  ", roller_id=5, roller_name="bob", character_name="Aria",
                       campaign_id=2, turn=4)
    assert record.id is None and record.expression == "1d20+3" and record.reason == "Stealth"
    assert 4 <= record.total <= 23 and not record.by_dm and record.turn == 4


@pytest.mark.parametrize(("expr", "hint"), [
    ("1d20/0", "divide by zero"),  # d20 evaluates lazily: the error surfaces after parsing
    ("(1d6-1d6)/0", "divide by zero"),
    ("1d20*9999999999999999999999", "out of range"),  # would overflow the 64-bit column it is stored in
    ("-1d20*99999999999999", "out of range"),
])
def test_arithmetic_that_cannot_be_stored_or_computed_is_a_user_error(expr: str, hint: str) -> None:
    with pytest.raises(DiceError) as caught:
        roll(expr)
    assert hint in caught.value.player_message
