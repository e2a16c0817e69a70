"""Validation of what people type into commands: server options (``/config set``), campaign and
character fields, and the default numbers of a new character sheet. Pure functions, no I/O.

Every problem raises ``UserInputError`` with a sentence saying what is allowed.
"""

from __future__ import annotations

import re
from typing import Any

from bot.errors import UserInputError
from bot.models import GuildConfig

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_CONTROL_ANY = re.compile(r"[\x00-\x1f\x7f]")

# Level-1 hit points (hit die maximum + 2 for a typical Constitution) and a typical armor class by
# class, from the D&D 5e System Reference Document 5.1 class tables (CC-BY-4.0).
CLASS_DEFAULTS: dict[str, tuple[int, int]] = {
    "barbarian": (14, 14), "fighter": (12, 16), "paladin": (12, 16), "ranger": (12, 14),
    "bard": (10, 13), "cleric": (10, 16), "druid": (10, 13), "monk": (10, 15), "rogue": (10, 14),
    "warlock": (10, 13), "artificer": (10, 15), "sorcerer": (8, 12), "wizard": (8, 12),
}
DEFAULT_SHEET = (10, 12)  # hit points, armor class for a class not in the table

OPTION_HELP = {
    "model": "a model name without spaces, e.g. `gpt-4o-mini`",
    "temperature": "a number from 0 to 2",
    "max_tokens": "a whole number from 50 to 4000 (longest DM reply, tokens)",
    "turn_mode": "`batch` (group turns) or `mention` (answer mentions only)",
    "turn_window_seconds": "a number of seconds from 0 to 120",
    "allowed_channel_ids": "comma-separated channel ids or #channel mentions, or `any`",
    "ignored_prefixes": "comma-separated prefixes of other bots' commands, e.g. `!,?`, or `none`",
    "guild_daily_token_budget": "tokens per UTC day for the server, 0 = unlimited",
    "player_daily_token_budget": "tokens per UTC day per player, 0 = unlimited",
    "dm_style": "up to 300 characters describing the narrative style",
    "content_rating": "`family`, `teen` or `mature`",
    "average_monster_hp": "`on` (SRD monsters get their listed average hit points) or `off` (rolled from "
                          "their hit dice by code)",
    "show_monster_hp": "`on` (the combat tracker shows monsters' hit points) or `off` (described: unhurt, hurt, "
                       "bloodied, down)",
    "stream_replies": "`on` (the DM's reply appears while it is written, edited in place about once a second) "
                      "or `off` (it appears when complete)",
    "pace": "`auto` (follows how fast the table posts), `live` (a short window) or `rounds` (play by post: the DM "
            "waits for every active character or the round's deadline)",
    "moderation": "`on` (player messages and the DM's replies are checked with the endpoint's moderation API, "
                  "thresholds following `content_rating`) or `off`",
}
_TRUE = ("on", "yes", "true", "1")
_FALSE = ("off", "no", "false", "0")


def text_option(value: str, name: str, max_len: int, *, allow_empty: bool = False,
                multiline: bool = False) -> str:
    """``value`` stripped, checked to be 1..``max_len`` characters of plain text (no control characters;
    newlines only when ``multiline``). Raises ``UserInputError`` naming ``name``."""
    value = (value or "").strip()
    bad = (_CONTROL if multiline else _CONTROL_ANY).search(value)
    if (not value and not allow_empty) or len(value) > max_len or bad:
        raise UserInputError(f"`{name}` must be {'up to' if allow_empty else '1 to'} {max_len} characters "
                             "of plain text.")
    return value


def _number(value: str, name: str, kind: type, lo: float, hi: float) -> Any:
    try:
        number = kind(value.strip())
    except ValueError:
        raise UserInputError(f"`{name}` must be a {'whole ' if kind is int else ''}number "
                             f"from {lo:g} to {hi:g}.") from None
    if not lo <= number <= hi:  # also refuses NaN
        raise UserInputError(f"`{name}` must be from {lo:g} to {hi:g}.")
    return number


def parse_config_value(key: str, raw: str) -> Any:
    """Validate an admin's text for a server option and return the typed value (``None`` for
    ``default``, which resets it to the process default).

    Args:
        key: an option name from ``GuildConfig.keys()``.
        raw: the text the admin typed.
    Raises:
        UserInputError: unknown key or a bad value, with a sentence saying what is allowed.
    """
    if key not in GuildConfig.keys():
        raise UserInputError(f"Unknown setting `{key}`. Settings: {', '.join(GuildConfig.keys())}.")
    value = (raw or "").strip()
    if _CONTROL_ANY.search(value):
        raise UserInputError(f"`{key}` is {OPTION_HELP[key]}.")
    if value.lower() == "default":
        return None
    if key == "model":
        if not value or re.search(r"\s", value) or len(value) > 100:
            raise UserInputError(f"`model` is {OPTION_HELP['model']}.")
        return value
    if key == "temperature":
        return _number(value, key, float, 0, 2)
    if key == "max_tokens":
        return _number(value, key, int, 50, 4000)
    if key == "turn_window_seconds":
        return _number(value, key, float, 0, 120)
    if key in ("guild_daily_token_budget", "player_daily_token_budget"):
        return _number(value, key, int, 0, 1_000_000_000)
    if key in ("turn_mode", "content_rating", "pace"):
        allowed = {"turn_mode": ("batch", "mention"), "content_rating": ("family", "teen", "mature"),
                   "pace": ("auto", "live", "rounds")}[key]
        if value.lower() not in allowed:
            raise UserInputError(f"`{key}` is {OPTION_HELP[key]}.")
        return value.lower()
    if key == "dm_style":
        return text_option(value, key, 300)
    if key in ("show_monster_hp", "moderation", "average_monster_hp", "stream_replies"):
        if value.lower() not in _TRUE + _FALSE:
            raise UserInputError(f"`{key}` is {OPTION_HELP[key]}.")
        return value.lower() in _TRUE
    if key == "allowed_channel_ids":
        if value.lower() in ("any", "all", "none", ""):
            return ()
        ids: list[int] = []
        for part in re.split(r"[,\s]+", value):
            part = part.strip().removeprefix("<#").removesuffix(">")
            if not part:
                continue
            if not part.isdigit() or len(part) > 20:
                raise UserInputError(f"`allowed_channel_ids` is {OPTION_HELP[key]}.")
            ids.append(int(part))
        return tuple(dict.fromkeys(ids))
    if key == "ignored_prefixes":
        if value.lower() in ("none", ""):
            return ()
        prefixes = tuple(dict.fromkeys(p.strip() for p in value.split(",") if p.strip()))
        if any(len(p) > 5 for p in prefixes):
            raise UserInputError("Each ignored prefix is at most 5 characters, comma-separated, e.g. `!,?`.")
        return prefixes
    raise UserInputError(f"`{key}` cannot be set.")  # pragma: no cover - keys() covers all


def sheet_defaults(char_class: str) -> tuple[int, int]:
    """Level-1 ``(max hit points, armor class)`` for a class name (case-insensitive)."""
    return CLASS_DEFAULTS.get(char_class.strip().lower(), DEFAULT_SHEET)
