"""The sheet's limits: one source for /join, /character edit, the model's tools and the cogs."""

from __future__ import annotations

import pytest

from bot.errors import UserInputError
from bot.game import rules


def test_new_sheet_numbers_are_checked_at_their_bounds() -> None:
    rules.check_numbers(max_hp=1, ac=1, level=1)
    rules.check_numbers(max_hp=999, ac=40, level=20)
    for bad, sentence in [({"max_hp": 0}, "Maximum hit points must be from 1 to 999."),
                          ({"max_hp": 1000}, "Maximum hit points must be from 1 to 999."),
                          ({"ac": 41}, "Armor class must be from 1 to 40."),
                          ({"level": 0}, "Level must be from 1 to 20."),
                          ({"level": 21}, "Level must be from 1 to 20.")]:
        numbers = {"max_hp": 10, "ac": 12, "level": 1, **bad}
        with pytest.raises(UserInputError) as raised:
            rules.check_numbers(**numbers)
        assert str(raised.value) == sentence


def test_an_edit_keeps_hit_points_within_zero_and_the_maximum() -> None:
    assert rules.check_sheet_edit({"hp": 0}, hp=8, max_hp=12) == {"hp": 0}
    assert rules.check_sheet_edit({"hp": 12}, hp=8, max_hp=12) == {"hp": 12}
    with pytest.raises(UserInputError) as negative:
        rules.check_sheet_edit({"hp": -1}, hp=8, max_hp=12)
    assert str(negative.value) == "Hit points must be from 0 to your maximum (12)."
    with pytest.raises(UserInputError):
        rules.check_sheet_edit({"hp": 13}, hp=8, max_hp=12)
    # a new, higher maximum allows the higher value in the same edit
    assert rules.check_sheet_edit({"hp": 20, "max_hp": 20}, hp=8, max_hp=12) == {"hp": 20, "max_hp": 20}


def test_lowering_the_maximum_lowers_current_hit_points_with_it() -> None:
    assert rules.check_sheet_edit({"max_hp": 6}, hp=8, max_hp=12) == {"max_hp": 6, "hp": 6}
    assert rules.check_sheet_edit({"max_hp": 10}, hp=8, max_hp=12) == {"max_hp": 10}


def test_edit_texts_are_cleaned_and_unknown_or_mistyped_fields_refused() -> None:
    assert rules.check_sheet_edit({"name": "  Aria  ", "notes": "owes\nthe guild"}, hp=1, max_hp=1) == {
        "name": "Aria", "notes": "owes\nthe guild"}
    refused: list[tuple[dict[str, object], str]] = [
        ({"name": "x" * 41}, "`name` must be 1 to 40 characters of plain text."),
        ({"char_class": ""}, "`class` must be 1 to 40 characters of plain text."),
        ({"backstory": "y" * 1001}, "`backstory` must be up to 1000 characters of plain text."),
        ({"level": "3"}, "`level` must be a whole number."),
        ({"ac": True}, "`ac` must be a whole number."),
        ({"player_id": 5}, "`player_id` can't be edited.")]
    for changes, sentence in refused:
        with pytest.raises(UserInputError) as raised:
            rules.check_sheet_edit(changes, hp=1, max_hp=1)
        assert str(raised.value) == sentence
