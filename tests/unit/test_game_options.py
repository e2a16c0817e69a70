"""Admin options and typed-in fields are validated into clear sentences."""

from __future__ import annotations

import pytest

from bot.errors import UserInputError
from bot.game.options import parse_config_value, sheet_defaults, text_option
from bot.models import GuildConfig


def test_every_option_parses_a_good_value() -> None:
    good = {"model": "gpt-4o-mini", "temperature": "0.9", "max_tokens": "800", "turn_mode": "Mention",
            "turn_window_seconds": "4.5", "allowed_channel_ids": "<#12>, 34 12", "ignored_prefixes": "!, ?,!",
            "guild_daily_token_budget": "100000", "player_daily_token_budget": "0", "dm_style": "noir",
            "content_rating": "mature", "show_monster_hp": "On", "moderation": "yes", "average_monster_hp": "off",
            "stream_replies": "no", "pace": "Rounds"}
    assert set(good) == set(GuildConfig.keys())
    parsed = {k: parse_config_value(k, v) for k, v in good.items()}
    assert parsed == {"model": "gpt-4o-mini", "temperature": 0.9, "max_tokens": 800, "turn_mode": "mention",
                      "turn_window_seconds": 4.5, "allowed_channel_ids": (12, 34), "ignored_prefixes": ("!", "?"),
                      "guild_daily_token_budget": 100000, "player_daily_token_budget": 0, "dm_style": "noir",
                      "content_rating": "mature", "show_monster_hp": True, "moderation": True,
                      "average_monster_hp": False, "stream_replies": False, "pace": "rounds"}
    assert all(parse_config_value(k, "default") is None for k in good)
    assert parse_config_value("allowed_channel_ids", "any") == ()
    assert parse_config_value("ignored_prefixes", "none") == ()


@pytest.mark.parametrize("key, bad, named", [
    ("temperature", "3", "`temperature`"), ("temperature", "nan", "`temperature`"),
    ("turn_mode", "chaos", "`turn_mode`"), ("pace", "slow", "`pace`"),
    ("max_tokens", "ten", "`max_tokens`"), ("max_tokens", "10", "`max_tokens`"),
    ("allowed_channel_ids", "general", "`allowed_channel_ids`"), ("content_rating", "x", "`content_rating`"),
    ("nope", "1", "Unknown setting `nope`"), ("model", "gpt 4", "`model`"), ("model", "", "`model`"),
    ("dm_style", "a\nb", "`dm_style`"), ("ignored_prefixes", "!!!!!!", "ignored prefix is at most 5 characters"),
    ("guild_daily_token_budget", "-1", "`guild_daily_token_budget`"),
    ("turn_window_seconds", "500", "`turn_window_seconds`"), ("show_monster_hp", "maybe", "`show_monster_hp`"),
    ("moderation", "sometimes", "`moderation`"),
])
def test_bad_values_raise_a_sentence(key: str, bad: str, named: str) -> None:
    with pytest.raises(UserInputError) as info:
        parse_config_value(key, bad)
    assert named in info.value.player_message


def test_text_fields_and_sheet_defaults() -> None:
    assert text_option("  Aria ", "name", 40) == "Aria"
    assert text_option("", "backstory", 10, allow_empty=True) == ""
    assert text_option("line one\nline two", "backstory", 100, multiline=True) == "line one\nline two"
    for bad in ("", "x" * 41, "a\x07b", "two\nlines"):
        with pytest.raises(UserInputError, match="`name`"):
            text_option(bad, "name", 40)
    assert sheet_defaults("Wizard") == (8, 12) and sheet_defaults(" barbarian ") == (14, 14)
    assert sheet_defaults("Chronomancer") == (10, 12)
