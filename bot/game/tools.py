"""Tools the DM model may call; code performs them, so the numbers stay honest.

- ``roll_dice(expression, reason, character?, advantage?)``: a real roll with d20; the result goes back
  to the model, is shown to the table with its breakdown and stored with the turn.
- ``update_character(character, hp_change?, set_hp?, add_conditions?, remove_conditions?, add_items?,
  remove_items?)``: change a player character's sheet within its rules: hit points stay within
  0..max HP (the result says when a change was clamped), removing an item the character does not
  carry is refused. Maximum HP, AC, level and names are the players' to change, not the model's.
- ``get_character(character)``: read a sheet.
- ``remember``, ``update_quest``, ``recall``: the lorebook (``bot.game.lore_tools``), through the
  context's ``lore`` (absent: the tools answer with an error).
- ``start_encounter``, ``add_combatant``, ``remove_combatant``, ``attack``, ``damage``, ``heal``,
  ``set_condition``, ``clear_condition``, ``end_turn``, ``end_encounter``: the fight
  (``bot.game.combat_tools``), through the context's ``combat`` (absent: an error); their rolls join
  ``rolls``, player characters' sheet changes join ``changes``.

Anything wrong — an unknown tool, arguments that are not a JSON object, a missing or mistyped field,
an unknown character, an impossible change — produces ``{"error": "..."}`` for the model to read and
correct; nothing here raises into the turn. Model output never reaches settings or other campaigns:
the tools only see the ``ToolContext`` of the current turn.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.errors import UserInputError
from bot.game import rules
from bot.game.combat_tools import COMBAT_TOOL_NAMES, COMBAT_TOOL_SCHEMAS, CombatTools
from bot.game.dice import make_roll
from bot.game.lore_tools import LORE_TOOL_SCHEMAS, LoreTools
from bot.models import Character, RollRecord

log = logging.getLogger(__name__)

_STR_LIST = {"type": "array", "items": {"type": "string"}}

TOOL_SCHEMAS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "roll_dice",
        "description": "Roll dice for real. Use it for every check, save, attack, damage or random table; "
                       "never invent a result. Examples: 1d20+5, 2d6+3, 8d6, 4d6kh3.",
        "parameters": {"type": "object", "properties": {
            "expression": {"type": "string", "description": "Dice expression, e.g. 1d20+5"},
            "reason": {"type": "string", "description": "What the roll is for, e.g. 'Perception check'"},
            "character": {"type": "string", "description": "Name of the character rolling, if any"},
            "advantage": {"type": "string", "enum": ["none", "advantage", "disadvantage"],
                          "description": "Roll the first d20 twice and keep the higher/lower"},
        }, "required": ["expression", "reason"]}}},
    {"type": "function", "function": {
        "name": "update_character",
        "description": "Change a player character's sheet: hit points, conditions, inventory. Call it "
                       "whenever the story deals damage, heals, adds/removes a condition or an item.",
        "parameters": {"type": "object", "properties": {
            "character": {"type": "string", "description": "The player character's name"},
            "hp_change": {"type": "integer", "description": "Damage as negative, healing as positive"},
            "set_hp": {"type": "integer", "description": "Set current hit points directly"},
            "add_conditions": _STR_LIST, "remove_conditions": _STR_LIST,
            "add_items": _STR_LIST, "remove_items": _STR_LIST,
        }, "required": ["character"]}}},
    {"type": "function", "function": {
        "name": "get_character",
        "description": "Read a player character's current sheet.",
        "parameters": {"type": "object", "properties": {"character": {"type": "string"}},
                       "required": ["character"]}}},
    *LORE_TOOL_SCHEMAS,
    *COMBAT_TOOL_SCHEMAS,
]


@dataclass
class ToolContext:
    """What tool calls can see and change during one turn.

    Attributes:
        campaign_id, turn: where rolls are recorded.
        party: the active characters (updated in place as sheets change).
        update: ``await update(character_id, **fields) -> Character`` persists a sheet change.
        rolls: rolls made this turn, in order.
        changes: one short sentence per sheet change ("Borin: HP 12 → 8"), in order.
        calls: ``(tool name, arguments text, result text)`` of every call, in order.
        lore: the turn's lorebook tools (None: the lore tools answer with an error).
        combat: the turn's combat tools (None: the combat tools answer with an error).
    """

    campaign_id: int
    turn: int
    party: list[Character]
    update: Callable[..., Awaitable[Character]]
    rolls: list[RollRecord] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    lore: LoreTools | None = None
    combat: CombatTools | None = None

    def find(self, name: Any) -> Character | None:
        """The party member called ``name`` (case-insensitive; a first name is enough when unique)."""
        if not isinstance(name, str) or not name.strip():
            return None
        wanted = name.strip().casefold()
        for c in self.party:
            if c.name.casefold() == wanted:
                return c
        first = wanted.split()[0]
        matches = [c for c in self.party if c.name.casefold().split()[0] == first]
        return matches[0] if len(matches) == 1 else None


def sheet_dict(c: Character) -> dict[str, Any]:
    """A character sheet as the JSON the model reads."""
    return {"name": c.name, "class": c.char_class, "ancestry": c.ancestry, "level": c.level,
            "hp": c.hp, "max_hp": c.max_hp, "ac": c.ac, "conditions": list(c.conditions),
            "inventory": list(c.inventory)}


class _BadArgument(Exception):
    """An argument the model got wrong; the message goes back to it."""


def _strs(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _BadArgument(f"{name} must be a list of strings")
    if len(value) > rules.LIST_CHANGE_MAX:
        raise _BadArgument(f"{name} takes at most {rules.LIST_CHANGE_MAX} entries per call")
    return [v.strip()[:rules.ITEM_MAX] for v in value if v.strip()]


def _int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _BadArgument(f"{name} must be a whole number")
    if not abs(value) <= rules.HP_CHANGE_MAX:  # also catches NaN
        raise _BadArgument(f"{name} is out of range")
    if value != int(value):
        raise _BadArgument(f"{name} must be a whole number")
    return int(value)


async def _roll_dice(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    expression = args.get("expression")
    if not isinstance(expression, str):
        return {"error": "expression must be a string like '1d20+5'"}
    adv = args.get("advantage") or "none"
    if adv not in ("none", "advantage", "disadvantage"):
        return {"error": "advantage must be 'none', 'advantage' or 'disadvantage'"}
    if adv != "none":
        expression = f"{'adv' if adv == 'advantage' else 'dis'} {expression}"
    who = args.get("character")
    character = ctx.find(who)
    name = character.name if character else (who.strip()[:40] if isinstance(who, str) and who.strip() else None)
    try:
        record = make_roll(expression, reason=str(args.get("reason") or ""), roller_id=None, roller_name="DM",
                           character_name=name, campaign_id=ctx.campaign_id, turn=ctx.turn, by_dm=True)
    except UserInputError as exc:
        return {"error": str(exc)}
    ctx.rolls.append(record)
    return {"expression": record.expression, "total": record.total, "breakdown": record.breakdown}


async def _update_character(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    c = ctx.find(args.get("character"))
    if c is None:
        return {"error": f"no player character named {args.get('character')!r}; the party is: "
                         + (", ".join(p.name for p in ctx.party) or "nobody")}
    notes: list[str] = []
    try:
        set_hp = _int(args.get("set_hp"), "set_hp")
        hp_change = _int(args.get("hp_change"), "hp_change")
        remove_conditions = {r.casefold() for r in _strs(args.get("remove_conditions"), "remove_conditions")}
        add_conditions = _strs(args.get("add_conditions"), "add_conditions")
        remove_items = _strs(args.get("remove_items"), "remove_items")
        add_items = _strs(args.get("add_items"), "add_items")
        hp = c.hp if set_hp is None else set_hp
        hp += hp_change or 0
        if not rules.HP_MIN <= hp <= c.max_hp:
            notes.append(f"hit points clamped to {rules.HP_MIN}..{c.max_hp} (asked for {hp})")
            hp = max(rules.HP_MIN, min(hp, c.max_hp))
        conditions = [x for x in c.conditions if x.casefold() not in remove_conditions]
        conditions += [x for x in add_conditions if x.casefold() not in {y.casefold() for y in conditions}]
        if len(conditions) > rules.CONDITIONS_MAX:
            raise _BadArgument(f"a character can have at most {rules.CONDITIONS_MAX} conditions")
        inventory = list(c.inventory)
        for item in remove_items:
            match = next((i for i in inventory if i.casefold() == item.casefold()), None)
            if match is None:
                raise _BadArgument(f"{c.name} does not carry {item!r}; inventory: {', '.join(inventory) or 'nothing'}")
            inventory.remove(match)
        inventory += add_items
        if len(inventory) > rules.INVENTORY_MAX:
            raise _BadArgument(f"a character can carry at most {rules.INVENTORY_MAX} items")
    except _BadArgument as exc:
        return {"error": str(exc)}
    changed: dict[str, Any] = {}
    if hp != c.hp:
        changed["hp"] = hp
    if tuple(conditions) != c.conditions:
        changed["conditions"] = conditions
    if tuple(inventory) != c.inventory:
        changed["inventory"] = inventory
    if not changed:
        return {"ok": True, "unchanged": True, "sheet": sheet_dict(c), **({"note": notes} if notes else {})}
    updated = await ctx.update(c.id, **changed)
    ctx.party[:] = [updated if p.id == updated.id else p for p in ctx.party]
    ctx.changes.append(describe_change(c, updated))
    result: dict[str, Any] = {"ok": True, "sheet": sheet_dict(updated)}
    if notes:
        result["note"] = notes
    return result


def describe_change(before: Character, after: Character) -> str:
    """One short sentence for the table: ``Borin: HP 12 → 8; +poisoned; -rope``."""
    parts = []
    if after.hp != before.hp:
        parts.append(f"HP {before.hp} → {after.hp}/{after.max_hp}")
    parts += [f"+{x}" for x in after.conditions if x not in before.conditions]
    parts += [f"no longer {x}" for x in before.conditions if x not in after.conditions]
    gained = list(after.inventory)
    for item in before.inventory:
        if item in gained:
            gained.remove(item)
    lost = list(before.inventory)
    for item in after.inventory:
        if item in lost:
            lost.remove(item)
    parts += [f"gains {x}" for x in gained] + [f"loses {x}" for x in lost]
    return f"{after.name}: {'; '.join(parts) or 'sheet updated'}"


async def _get_character(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    c = ctx.find(args.get("character"))
    if c is None:
        return {"error": f"no player character named {args.get('character')!r}; the party is: "
                         + (", ".join(p.name for p in ctx.party) or "nobody")}
    return sheet_dict(c)


def _lore_tool(name: str) -> Callable[[ToolContext, dict[str, Any]], Awaitable[dict[str, Any]]]:
    """The dispatcher of one lorebook tool (performed by ``ToolContext.lore``)."""
    async def tool(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        if ctx.lore is None:
            return {"error": "the lorebook is not available in this game"}
        return await ctx.lore.call(name, args)

    return tool


def _combat_tool(name: str) -> Callable[[ToolContext, dict[str, Any]], Awaitable[dict[str, Any]]]:
    """The dispatcher of one combat tool (performed by ``ToolContext.combat``): its rolls join the
    turn's rolls, and each player character's sheet it changed gets a line in the turn's changes."""
    async def tool(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        if ctx.combat is None:
            return {"error": "combat tracking is not available in this game"}
        before = {c.id: c for c in ctx.party}
        result = await ctx.combat.call(name, args, ctx.rolls)
        now = {c.id: c for c in ctx.combat.session.party}
        for cid, old in before.items():
            new = now.get(cid)
            if new is not None and new != old:
                ctx.changes.append(describe_change(old, new))
        ctx.party[:] = [now.get(c.id, c) for c in ctx.party]
        return result

    return tool


_TOOLS = {"roll_dice": _roll_dice, "update_character": _update_character, "get_character": _get_character,
          **{name: _lore_tool(name) for name in ("remember", "update_quest", "recall")},
          **{name: _combat_tool(name) for name in COMBAT_TOOL_NAMES}}


async def run_tool(ctx: ToolContext, name: str, arguments: str) -> str:
    """Perform one tool call and return its result as JSON text (``{"error": ...}`` on any problem).

    Args:
        ctx: the turn's tool context (rolls and changes are appended to it).
        name: the tool name the model asked for.
        arguments: the JSON text the model sent.
    Never raises (except ``asyncio.CancelledError``).
    """
    tool = _TOOLS.get(name)
    if tool is None:
        out = json.dumps({"error": f"unknown tool {name!r}; available: {', '.join(_TOOLS)}"})
    else:
        try:
            args = json.loads(arguments or "{}")
        except (json.JSONDecodeError, TypeError) as exc:
            args = None
            out = json.dumps({"error": f"arguments are not valid JSON: {getattr(exc, 'msg', exc)}"})
        if args is not None:
            if not isinstance(args, dict):
                out = json.dumps({"error": "arguments must be a JSON object"})
            else:
                try:
                    out = json.dumps(await tool(ctx, args), ensure_ascii=False)
                except Exception:  # a tool bug must not kill the turn
                    log.exception("tool %s failed", name)
                    out = json.dumps({"error": "the tool failed; continue without it"})
    ctx.calls.append((str(name)[:60], str(arguments)[:500], out))
    return out


def tool_names(schemas: Sequence[dict[str, Any]] = TOOL_SCHEMAS) -> list[str]:
    """The names of the tools in ``schemas``."""
    return [s["function"]["name"] for s in schemas]
