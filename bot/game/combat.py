"""The encounter: combatants, initiative order, rounds and whose turn it is, and the rules of a
fight kept by code (D&D 5e, SRD 5.1, "Combat"). Pure data and functions: no I/O, dice injected.

Shaped after Avrae's initiative tracker (``cogs5e/initiative/combat.py``): combatants sorted by
initiative, ties broken by initiative modifier, then by a roll-off (``tiebreak``); ``advance`` moves
to the next combatant that can act (a monster at 0 hit points is down and skipped; a player character
at 0 still gets turns, for death saving throws) and counts rounds. ``to_dict``/``from_dict`` give the
JSON the store keeps.

Rules (SRD 5.1): an attack hits when d20 + bonus >= the target's AC; a natural 20 always hits and is
a critical hit (the damage dice are rolled twice: doubled here), a natural 1 always misses. Damage
reduces hit points to no less than 0; a monster at 0 is down (dead); a player character at 0 falls
unconscious, and if the damage left over equals or exceeds their hit point maximum they die outright
("Instant Death"). Damage to a creature already at 0 is a failed death saving throw (a critical hit:
two). Death saving throws: d20, 10 or more succeeds, three successes stabilise, three failures die, a
natural 1 counts as two failures, a natural 20 regains 1 hit point. Healing a creature at 0 brings it
back to consciousness and clears its death saves.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import d20

from bot.game.dice import roll_natural

CombatantKind = Literal["pc", "monster", "npc"]
Crit = Literal["crit", "fail"] | None
_DICE = re.compile(r"(\d*)d(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Rolled:
    """A roll: total, the d20 library's breakdown, and whether its first d20 came up 20 ("crit") or
    1 ("fail")."""

    total: int
    breakdown: str
    crit: Crit = None


Dice = Callable[[str], Rolled]
"""``expression -> Rolled``: how the rules roll (``roll`` in play; tests inject fixed dice)."""


def roll(expression: str) -> Rolled:
    """Roll with d20 (``bot.game.dice`` limits apply) and report a natural 20 or 1 on the first
    d20 (d20's own reading). Raises ``DiceError``."""
    total, breakdown, _expr, crit = roll_natural(expression)
    return Rolled(total, breakdown, "crit" if crit == d20.CritType.CRIT else "fail" if crit == d20.CritType.FAIL
                  else None)


def doubled(dice: str) -> str:
    """The dice of a critical hit: every ``NdX`` rolled twice as many times (``1d6+2`` -> ``2d6+2``)."""
    return _DICE.sub(lambda m: f"{2 * int(m.group(1) or 1)}d{m.group(2)}", dice)


@dataclass(frozen=True, slots=True)
class Combatant:
    """One combatant.

    Attributes:
        id: short and stable within the encounter ("c1", "c2", ...).
        kind: "pc" (a player character, linked to its sheet), "monster" or "npc".
        initiative: the initiative roll (total); init_mod: the Dexterity modifier used for ties.
        tiebreak: a roll-off for ties of both.
        hp, max_hp, ac: hit points and armor class (a PC's mirror its sheet).
        character_id, player_id: the sheet and its player, for a PC.
        monster: the SRD index of its stat block, if any; group: the group it belongs to ("Goblin").
        death_successes, death_failures, stable, dead: death saving throws (PCs at 0 hit points).
    """

    id: str
    name: str
    kind: CombatantKind
    initiative: int
    init_mod: int = 0
    tiebreak: int = 0
    hp: int = 1
    max_hp: int = 1
    ac: int = 10
    conditions: tuple[str, ...] = ()
    notes: str = ""
    character_id: int | None = None
    player_id: int | None = None
    monster: str | None = None
    group: str | None = None
    death_successes: int = 0
    death_failures: int = 0
    stable: bool = False
    dead: bool = False

    @property
    def down(self) -> bool:
        """Out of the fight: dead, or a monster/NPC at 0 hit points."""
        return self.dead or (self.kind != "pc" and self.hp <= 0)

    @property
    def unconscious(self) -> bool:
        """A player character at 0 hit points, not dead."""
        return self.kind == "pc" and self.hp <= 0 and not self.dead

    def health(self) -> str:
        """How it looks to the players: "unhurt", "hurt", "bloodied" (half or less), "down"/"dead"."""
        if self.dead:
            return "dead"
        if self.hp <= 0:
            return "down" if self.kind != "pc" else "unconscious"
        if self.hp >= self.max_hp:
            return "unhurt"
        return "bloodied" if self.hp * 2 <= self.max_hp else "hurt"


@dataclass(frozen=True, slots=True)
class Encounter:
    """A fight: combatants in initiative order, the round (1, 2, ...; 0 before the first turn) and the
    index of the combatant whose turn it is."""

    combatants: tuple[Combatant, ...] = ()
    round: int = 0
    current: int = 0
    next_id: int = 1
    started_turn: int = 0

    @property
    def active(self) -> Combatant | None:
        """The combatant whose turn it is (None before the first round or without combatants)."""
        if self.round == 0 or not self.combatants:
            return None
        return self.combatants[self.current % len(self.combatants)]

    def get(self, ref: str) -> Combatant | None:
        """The combatant with id ``ref`` or called ``ref`` (case-insensitive; a unique prefix)."""
        wanted = ref.strip().casefold()
        exact = [c for c in self.combatants if c.id == ref.strip() or c.name.casefold() == wanted]
        if exact:
            return exact[0]
        prefixed = [c for c in self.combatants if c.name.casefold().startswith(wanted)] if wanted else []
        return prefixed[0] if len(prefixed) == 1 else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the store keeps."""
        return {"round": self.round, "current": self.current, "next_id": self.next_id,
                "started_turn": self.started_turn,
                "combatants": [{**asdict(c), "conditions": list(c.conditions)} for c in self.combatants]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Encounter:
        """Read ``to_dict``'s JSON back."""
        combatants = tuple(Combatant(**{**c, "conditions": tuple(c.get("conditions", ()))})
                           for c in data.get("combatants", []))
        return cls(combatants, int(data.get("round", 0)), int(data.get("current", 0)),
                   int(data.get("next_id", len(combatants) + 1)), int(data.get("started_turn", 0)))


def order_key(c: Combatant) -> tuple[int, int, int]:
    """Sort key, highest first: initiative, then modifier, then the roll-off."""
    return (-c.initiative, -c.init_mod, -c.tiebreak)


def add(encounter: Encounter, combatants: Iterable[Combatant]) -> Encounter:
    """``encounter`` with ``combatants`` added (their ids assigned) and the order re-sorted; the
    combatant whose turn it is keeps it."""
    active = encounter.active
    next_id = encounter.next_id
    added = []
    for c in combatants:
        added.append(replace(c, id=f"c{next_id}"))
        next_id += 1
    ordered = tuple(sorted([*encounter.combatants, *added], key=order_key))
    current = ordered.index(active) if active is not None else 0
    return replace(encounter, combatants=ordered, current=current, next_id=next_id)


def remove(encounter: Encounter, combatant_id: str) -> Encounter:
    """``encounter`` without the combatant; if it was acting, the next one's turn begins."""
    index = next((i for i, c in enumerate(encounter.combatants) if c.id == combatant_id), None)
    if index is None:
        return encounter
    rest = encounter.combatants[:index] + encounter.combatants[index + 1:]
    if not rest:
        return replace(encounter, combatants=rest, current=0)
    current = encounter.current - 1 if index < encounter.current else encounter.current
    current %= len(rest)
    if index == encounter.current and encounter.round:  # the acting one left: the next who can act
        for step in range(len(rest)):
            if not rest[(current + step) % len(rest)].down:
                current = (current + step) % len(rest)
                break
    return replace(encounter, combatants=rest, current=current)


def group_names(base: str, count: int, taken: Iterable[str]) -> list[str]:
    """Numbered names for ``count`` monsters of one kind: "Goblin 1".."Goblin 3", continuing after
    the numbers already ``taken`` in the encounter."""
    used = {t.casefold() for t in taken}
    names: list[str] = []
    n = 1
    while len(names) < count:
        candidate = f"{base} {n}"
        if candidate.casefold() not in used:
            names.append(candidate)
        n += 1
    return names


def advance(encounter: Encounter) -> Encounter:
    """The next combatant's turn: skips those who are down (a PC at 0 still gets turns for death
    saves, unless dead); wrapping round starts the next round. Starts round 1 when not started."""
    if not encounter.combatants:
        return encounter
    if encounter.round == 0:
        first = next((i for i, c in enumerate(encounter.combatants) if not c.down), 0)
        return replace(encounter, round=1, current=first)
    n = len(encounter.combatants)
    current, rnd = encounter.current, encounter.round
    for _ in range(n):
        current += 1
        if current >= n:
            current, rnd = 0, rnd + 1
        if not encounter.combatants[current].down:
            return replace(encounter, current=current, round=rnd)
    return replace(encounter, current=(encounter.current + 1) % n, round=rnd)


def put(encounter: Encounter, combatant: Combatant) -> Encounter:
    """``encounter`` with ``combatant`` in place of the one with its id."""
    return replace(encounter, combatants=tuple(combatant if c.id == combatant.id else c
                                               for c in encounter.combatants))


@dataclass(frozen=True, slots=True)
class HitPoints:
    """What a change of hit points did: the combatant after it and sentences for the table."""

    combatant: Combatant
    events: tuple[str, ...] = field(default_factory=tuple)


def damage(c: Combatant, amount: int, *, critical: bool = False) -> HitPoints:
    """Apply ``amount`` damage (>= 0) under the rules in the module docstring."""
    amount = max(0, amount)
    if c.dead or amount == 0:
        return HitPoints(c)
    if c.hp <= 0 and c.kind == "pc":
        failures = c.death_failures + (2 if critical else 1)
        after = replace(c, death_failures=min(3, failures), stable=False, dead=failures >= 3)
        return HitPoints(after, (f"{c.name} takes damage while down: {min(3, failures)} failed death saves"
                                 + (" — dead" if after.dead else ""),))
    left = c.hp - amount
    hp = max(0, left)
    if hp > 0:
        return HitPoints(replace(c, hp=hp))
    if c.kind != "pc":
        return HitPoints(replace(c, hp=0, dead=True), (f"{c.name} is down",))
    if -left >= c.max_hp:
        return HitPoints(replace(c, hp=0, dead=True), (f"{c.name} is killed outright (massive damage)",))
    return HitPoints(replace(c, hp=0, death_successes=0, death_failures=0, stable=False),
                     (f"{c.name} falls unconscious",))


def heal(c: Combatant, amount: int) -> HitPoints:
    """Restore ``amount`` hit points (>= 0), up to the maximum; the dead stay dead."""
    if c.dead or amount <= 0:
        return HitPoints(c)
    hp = min(c.max_hp, max(0, c.hp) + amount)
    events = (f"{c.name} regains consciousness",) if c.hp <= 0 < hp else ()
    return HitPoints(replace(c, hp=hp, death_successes=0, death_failures=0, stable=False), events)


@dataclass(frozen=True, slots=True)
class DeathSave:
    """A death saving throw: the roll, the combatant after it, and the sentence for the table."""

    roll: Rolled
    combatant: Combatant
    text: str


def death_save(c: Combatant, dice: Dice) -> DeathSave:
    """Roll a death saving throw for an unconscious player character (see module docstring).
    Raises ``ValueError`` for anyone else — a bug in the caller: only unconscious PCs roll."""
    if not c.unconscious or c.stable:
        raise ValueError(f"{c.name} makes no death saving throw")
    rolled = dice("1d20")
    if rolled.crit == "crit":
        after = replace(c, hp=1, death_successes=0, death_failures=0, stable=False)
        return DeathSave(rolled, after, f"{c.name} rolls a natural 20 on a death save and regains 1 hit point!")
    if rolled.total >= 10:
        successes = c.death_successes + 1
        after = replace(c, death_successes=successes, stable=successes >= 3)
        state = "stable" if after.stable else f"{successes} success(es)"
        return DeathSave(rolled, after, f"{c.name} succeeds on a death save ({rolled.total}): {state}")
    failures = c.death_failures + (2 if rolled.crit == "fail" else 1)
    after = replace(c, death_failures=min(3, failures), dead=failures >= 3)
    state = "dead" if after.dead else f"{min(3, failures)} failure(s)"
    return DeathSave(rolled, after, f"{c.name} fails a death save ({rolled.total}): {state}")


@dataclass(frozen=True, slots=True)
class Attack:
    """An attack's outcome: the to-hit roll, hit or not, critical, the damage rolls and total."""

    to_hit: Rolled
    hit: bool
    critical: bool
    damage_rolls: tuple[Rolled, ...]
    damage: int


def attack(bonus: int, target_ac: int, damage_dice: Iterable[str], dice: Dice) -> Attack:
    """Roll an attack: d20 + ``bonus`` against ``target_ac``; on a hit each of ``damage_dice`` is
    rolled (doubled on a critical hit) and summed (never below 0)."""
    to_hit = dice(f"1d20+{bonus}" if bonus >= 0 else f"1d20-{-bonus}")
    critical = to_hit.crit == "crit"
    hit = critical or (to_hit.crit != "fail" and to_hit.total >= target_ac)
    rolls = tuple(dice(doubled(d) if critical else d) for d in damage_dice) if hit else ()
    return Attack(to_hit, hit, critical, rolls, max(0, sum(r.total for r in rolls)))
