"""Model actions: code performs them, bad calls become error results, never crashes."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from bot.game.tools import TOOL_SCHEMAS, ToolContext, run_tool, tool_names
from bot.models import Character

ARIA = Character(id=1, campaign_id=1, player_id=5, player_name="bob", name="Aria Moonwhisper", char_class="Rogue",
                 ancestry="Elf", hp=8, max_hp=10, inventory=("rope", "torch", "torch"))
BORIN = Character(id=2, campaign_id=1, player_id=6, player_name="cy", name="Borin", char_class="Fighter",
                  ancestry="Dwarf", hp=12, max_hp=12, conditions=("prone",))


@dataclass
class RecordingContext(ToolContext):
    """A ``ToolContext`` that also keeps every ``update`` call made through it."""

    updates: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


def ctx() -> RecordingContext:
    updates: list[tuple[int, dict[str, Any]]] = []
    party = [ARIA, BORIN]

    async def update(cid: int, **changes: Any) -> Character:
        updates.append((cid, changes))
        current = next(c for c in party if c.id == cid)
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()}
        new = replace(current, **fields)
        party[:] = [new if c.id == cid else c for c in party]
        return new

    return RecordingContext(campaign_id=1, turn=3, party=list(party), update=update, updates=updates)


async def call(context: ToolContext, name: str, args: Any) -> dict[str, Any]:
    return json.loads(await run_tool(context, name, args if isinstance(args, str) else json.dumps(args)))


def test_schemas_are_valid_function_tools() -> None:
    assert tool_names() == ["roll_dice", "update_character", "get_character", "remember", "update_quest", "recall",
                            "start_encounter", "add_combatant", "remove_combatant", "attack", "damage", "heal",
                            "set_condition", "clear_condition", "end_turn", "end_encounter"]
    for schema in TOOL_SCHEMAS:
        fn = schema["function"]
        assert schema["type"] == "function" and fn["parameters"]["type"] == "object"
        assert set(fn["parameters"]["required"]) <= set(fn["parameters"]["properties"])


async def test_roll_dice_rolls_for_real_and_records() -> None:
    random.seed(7)
    c = ctx()
    out = await call(c, "roll_dice", {"expression": "1d20+5", "reason": "Stealth", "character": "aria"})
    assert 6 <= out["total"] <= 25 and out["breakdown"].startswith("1d20 (")
    assert len(c.rolls) == 1 and c.rolls[0].character_name == "Aria Moonwhisper" and c.rolls[0].by_dm
    assert c.rolls[0].total == out["total"] and c.rolls[0].turn == 3 and c.rolls[0].reason == "Stealth"
    adv = await call(c, "roll_dice", {"expression": "1d20+1", "reason": "attack", "advantage": "advantage",
                                      "character": "a goblin"})
    assert adv["breakdown"].startswith("2d20kh1") and c.rolls[1].character_name == "a goblin"
    bad = await call(c, "roll_dice", {"expression": "1d20", "reason": "x", "advantage": "maybe"})
    assert "advantage must be" in bad["error"] and len(c.rolls) == 2


async def test_update_character_changes_clamps_and_describes() -> None:
    c = ctx()
    out = await call(c, "update_character", {"character": "Aria", "hp_change": 50, "add_conditions": ["poisoned"],
                                              "remove_items": ["TORCH"], "add_items": ["idol"]})
    assert out["ok"] and out["sheet"]["hp"] == 10 and out["sheet"]["conditions"] == ["poisoned"]
    assert out["sheet"]["inventory"] == ["rope", "torch", "idol"] and "clamped" in out["note"][0]
    assert c.changes == ["Aria Moonwhisper: HP 8 → 10/10; +poisoned; gains idol; loses torch"]
    out = await call(c, "update_character", {"character": "Borin", "set_hp": 3, "hp_change": -5,
                                              "remove_conditions": ["Prone"]})
    assert out["sheet"]["hp"] == 0 and out["sheet"]["conditions"] == []
    assert [p.hp for p in c.party] == [10, 0]  # the context's party follows the changes
    same = await call(c, "update_character", {"character": "Borin", "hp_change": 0})
    assert same["unchanged"] and len(c.updates) == 2


@pytest.mark.parametrize("args, error", [
    ({"character": "Zed", "hp_change": -3}, "no player character named 'Zed'; the party is: Aria Moonwhisper, Borin"),
    ({"character": "Aria", "remove_items": ["sword"]}, "does not carry 'sword'"),
    ({"character": "Aria", "hp_change": "lots"}, "hp_change must be a whole number"),
    ({"character": "Aria", "hp_change": True}, "hp_change must be a whole number"),
    ({"character": "Aria", "hp_change": 2.5}, "hp_change must be a whole number"),
    ({"character": "Aria", "set_hp": 10 ** 9}, "out of range"),
    ({"character": "Aria", "add_items": "idol"}, None),  # a lone string is accepted as one item
    ({"character": "Aria", "add_items": [1, 2]}, "must be a list of strings"),
    ({"character": "Aria", "add_items": ["x"] * 21}, "at most 20"),
    ({}, "no player character"),
])
async def test_impossible_or_malformed_changes_become_error_results(args: dict[str, Any], error: str | None) -> None:
    c = ctx()
    out = await call(c, "update_character", args)
    if error is None:
        assert out["ok"]
    else:
        assert error in out["error"] and c.updates == []


async def test_bad_calls_never_crash() -> None:
    c = ctx()
    assert "unknown tool 'cast_wish'" in (await call(c, "cast_wish", {}))["error"]
    assert "not valid JSON" in (await call(c, "roll_dice", "{oops"))["error"]
    assert "JSON object" in (await call(c, "roll_dice", "[1]"))["error"]
    assert "can't roll" in (await call(c, "roll_dice", {"expression": "1d20+", "reason": "x"}))["error"]
    assert "expression must be a string" in (await call(c, "roll_dice", {"expression": 20}))["error"]
    assert (await call(c, "get_character", {"character": "borin"}))["hp"] == 12
    assert "no player character" in (await call(c, "get_character", {"character": 5}))["error"]

    async def broken(cid: int, **changes: Any) -> Character:
        raise RuntimeError("database on fire")

    c.update = broken
    assert "tool failed" in (await call(c, "update_character", {"character": "Borin", "hp_change": -1}))["error"]
    assert c.rolls == [] and len(c.calls) == 8
    assert c.calls[0][0] == "cast_wish" and '"error"' in c.calls[0][2]


async def test_first_name_matches_only_when_unique() -> None:
    c = ctx()
    assert c.find("aria") is ARIA and c.find("ARIA MOONWHISPER") is ARIA and c.find("") is None
    c.party.append(replace(ARIA, id=3, name="Aria Stone"))
    assert c.find("aria") is None and c.find("aria stone") is not None
