"""Which messages are for the DM (pure classification)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bot.game.api import IncomingMessage
from bot.game.filters import classify, has_words, is_ooc
from bot.models import GuildConfig

CONFIG = GuildConfig(guild_id=1, model="gpt-4o-mini", temperature=0.8, max_tokens=500, turn_mode="batch",
                     turn_window_seconds=6, allowed_channel_ids=(), ignored_prefixes=("!", "?"),
                     guild_daily_token_budget=0, player_daily_token_budget=0, dm_style="classic",
                     content_rating="teen")


def msg(content: str, **kw: Any) -> IncomingMessage:
    base: dict[str, Any] = dict(guild_id=1, channel_id=10, author_id=5, author_name="bob", content=content)
    base.update(kw)
    return IncomingMessage(**base)


def verdict(content: str, config: GuildConfig = CONFIG, limit: int = 100, **kw: object) -> tuple[str, str]:
    v = classify(msg(content, **kw), config, max_input_chars=limit)
    return v.status, v.reason


@pytest.mark.parametrize("text", ["((brb, pizza))", "  // rules question", "OOC: can I", "ooc - lag",
                                  "[OOC] lol", "(ooc) hi", "(gah, dis)", "(thunder, if it matters?)"])
def test_out_of_character_is_ignored(text: str) -> None:
    assert is_ooc(text)
    assert verdict(text) == ("ignored", "ooc")


@pytest.mark.parametrize("text", ["I (carefully) open the door", "(I whisper) Run!", "Oooh, shiny",
                                  "I shout: OOC is not a spell", "*draws a sword*", "\"Hello there.\""])
def test_in_character_text_is_an_action(text: str) -> None:
    assert not is_ooc(text)
    assert verdict(text) == ("act", "")


@pytest.mark.parametrize("text", ["", "   ", "1", "y", "4", "...", "👍", "?!"])
def test_nothing_to_answer_is_ignored_as_empty(text: str) -> None:
    assert verdict(text, replace(CONFIG, ignored_prefixes=())) == ("ignored", "empty")


def test_other_bots_and_their_commands_are_ignored() -> None:
    assert verdict("I attack the goblin", author_is_bot=True) == ("ignored", "bot")
    assert verdict("!init join") == ("ignored", "prefix")
    assert verdict("?help") == ("ignored", "prefix")
    assert verdict("!init join", replace(CONFIG, ignored_prefixes=())) == ("act", "")
    assert verdict("ok") == ("act", "") and has_words("ok") and not has_words("k!")


def test_overlong_input_is_refused_with_a_clear_message_not_cut() -> None:
    v = classify(msg("word " * 30), CONFIG, max_input_chars=100)
    assert v.status == "refused" and v.reason == "too_long"
    assert "149" in (v.message or "") and "100" in (v.message or "") and "nothing was sent" in (v.message or "")
    assert verdict("word " * 20, limit=100) == ("act", "")  # exactly 99 characters after stripping


def test_mention_mode_explicit_actions_and_channel_limits() -> None:
    mention = replace(CONFIG, turn_mode="mention")
    assert verdict("I attack", mention) == ("ignored", "not_mentioned")
    assert verdict("I attack", mention, mentions_bot=True) == ("act", "")
    assert verdict("I attack", mention, replies_to_bot=True) == ("act", "")
    assert verdict("!cast fireball", explicit_action=True) == ("act", "")  # /act is always in character
    assert verdict("((hm))", mention, explicit_action=True) == ("act", "")
    assert verdict("x", explicit_action=True) == ("act", "")
    assert verdict("  ", explicit_action=True) == ("ignored", "empty")
    limited = replace(CONFIG, allowed_channel_ids=(99,))
    assert verdict("I attack", limited) == ("ignored", "channel_not_allowed")
    assert verdict("I attack", limited, channel_id=99) == ("act", "")
    assert verdict("x" * 200, limit=100, author_is_bot=True) == ("ignored", "bot")  # bots never get refusals
