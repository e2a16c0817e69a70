"""The limits of a character sheet, of campaign fields and of lorebook entries: the ONE source every
path uses.

``/join``, ``/character edit``, the model's sheet tools and the Discord commands' ``Range`` bounds all
read these numbers, so a value one path accepts is never refused (or silently accepted) by another.
Pure functions; every problem raises ``UserInputError`` with a sentence saying what is allowed.

Why these numbers: D&D 5e levels run 1 to 20 (SRD 5.1, "Beyond 1st Level"); armour class in play
sits far below 40 and hit points below 999 even for a 20th-level barbarian with a high Constitution,
so the bounds catch typos, not characters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from bot.errors import UserInputError
from bot.game.options import text_option

NAME_MAX: Final = 40  # characters of a character's name, class or ancestry
TEXT_MAX: Final = 1000  # characters of a backstory or of the player's notes
PLAYER_NAME_MAX: Final = 80  # characters of a player's display name as stored
MAX_HP_MIN: Final = 1
MAX_HP_MAX: Final = 999  # maximum hit points
HP_MIN: Final = 0  # current hit points never go below 0 (SRD 5.1, "Damage and Healing")
AC_MIN: Final = 1
AC_MAX: Final = 40  # armor class
LEVEL_MIN: Final = 1
LEVEL_MAX: Final = 20  # character level (SRD 5.1)
CONDITIONS_MAX: Final = 20  # conditions one character can have at once
INVENTORY_MAX: Final = 60  # items one character can carry on the sheet
ITEM_MAX: Final = 80  # characters of one condition or item
LIST_CHANGE_MAX: Final = 20  # items one tool call may add or remove at once
HP_CHANGE_MAX: Final = 10_000  # largest hit-point change or value one tool call may ask for

LORE_NAME_MAX: Final = 60  # characters of a lorebook entry's name or of one alias
LORE_ALIASES_MAX: Final = 8  # aliases of one entry
LORE_DESCRIPTION_MAX: Final = 600  # characters of an entry's description
LORE_DESCRIPTION_TOKENS: Final = 150  # tokens of an entry's description (checked after the characters)
LORE_EXTRACT_MAX: Final = 20  # entries one memory fold may extract

LORE_NOTE_MAX: Final = 200  # characters of the note ``update_quest`` adds to a quest
LORE_ENTRIES_MAX: Final = 5000  # live entries of one campaign's lorebook
LORE_CHANGES_PER_TURN: Final = 12  # lorebook changes the model's tools may make in one turn
RECALL_QUERY_MAX: Final = 200  # characters of a ``recall`` query
RECALL_RESULTS_MAX: Final = 5  # search hits ``recall`` returns

SEARCH_QUERY_MAX: Final = 200  # characters of a /campaign search query
TITLE_MAX: Final = 100  # characters of a campaign's title
SETTING_MAX: Final = 1500  # characters of a campaign's setting (premise)
TONE_MAX: Final = 200  # characters of a campaign's tone

TEXT_FIELDS: Final = ("name", "char_class", "ancestry")
LONG_TEXT_FIELDS: Final = ("backstory", "notes")
NUMBER_FIELDS: Final = ("hp", "max_hp", "ac", "level")
EDITABLE_BY_PLAYER: Final = TEXT_FIELDS + LONG_TEXT_FIELDS + NUMBER_FIELDS


def check_range(value: int, lo: int, hi: int, what: str) -> int:
    """``value`` if ``lo <= value <= hi``. Raises ``UserInputError`` naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserInputError(f"{what} must be a whole number.")
    if not lo <= value <= hi:
        raise UserInputError(f"{what} must be from {lo} to {hi}.")
    return value


def check_numbers(*, max_hp: int, ac: int, level: int) -> None:
    """Check a sheet's maximum hit points, armor class and level. Raises ``UserInputError``."""
    check_range(max_hp, MAX_HP_MIN, MAX_HP_MAX, "Maximum hit points")
    check_range(ac, AC_MIN, AC_MAX, "Armor class")
    check_range(level, LEVEL_MIN, LEVEL_MAX, "Level")


def clean_text_field(key: str, value: object) -> str:
    """A sheet text field (name/class/ancestry 1..``NAME_MAX``, backstory/notes up to ``TEXT_MAX``)
    stripped and checked. Raises ``UserInputError``."""
    label = "class" if key == "char_class" else key
    if key in LONG_TEXT_FIELDS:
        return text_option(str(value), label, TEXT_MAX, allow_empty=True, multiline=True)
    return text_option(str(value), label, NAME_MAX)


def check_sheet_edit(changes: Mapping[str, object], *, hp: int, max_hp: int) -> dict[str, Any]:
    """Validate a player's edit of their own sheet and return the changes to store.

    Args:
        changes: field -> new value, fields from ``EDITABLE_BY_PLAYER``.
        hp, max_hp: the sheet's current hit points and maximum.
    Returns:
        The cleaned changes; lowering the maximum below the current hit points also lowers them.
    Raises:
        UserInputError: an unknown field, a text that is empty or too long, a number out of range
            (hit points must stay within 0..the maximum).
    """
    clean: dict[str, Any] = {}
    for key, value in changes.items():
        if key in TEXT_FIELDS or key in LONG_TEXT_FIELDS:
            clean[key] = clean_text_field(key, value)
        elif key in NUMBER_FIELDS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise UserInputError(f"`{key}` must be a whole number.")
            clean[key] = value
        else:
            raise UserInputError(f"`{key}` can't be edited.")
    new_max = clean.get("max_hp", max_hp)
    check_range(new_max, MAX_HP_MIN, MAX_HP_MAX, "Maximum hit points")
    if "hp" in clean and not HP_MIN <= clean["hp"] <= new_max:
        raise UserInputError(f"Hit points must be from {HP_MIN} to your maximum ({new_max}).")
    if "max_hp" in clean and "hp" not in clean and hp > new_max:
        clean["hp"] = new_max
    if "level" in clean:
        check_range(clean["level"], LEVEL_MIN, LEVEL_MAX, "Level")
    if "ac" in clean:
        check_range(clean["ac"], AC_MIN, AC_MAX, "Armor class")
    return clean
