"""Pure game logic: turn collection, filtering, context budgeting, fold planning, tools, dice, options."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from bot.errors import UserInputError
from bot.game.api import IncomingMessage
from bot.game.context import HistoryWindow, message_cost, render, render_actions
from bot.game.dice import DiceError, roll
from bot.game.filters import classify, is_ooc
from bot.game.memory import cap_summary, plan_fold
from bot.game.sessions import parse_config_value
from bot.game.tools import ToolContext, run_tool
from bot.game.turns import TurnCollector
from bot.models import Character, GuildConfig, StoryMessage

CONFIG = GuildConfig(guild_id=1, model="gpt-4o-mini", temperature=0.8, max_tokens=500, turn_mode="batch",
                     turn_window_seconds=6, allowed_channel_ids=(), ignored_prefixes=("!", "?"),
                     guild_daily_token_budget=0, player_daily_token_budget=0, dm_style="classic",
                     content_rating="teen")


def msg(content: str, **kw: object) -> IncomingMessage:
    base: dict[str, object] = dict(guild_id=1, channel_id=10, author_id=5, author_name="bob", content=content)
    base.update(kw)
    return IncomingMessage(**base)  # type: ignore[arg-type]


def story(i: int, role: str = "player", tokens: int = 10, turn: int = 1) -> StoryMessage:
    return StoryMessage(id=i, campaign_id=1, turn=turn, role=role, author_id=5, author_name="bob",  # type: ignore[arg-type]
                        character_name="Aria" if role == "player" else None, content=f"m{i}",
                        token_count=tokens, state="answered", created_at=0.0)


# --- turn collection (times are plain numbers: no sleeping) ----------------------------------------
def test_window_opens_on_first_action_and_closes_at_deadline() -> None:
    c = TurnCollector(window=6, extend=2, max_window=20)
    assert not c.ready(0.0)
    c.add(100.0, author_id=1)
    assert not c.ready(105.9)
    assert c.ready(106.0)


def test_each_action_extends_but_never_past_the_cap() -> None:
    c = TurnCollector(window=6, extend=2, max_window=20)
    c.add(100.0, 1)
    c.add(105.5, 2)  # pushes close to 107.5
    assert not c.ready(107.0) and c.ready(107.5)
    for t in range(106, 125):
        c.add(float(t), 3)  # chatter keeps extending...
    assert c.deadline == 120.0  # ...but the hard cap is 20 s after the first action
    assert c.ready(120.0)


def test_closes_early_when_every_party_member_acted() -> None:
    c = TurnCollector(window=6, extend=2, max_window=20)
    c.add(100.0, 1)
    assert not c.ready(100.5, party_ids={1, 2})
    c.add(101.0, 2)
    assert c.ready(101.0, party_ids={1, 2})
    c.reset()
    assert not c.is_open and not c.ready(200.0)


# --- filtering ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["((brb, pizza))", "// rules question", "OOC: can I", "[OOC] lol", "(ooc) hi"])
def test_out_of_character_is_ignored(text: str) -> None:
    assert is_ooc(text)
    assert classify(msg(text), CONFIG, max_input_chars=100).reason == "ooc"


def test_filters_bots_prefixes_mentions_and_length() -> None:
    assert classify(msg("I attack", author_is_bot=True), CONFIG, max_input_chars=100).reason == "bot"
    assert classify(msg("!init join"), CONFIG, max_input_chars=100).reason == "prefix"
    assert classify(msg("?help"), CONFIG, max_input_chars=100).reason == "prefix"
    assert classify(msg("   "), CONFIG, max_input_chars=100).reason == "empty"
    assert classify(msg("I (carefully) open the door"), CONFIG, max_input_chars=100).status == "act"
    long = classify(msg("x" * 101), CONFIG, max_input_chars=100)
    assert long.status == "refused" and "100" in (long.message or "")
    mention = replace(CONFIG, turn_mode="mention")
    assert classify(msg("I attack"), mention, max_input_chars=100).reason == "not_mentioned"
    assert classify(msg("I attack", mentions_bot=True), mention, max_input_chars=100).status == "act"
    assert classify(msg("!cast fireball", explicit_action=True), CONFIG, max_input_chars=100).status == "act"
    limited = replace(CONFIG, allowed_channel_ids=(99,))
    assert classify(msg("I attack"), limited, max_input_chars=100).reason == "channel_not_allowed"


# --- prompt ---------------------------------------------------------------------------------------
def test_player_text_is_delimited_in_user_role() -> None:
    rendered = render(story(1))
    assert rendered == {"role": "user", "content": "[Aria (player: bob)]: <<<m1>>>"}
    assert render(story(2, role="dm"))["role"] == "assistant"
    both = render_actions([story(1), story(2)])
    assert both["content"].count("<<<") == 2 and both["role"] == "user"


def test_history_window_fits_budget_and_is_sticky() -> None:
    history = [story(i, role="player" if i % 2 else "dm", tokens=42) for i in range(1, 41)]  # 50 each
    window = HistoryWindow()
    first = window.select(history[:10], budget=1000)
    assert [m.id for m in first] == list(range(1, 11))  # 500 tokens: all fit
    chosen = window.select(history, budget=1000)  # 2,000 tokens: jump to ~600
    assert sum(message_cost(m) for m in chosen) <= 1000
    assert chosen[-1].id == 40 and chosen[0].role == "player"
    start = chosen[0].id
    more = history + [story(41, tokens=42), story(42, role="dm", tokens=42)]
    again = window.select(more, budget=1000)
    assert again[0].id == start  # the start did not move: the prefix stays identical


# --- memory ---------------------------------------------------------------------------------------
def test_fold_plan_keeps_recent_budget_and_ends_on_dm_reply() -> None:
    history = [story(i, role="player" if i % 2 else "dm", tokens=92) for i in range(1, 21)]  # 100 each
    assert plan_fold(history, trigger_tokens=5000, keep_tokens=500) is None
    plan = plan_fold(history, trigger_tokens=1500, keep_tokens=500)
    assert plan is not None
    assert plan.messages[-1].role == "dm"
    kept = [m for m in history if m.id > plan.through_id]
    assert sum(message_cost(m) for m in kept) >= 500


def test_cap_summary_cuts_to_token_cap_at_sentence() -> None:
    text = " ".join(f"Sentence number {i} happened." for i in range(200))
    count = lambda t: len(t.split())  # noqa: E731 - a word-count tokenizer for the test
    capped = cap_summary(text, 50, count)
    assert count(capped) <= 50 and capped.endswith(".")
    assert cap_summary("Short.", 50, count) == "Short."


# --- tools ----------------------------------------------------------------------------------------
def _ctx() -> ToolContext:
    aria = Character(id=1, campaign_id=1, player_id=5, player_name="bob", name="Aria", char_class="Rogue",
                     ancestry="Elf", hp=8, max_hp=10, inventory=("rope",))
    updates: list[dict[str, object]] = []

    async def update(cid: int, **changes: object) -> Character:
        updates.append(changes)
        return replace(aria, hp=changes["hp"], conditions=tuple(changes["conditions"]),  # type: ignore[arg-type]
                       inventory=tuple(changes["inventory"]))  # type: ignore[arg-type]

    ctx = ToolContext(campaign_id=1, turn=3, party=[aria], update=update)
    ctx.updates = updates  # type: ignore[attr-defined]
    return ctx


async def test_roll_tool_rolls_real_dice_and_records() -> None:
    ctx = _ctx()
    out = json.loads(await run_tool(ctx, "roll_dice", '{"expression": "1d20+5", "reason": "Stealth", "character": "aria"}'))
    assert 6 <= out["total"] <= 25 and "1d20" in out["breakdown"]
    assert len(ctx.rolls) == 1 and ctx.rolls[0].character_name == "Aria" and ctx.rolls[0].by_dm


async def test_update_character_clamps_hp_and_rejects_impossible() -> None:
    ctx = _ctx()
    out = json.loads(await run_tool(ctx, "update_character", '{"character": "Aria", "hp_change": 50, "add_conditions": ["poisoned"]}'))
    assert out["sheet"]["hp"] == 10 and out["sheet"]["conditions"] == ["poisoned"]
    out = json.loads(await run_tool(ctx, "update_character", '{"character": "Aria", "remove_items": ["sword"]}'))
    assert "does not carry" in out["error"]
    out = json.loads(await run_tool(ctx, "update_character", '{"character": "Zed", "hp_change": -3}'))
    assert "no player character" in out["error"]


async def test_bad_tool_calls_become_errors_not_crashes() -> None:
    ctx = _ctx()
    assert "unknown tool" in json.loads(await run_tool(ctx, "cast_wish", "{}"))["error"]
    assert "not valid JSON" in json.loads(await run_tool(ctx, "roll_dice", "{oops"))["error"]
    assert "JSON object" in json.loads(await run_tool(ctx, "roll_dice", "[1]"))["error"]
    assert "can't roll" in json.loads(await run_tool(ctx, "roll_dice", '{"expression": "1d20+", "reason": "x"}'))["error"]
    assert ctx.rolls == []


# --- dice -----------------------------------------------------------------------------------------
def test_dice_expressions_and_breakdown() -> None:
    total, breakdown, _ = roll("4d6kh3")
    assert 3 <= total <= 18 and "~~" in breakdown  # the dropped die is struck through
    total, breakdown, _ = roll("adv 1d20+2")
    assert breakdown.startswith("2d20kh1") and 3 <= total <= 22
    for bad in ("", "1d20+", "300d6", "1d5000", "x" * 150):
        with pytest.raises(DiceError):
            roll(bad)


# --- admin options --------------------------------------------------------------------------------
def test_config_values_are_validated() -> None:
    assert parse_config_value("temperature", "0.9") == 0.9
    assert parse_config_value("allowed_channel_ids", "<#12>, 34") == (12, 34)
    assert parse_config_value("ignored_prefixes", "!,?") == ("!", "?")
    assert parse_config_value("model", "default") is None
    for key, bad in [("temperature", "3"), ("turn_mode", "chaos"), ("max_tokens", "ten"),
                     ("allowed_channel_ids", "general"), ("content_rating", "x"), ("nope", "1"),
                     ("model", "gpt 4")]:
        with pytest.raises(UserInputError):
            parse_config_value(key, bad)
