"""Monsters by the book: the D&D 5e SRD 5.1 stat blocks shipped in ``bot/data/srd`` (334 monsters,
5e-bits/5e-database, CC-BY-4.0; attribution in ``bot/data/srd/README.md``).

``find(name)`` looks a monster up by its SRD name or index, case-insensitively ("Goblin", "sea hag",
"sea-hag"); ``names(prefix)`` serves autocomplete. The table loads once, on first use.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

_NON_WORD = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Damage:
    """One damage roll of an action: dice expression (``1d6+2``) and damage type (``slashing``)."""

    dice: str
    type: str


@dataclass(frozen=True, slots=True)
class MonsterAction:
    """An action of a stat block: to-hit bonus (None for a save-only action), damage rolls, and a
    saving throw (ability index such as ``dex``, DC) when it has one."""

    name: str
    attack_bonus: int | None
    damage: tuple[Damage, ...]
    save_ability: str | None = None
    save_dc: int | None = None


@dataclass(frozen=True, slots=True)
class Monster:
    """An SRD stat block: armor class, average hit points and their dice (``2d6``), the six ability
    scores (STR, DEX, CON, INT, WIS, CHA), challenge rating, XP, condition immunities, actions."""

    index: str
    name: str
    size: str
    type: str
    ac: int
    hp: int
    hit_dice: str
    abilities: tuple[int, int, int, int, int, int]
    cr: float
    xp: int
    immune: tuple[str, ...]
    actions: tuple[MonsterAction, ...]

    @property
    def initiative_mod(self) -> int:
        """Dexterity modifier: initiative is a Dexterity check (SRD 5.1, "Initiative")."""
        return ability_mod(self.abilities[1])

    def action(self, name: str | None) -> MonsterAction | None:
        """The action called ``name`` (case-insensitive; a prefix is enough when unique), or the
        first attack when ``name`` is None; None when there is no such action."""
        if not self.actions:
            return None
        if name is None or not name.strip():
            return next((a for a in self.actions if a.attack_bonus is not None), self.actions[0])
        wanted = name.strip().casefold()
        exact = [a for a in self.actions if a.name.casefold() == wanted]
        if exact:
            return exact[0]
        prefixed = [a for a in self.actions if a.name.casefold().startswith(wanted)]
        return prefixed[0] if len(prefixed) == 1 else None


def ability_mod(score: int) -> int:
    """The modifier of an ability score: (score - 10) // 2 (SRD 5.1, "Ability Scores and Modifiers")."""
    return (score - 10) // 2


def key(name: str) -> str:
    """How monster names are compared: lowercase letters and digits joined by single dashes."""
    return _NON_WORD.sub("-", name.casefold()).strip("-")


def _action(raw: dict[str, Any]) -> MonsterAction:
    damage = tuple(Damage(str(d["dice"]), str(d.get("type", ""))) for d in raw.get("damage") or []
                   if isinstance(d, dict))
    dc = raw.get("dc")
    bonus = raw.get("attack_bonus")
    return MonsterAction(str(raw["name"]), int(bonus) if isinstance(bonus, int) else None, damage,
                         str(dc["ability"]) if isinstance(dc, dict) and dc.get("ability") else None,
                         int(dc["value"]) if isinstance(dc, dict) and isinstance(dc.get("value"), int) else None)


@lru_cache(maxsize=1)
def _table() -> dict[str, Monster]:
    raw = json.loads(resources.files("bot").joinpath("data/srd/monsters.json").read_text(encoding="utf-8"))
    table: dict[str, Monster] = {}
    for m in raw:
        s, d, c, i, w, ch = (int(x) for x in m["abilities"])
        monster = Monster(index=m["index"], name=m["name"], size=m.get("size", ""), type=m.get("type", ""),
                          ac=int(m["ac"]), hp=int(m["hp"]), hit_dice=str(m.get("hit_dice") or ""),
                          abilities=(s, d, c, i, w, ch),
                          cr=float(m.get("cr") or 0), xp=int(m.get("xp") or 0), immune=tuple(m.get("immune", [])),
                          actions=tuple(_action(a) for a in m.get("actions", [])))
        table[key(monster.name)] = monster
        table.setdefault(monster.index, monster)
    return table


def find(name: str) -> Monster | None:
    """The SRD monster called ``name`` (name or index, any case and spacing), or None."""
    return _table().get(key(name))


def names(prefix: str = "", limit: int = 25) -> list[str]:
    """SRD monster names starting with ``prefix`` (case-insensitive), then those containing it,
    at most ``limit``, for autocomplete."""
    wanted = prefix.strip().casefold()
    every = sorted({m.name for m in _table().values()})
    first = [n for n in every if n.casefold().startswith(wanted)]
    rest = [n for n in every if wanted and wanted in n.casefold() and n not in first]
    return (first + rest)[:limit]
