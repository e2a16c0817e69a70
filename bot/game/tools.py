"""Tools the DM model may call; code performs them, so numbers stay honest.

- ``roll_dice(expression, reason, character?)``: a real roll with d20; the result is shown to the
  table with its breakdown and stored with the turn.
- ``update_character(character, hp_change?, set_hp?, add_conditions?, remove_conditions?,
  add_items?, remove_items?)``: change a sheet within its rules (HP stays within 0..max HP).
- ``get_character(character)``: read a sheet.

An unknown tool, arguments that are not a JSON object, or an impossible change produce
``{"error": "..."}`` for the model to read; nothing here raises into the turn.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.errors import UserInputError
from bot.game.dice import make_roll
from bot.models import Character, RollRecord

log = logging.getLogger(__name__)

_STR_LIST = {"type": "array", "items": {"type": "string"}}

TOOL_SCHEMAS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "roll_dice",
        "description": "Roll dice for real. Use for every check, save, attack, damage or random table. "
                       "Examples: 1d20+5, 2d20kh1+3 (advantage), 2d20kl1 (disadvantage), 8d6, 4d6kh3.",
        "parameters": {"type": "object", "properties": {
            "expression": {"type": "string", "description": "Dice expression"},
            "reason": {"type": "string", "description": "What the roll is for, e.g. 'Aria: Perception check'"},
            "character": {"type": "string", "description": "Character name the roll belongs to, if any"},
        }, "required": ["expression", "reason"]}}},
    {"type": "function", "function": {
        "name": "update_character",
        "description": "Change a player character's sheet: hit points, conditions, inventory.",
        "parameters": {"type": "object", "properties": {
            "character": {"type": "string"},
            "hp_change": {"type": "integer", "description": "Damage as negative, healing as positive"},
            "set_hp": {"type": "integer"},
            "add_conditions": _STR_LIST, "remove_conditions": _STR_LIST,
            "add_items": _STR_LIST, "remove_items": _STR_LIST,
        }, "required": ["character"]}}},
    {"type": "function", "function": {
        "name": "get_character",
        "description": "Read a player character's current sheet.",
        "parameters": {"type": "object", "properties": {"character": {"type": "string"}},
                       "required": ["character"]}}},
]


@dataclass
class ToolContext:
    """What a tool call can see and change during one turn.

    ``update`` persists a sheet change (character id, field changes) and returns the new sheet.
    """

    campaign_id: int
    turn: int
    party: list[Character]
    update: Callable[..., Awaitable[Character]]
    rolls: list[RollRecord] = field(default_factory=list)

    def find(self, name: Any) -> Character | None:
        if not isinstance(name, str):
            return None
        wanted = name.strip().casefold()
        for c in self.party:
            if c.name.casefold() == wanted:
                return c
        first = wanted.split()[0] if wanted else ""
        for c in self.party:  # "Aria Moonwhisper" asked as "Aria"
            if first and c.name.casefold().split()[0] == first:
                return c
        return None


def sheet_dict(c: Character) -> dict[str, Any]:
    return {"name": c.name, "class": c.char_class, "ancestry": c.ancestry, "level": c.level,
            "hp": c.hp, "max_hp": c.max_hp, "ac": c.ac, "conditions": list(c.conditions),
            "inventory": list(c.inventory)}


def _strs(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of strings")
    return [v.strip()[:80] for v in value if v.strip()][:20]


async def _roll_dice(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    expression = args.get("expression")
    if not isinstance(expression, str):
        return {"error": "expression must be a string like '1d20+5'"}
    character = ctx.find(args.get("character"))
    try:
        record = make_roll(expression, reason=str(args.get("reason") or ""), roller_id=None,
                           roller_name="DM", character_name=character.name if character else
                           (str(args["character"])[:40] if isinstance(args.get("character"), str) else None),
                           campaign_id=ctx.campaign_id, turn=ctx.turn, by_dm=True)
    except UserInputError as exc:
        return {"error": str(exc)}
    ctx.rolls.append(record)
    return {"expression": record.expression, "total": record.total, "breakdown": record.breakdown}


async def _update_character(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    c = ctx.find(args.get("character"))
    if c is None:
        return {"error": f"no player character named {args.get('character')!r}; the party is: "
                         + ", ".join(p.name for p in ctx.party)}
    try:
        hp = c.hp
        if args.get("set_hp") is not None:
            if not isinstance(args["set_hp"], int):
                raise ValueError("set_hp must be an integer")
            hp = args["set_hp"]
        if args.get("hp_change") is not None:
            if not isinstance(args["hp_change"], int):
                raise ValueError("hp_change must be an integer")
            hp += args["hp_change"]
        hp = max(0, min(hp, c.max_hp))
        conditions = [x for x in c.conditions
                      if x.casefold() not in {r.casefold() for r in _strs(args.get("remove_conditions"), "remove_conditions")}]
        conditions += [x for x in _strs(args.get("add_conditions"), "add_conditions")
                       if x.casefold() not in {y.casefold() for y in conditions}]
        inventory = list(c.inventory)
        for item in _strs(args.get("remove_items"), "remove_items"):
            match = next((i for i in inventory if i.casefold() == item.casefold()), None)
            if match is None:
                raise ValueError(f"{c.name} does not carry {item!r}")
            inventory.remove(match)
        inventory += _strs(args.get("add_items"), "add_items")
    except ValueError as exc:
        return {"error": str(exc)}
    updated = await ctx.update(c.id, hp=hp, conditions=conditions[:20], inventory=inventory[:50])
    ctx.party[:] = [updated if p.id == updated.id else p for p in ctx.party]
    return {"ok": True, "sheet": sheet_dict(updated)}


async def _get_character(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    c = ctx.find(args.get("character"))
    if c is None:
        return {"error": f"no player character named {args.get('character')!r}"}
    return sheet_dict(c)


_TOOLS = {"roll_dice": _roll_dice, "update_character": _update_character, "get_character": _get_character}


async def run_tool(ctx: ToolContext, name: str, arguments: str) -> str:
    """Perform one tool call and return its result as JSON text (``{"error": ...}`` on any problem)."""
    tool = _TOOLS.get(name)
    if tool is None:
        return json.dumps({"error": f"unknown tool {name!r}; available: {', '.join(_TOOLS)}"})
    try:
        args = json.loads(arguments or "{}")
    except json.JSONDecodeError as exc:
        return json.dumps({"error": f"arguments are not valid JSON: {exc.msg}"})
    if not isinstance(args, dict):
        return json.dumps({"error": "arguments must be a JSON object"})
    try:
        return json.dumps(await tool(ctx, args))
    except Exception:  # a tool bug must not kill the turn
        log.exception("tool %s failed", name)
        return json.dumps({"error": "the tool failed; continue without it"})


def tool_names(schemas: Sequence[dict[str, Any]] = TOOL_SCHEMAS) -> list[str]:
    return [s["function"]["name"] for s in schemas]
