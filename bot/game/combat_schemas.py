"""The JSON schemas of the combat tools the DM model may call (their behaviour: ``bot.game.combat_tools``).
Bounds come from ``bot.game.encounter`` so the schema and the checks say the same numbers."""

from __future__ import annotations

from typing import Any, get_args

from bot.game.encounter import (
    HOMEBREW_MAX_AC,
    HOMEBREW_MAX_BONUS,
    HOMEBREW_MAX_HP,
    MAX_GROUP,
    Advantage,
)

INITIATIVE_MAX = 50  # a stated initiative roll, at most
MAX_MONSTER_KINDS = 8  # monster entries of one start_encounter call

_INT = {"type": "integer"}
_MONSTER_PROPS: dict[str, Any] = {
    "name": {"type": "string", "description": "An SRD 5.1 monster's name (Goblin, Orc, Wolf, Sea Hag...), whose "
                                              "stat block is then used, or a homebrew name"},
    "count": {"type": "integer", "description": f"How many, 1-{MAX_GROUP} (a group gets numbered names)"},
    "hp": {"type": "integer", "description": f"Homebrew only (ignored for SRD monsters): hit points, "
                                            f"1-{HOMEBREW_MAX_HP}"},
    "ac": {"type": "integer", "description": f"Homebrew only: armor class, 1-{HOMEBREW_MAX_AC}"},
    "init_mod": {"type": "integer", "description": "Homebrew only: initiative modifier, -10..10"},
    "kind": {"type": "string", "enum": ["monster", "npc"], "description": "npc for allies and bystanders"},
}
_TARGET = {"type": "string", "description": "A combatant's name or id (c1, c2...)"}

COMBAT_TOOL_SCHEMAS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "start_encounter",
        "description": "Start a fight: the monsters join with numbers from the SRD stat block (or your homebrew "
                       "numbers), every party character joins, initiative is rolled by code and round 1 begins. "
                       "From then on the game keeps every hit point: use attack, damage, heal and end_turn.",
        "parameters": {"type": "object", "properties": {
            "monsters": {"type": "array", "items": {"type": "object", "properties": _MONSTER_PROPS,
                                                    "required": ["name"]},
                         "description": f"The opponents, at most {MAX_MONSTER_KINDS} entries"},
            "party": {"type": "array", "description": "Optional, per character: initiative modifier, or the "
                                                      "initiative its player rolled",
                      "items": {"type": "object", "properties": {
                          "character": {"type": "string"}, "init_mod": _INT, "initiative": _INT},
                          "required": ["character"]}},
        }, "required": ["monsters"]}}},
    {"type": "function", "function": {
        "name": "add_combatant",
        "description": "Add a monster or NPC (SRD name or homebrew numbers) or a party character to the running "
                       "fight; initiative is rolled by code.",
        "parameters": {"type": "object", "properties": {
            **_MONSTER_PROPS,
            "initiative": {"type": "integer", "description": "For a party character: the initiative its "
                                                            "player rolled (else rolled by code)"},
        }, "required": ["name"]}}},
    {"type": "function", "function": {
        "name": "remove_combatant",
        "description": "Take a combatant out of the fight (fled, surrendered, gone).",
        "parameters": {"type": "object", "properties": {"combatant": _TARGET}, "required": ["combatant"]}}},
    {"type": "function", "function": {
        "name": "attack",
        "description": "Roll an attack for real: d20 + bonus against the target's AC, damage rolled and applied on "
                       "a hit (a natural 20 doubles the dice). An SRD monster uses its stat block's action; a "
                       "player character or homebrew creature needs attack_bonus and damage.",
        "parameters": {"type": "object", "properties": {
            "attacker": _TARGET, "target": _TARGET,
            "action": {"type": "string", "description": "The action or weapon, e.g. Scimitar (SRD monsters: its "
                                                        "stat block action; default its first attack)"},
            "attack_bonus": {"type": "integer", "description": f"Not for SRD monsters: the to-hit bonus, "
                                                              f"-{HOMEBREW_MAX_BONUS}..{HOMEBREW_MAX_BONUS}"},
            "damage": {"type": "string", "description": "Not for SRD monsters: damage dice, e.g. 1d8+3"},
            "advantage": {"type": "string", "enum": list(get_args(Advantage))},
        }, "required": ["attacker", "target"]}}},
    {"type": "function", "function": {
        "name": "damage",
        "description": "Deal damage to any combatant (spells, traps, falls): a number, or dice rolled by code. "
                       "A player character's sheet follows; at 0 HP a monster is down, a character unconscious.",
        "parameters": {"type": "object", "properties": {
            "target": _TARGET,
            "amount": {"type": "integer", "description": "Hit points of damage (positive)"},
            "dice": {"type": "string", "description": "Or damage dice to roll, e.g. 8d6"},
            "half": {"type": "boolean", "description": "Half damage, rounded down (a successful save)"},
            "critical": {"type": "boolean", "description": "A critical hit (counts twice against death saves)"},
            "reason": {"type": "string", "description": "What deals it, e.g. Fireball"},
        }, "required": ["target"]}}},
    {"type": "function", "function": {
        "name": "heal",
        "description": "Restore hit points to any combatant (up to its maximum): a number, or dice rolled by code.",
        "parameters": {"type": "object", "properties": {
            "target": _TARGET,
            "amount": {"type": "integer", "description": "Hit points regained (positive)"},
            "dice": {"type": "string", "description": "Or healing dice to roll, e.g. 1d8+3"},
            "reason": {"type": "string", "description": "What heals, e.g. Cure Wounds"},
        }, "required": ["target"]}}},
    {"type": "function", "function": {
        "name": "set_condition",
        "description": "Give a combatant a condition (prone, poisoned, frightened...).",
        "parameters": {"type": "object", "properties": {"target": _TARGET, "condition": {"type": "string"}},
                       "required": ["target", "condition"]}}},
    {"type": "function", "function": {
        "name": "clear_condition",
        "description": "Remove a condition from a combatant.",
        "parameters": {"type": "object", "properties": {"target": _TARGET, "condition": {"type": "string"}},
                       "required": ["target", "condition"]}}},
    {"type": "function", "function": {
        "name": "end_turn",
        "description": "End the current combatant's turn: the next in initiative order acts (an unconscious "
                       "character's death saving throw is rolled by code). Call it after every turn you resolve.",
        "parameters": {"type": "object", "properties": {
            "combatant": {"type": "string", "description": "Whose turn is ending (checked against the order)"},
        }, "required": []}}},
    {"type": "function", "function": {
        "name": "end_encounter",
        "description": "End the fight (the enemies are defeated, fled or parleyed).",
        "parameters": {"type": "object", "properties": {}, "required": []}}},
]

COMBAT_TOOL_NAMES: tuple[str, ...] = tuple(s["function"]["name"] for s in COMBAT_TOOL_SCHEMAS)
