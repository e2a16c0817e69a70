"""The campaign's running fight: every change to the encounter goes through ``EncounterService``,
which applies the rules (``bot.game.combat``), keeps player characters' hit points in step with their
sheets (through the sheet journal, so undo and the sheet rules hold), and stores the encounter with
the state before the turn that changed it (``/undo`` and ``/retry`` restore it).

The service's operations are shared by the model's combat tools and the table's ``/combat``
commands; each returns the new encounter and the sentences that describe what happened, and raises
``CombatError`` (a ``UserInputError``: its text is for whoever asked, model or person) for an
impossible request.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from bot.errors import UserInputError
from bot.game import combat, rules, srd
from bot.game.combat import Combatant, Dice, Encounter, Rolled
from bot.game.dice import DiceError
from bot.game.session import GameSession
from bot.game.sheets import SheetJournal
from bot.models import Character
from bot.store import Store

MAX_COMBATANTS = 40
MAX_GROUP = 12  # monsters added in one call
HOMEBREW_MAX_HP = 1000
HOMEBREW_MAX_AC = 30
HOMEBREW_MAX_BONUS = 20
MAX_DAMAGE_ROLLS = 4  # damage expressions of one attack
_DAMAGE_TERM = r"(?:\d{0,3}d\d{1,4}|\d{1,4})"
DAMAGE_DICE = re.compile(rf"^\s*{_DAMAGE_TERM}(?:\s*[+-]\s*{_DAMAGE_TERM}){{0,5}}\s*$", re.IGNORECASE)

Advantage = Literal["none", "advantage", "disadvantage"]


@dataclass(frozen=True, slots=True)
class RollMade:
    """A roll the rules made: who rolled (a combatant's name), the expression as rolled, what for,
    and the result (``Rolled``: total, breakdown, natural 20/1)."""

    who: str
    expression: str
    reason: str
    rolled: Rolled


@dataclass(frozen=True, slots=True)
class AttackResult:
    """What ``EncounterService.attack`` did.

    Attributes:
        encounter: the encounter after the attack.
        attacker, target: the combatants (the target after any damage).
        action: the action's name ("Scimitar"); bonus: the to-hit bonus used.
        hit, critical: the outcome (a natural 20 hits and is critical, a natural 1 misses).
        damage: hit points of damage dealt (0 on a miss); damage_types: from the stat block, if any.
        rolls: the to-hit roll, then the damage rolls; events: sentences ("Goblin 1 is down").
    """

    encounter: Encounter
    attacker: Combatant
    target: Combatant
    action: str
    bonus: int
    hit: bool
    critical: bool
    damage: int
    damage_types: tuple[str, ...]
    rolls: tuple[RollMade, ...]
    events: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TurnChange:
    """What ``EncounterService.next_turn`` did: the encounter after it, the death saving throws
    rolled on the way and the sentences describing them."""

    encounter: Encounter
    rolls: tuple[RollMade, ...]
    events: tuple[str, ...]


class CombatError(UserInputError):
    """An encounter request that cannot be done (no fight, unknown combatant, bad numbers)."""


class EncounterService:
    """Changes to a session's encounter, by the rules.

    Args:
        store: where encounters are kept.
        dice: how rules roll (``combat.roll``; tests inject fixed dice).
    """

    def __init__(self, store: Store, dice: Dice = combat.roll) -> None:
        self.store = store
        self.dice = dice

    # --- persistence -------------------------------------------------------------------------------
    async def load(self, campaign_id: int) -> Encounter | None:
        """The stored encounter of a campaign, or None."""
        state = await self.store.encounters.get(campaign_id)
        return Encounter.from_dict(state) if state is not None else None

    async def save(self, session: GameSession, encounter: Encounter | None, turn: int) -> None:
        """Store ``encounter`` (None: the fight is over) as changed by ``turn``, keeping the state
        before that turn for undo/retry, and put it in the session."""
        before = session.encounter.to_dict() if session.encounter is not None else None
        await self.store.encounters.save(session.campaign.id, encounter.to_dict() if encounter else None,
                                         turn=turn, before=before)
        session.set_encounter(encounter)

    async def restore(self, session: GameSession, turn: int) -> bool:
        """Put the encounter back as it was before ``turn`` (undo/retry). Returns whether it changed."""
        changed, state = await self.store.encounters.restore(session.campaign.id, turn)
        if changed:
            session.set_encounter(Encounter.from_dict(state) if state is not None else None)
        return changed

    # --- building the fight ------------------------------------------------------------------------
    def start(self, session: GameSession, turn: int) -> Encounter:
        """A new, empty encounter. Raises ``CombatError`` when one is running."""
        if session.encounter is not None:
            raise CombatError("A fight is already running; end it first.")
        return Encounter(started_turn=turn)

    def roll_initiative(self, modifier: int) -> int:
        """An initiative roll: d20 + the Dexterity modifier (SRD 5.1, "Initiative")."""
        return self.dice(f"1d20+{modifier}" if modifier >= 0 else f"1d20-{-modifier}").total

    def _room(self, encounter: Encounter, adding: int) -> None:
        if len(encounter.combatants) + adding > MAX_COMBATANTS:
            raise CombatError(f"An encounter holds at most {MAX_COMBATANTS} combatants.")

    def add_monsters(self, encounter: Encounter, name: str, count: int = 1, *, average_hp: bool = False,
                     homebrew: dict[str, int] | None = None) -> tuple[Encounter, list[Combatant]]:
        """Add ``count`` monsters called ``name``: from the SRD stat block when there is one (AC, hit
        points rolled from its hit dice or the listed average, initiative from its Dexterity),
        otherwise from ``homebrew`` numbers (``hp``, ``ac``, ``init_mod``), bounded. A group gets
        numbered names. Raises ``CombatError``."""
        if not 1 <= count <= MAX_GROUP:
            raise CombatError(f"Add from 1 to {MAX_GROUP} monsters at a time.")
        self._room(encounter, count)
        book = srd.find(name)
        base = (book.name if book else " ".join(name.split()))[:40]
        if not base:
            raise CombatError("A monster needs a name.")
        hb_hp = hb_ac = hb_mod = 0
        if book is None:
            hb = homebrew or {}
            raw_hp, raw_ac, raw_mod = hb.get("hp"), hb.get("ac"), hb.get("init_mod", 0)
            if not isinstance(raw_hp, int) or not 1 <= raw_hp <= HOMEBREW_MAX_HP:
                raise CombatError(f"“{base}” is not in the SRD: give its hit points (1-{HOMEBREW_MAX_HP}).")
            if not isinstance(raw_ac, int) or not 1 <= raw_ac <= HOMEBREW_MAX_AC:
                raise CombatError(f"“{base}” is not in the SRD: give its armor class (1-{HOMEBREW_MAX_AC}).")
            if not isinstance(raw_mod, int) or abs(raw_mod) > 10:
                raise CombatError("Its initiative modifier must be from -10 to 10.")
            hb_hp, hb_ac, hb_mod = raw_hp, raw_ac, raw_mod
        taken = [c.name for c in encounter.combatants]
        names = combat.group_names(base, count, taken) if count > 1 or base in taken else [base]
        added = []
        for label in names:
            if book is not None:
                hp = book.hp if average_hp or not book.hit_dice else max(1, self._roll(book.hit_dice))
                ac, mod = book.ac, book.initiative_mod
            else:
                hp, ac, mod = hb_hp, hb_ac, hb_mod
            added.append(Combatant(id="", name=label, kind="monster", initiative=self.roll_initiative(mod),
                                   init_mod=mod, tiebreak=self.dice("1d20").total, hp=hp, max_hp=hp, ac=ac,
                                   monster=book.index if book else None, group=base if count > 1 else None))
        grown = combat.add(encounter, added)
        return grown, [c for c in grown.combatants if c.name in names]

    def add_character(self, encounter: Encounter, character: Character, initiative: int | None = None,
                      init_mod: int = 0) -> tuple[Encounter, Combatant]:
        """Add a player character (linked to its sheet), with its own initiative roll or one rolled
        by code. Raises ``CombatError`` when it is already in the fight."""
        if any(c.character_id == character.id for c in encounter.combatants):
            raise CombatError(f"{character.name} is already in the fight.")
        self._room(encounter, 1)
        rolled = initiative if initiative is not None else self.roll_initiative(init_mod)
        c = Combatant(id="", name=character.name, kind="pc", initiative=rolled, init_mod=init_mod,
                      tiebreak=self.dice("1d20").total, hp=character.hp, max_hp=character.max_hp, ac=character.ac,
                      conditions=character.conditions, character_id=character.id, player_id=character.player_id)
        grown = combat.add(encounter, [c])
        return grown, next(x for x in grown.combatants if x.character_id == character.id)

    def find(self, encounter: Encounter | None, ref: str) -> Combatant:
        """The combatant called ``ref`` (or with that id). Raises ``CombatError``."""
        if encounter is None:
            raise CombatError("There is no fight running.")
        found = encounter.get(ref)
        if found is None:
            names = ", ".join(c.name for c in encounter.combatants) or "nobody"
            raise CombatError(f"No combatant called “{ref.strip()[:40]}”; in the fight: {names}.")
        return found

    # --- hit points (player characters through their sheets) --------------------------------------
    async def change_hp(self, session: GameSession, sheets: SheetJournal, encounter: Encounter, ref: str,
                        amount: int, *, critical: bool = False) -> tuple[Encounter, Combatant, list[str]]:
        """Damage (``amount`` < 0) or heal (> 0) a combatant by the rules; a player character's sheet
        follows. Returns the new encounter, the combatant after it and the sentences."""
        target = self.find(encounter, ref)
        result = combat.damage(target, -amount, critical=critical) if amount < 0 else combat.heal(target, amount)
        after = result.combatant
        if after.character_id is not None and after.hp != target.hp:
            await sheets.update(after.character_id, hp=max(0, after.hp))
        return combat.put(encounter, after), after, list(result.events)

    def sync_party(self, encounter: Encounter, party: list[Character]) -> Encounter:
        """Player characters' hit points, AC and conditions as their sheets have them now (a sheet
        changed outside the fight's tools)."""
        sheets = {c.id: c for c in party}
        synced = encounter
        for c in encounter.combatants:
            sheet = sheets.get(c.character_id) if c.character_id is not None else None
            if sheet is not None and (sheet.hp, sheet.max_hp, sheet.ac, sheet.conditions) != (
                    c.hp, c.max_hp, c.ac, c.conditions):
                synced = combat.put(synced, replace(c, hp=sheet.hp, max_hp=sheet.max_hp, ac=sheet.ac,
                                                    conditions=sheet.conditions))
        return synced

    # --- attacks, turns, conditions (shared by the model's tools and /combat) ----------------------
    async def attack(self, session: GameSession, sheets: SheetJournal, encounter: Encounter, attacker_ref: str,
                     target_ref: str, *, action: str | None = None, bonus: int | None = None,
                     damage: Sequence[str] = (), advantage: Advantage = "none") -> AttackResult:
        """An attack roll by the rules (SRD 5.1, "Making an Attack"): d20 + the to-hit bonus against
        the target's AC; a natural 20 hits and is a critical hit (every damage die rolled twice), a
        natural 1 misses; on a hit the damage is rolled and applied (``change_hp``: a player
        character's sheet follows).

        A monster with an SRD stat block attacks with its action called ``action`` (its first attack
        when None): the book's ``attack_bonus`` and damage dice are used and ``bonus``/``damage`` are
        ignored. Anyone else (a player character, a homebrew monster, an NPC) needs ``bonus`` (within
        ±``HOMEBREW_MAX_BONUS``) and ``damage``: 1..``MAX_DAMAGE_ROLLS`` expressions such as
        ``1d8+3``. ``advantage`` rolls the d20 twice and keeps the higher ("advantage") or the lower.
        Raises ``CombatError`` (no fight, unknown combatant, a down attacker, a dead target, an
        action the stat block lacks or that is a saving throw, bad numbers)."""
        attacker = self.find(encounter, attacker_ref)
        target = self.find(encounter, target_ref)
        if attacker.down or attacker.unconscious:
            raise CombatError(f"{attacker.name} is {attacker.health()} and cannot attack.")
        if target.down:
            raise CombatError(f"{target.name} is already {target.health()}.")
        book = srd.find(attacker.monster) if attacker.monster else None
        types: tuple[str, ...] = ()
        if book is not None:
            act = book.action(action)
            if act is None:
                listed = ", ".join(a.name for a in book.actions) or "none"
                raise CombatError(f"{book.name} has no action called “{(action or '').strip()[:40]}”; "
                                  f"its actions: {listed}.")
            if act.attack_bonus is None:
                save = f"a DC {act.save_dc} {act.save_ability.upper()} saving throw" if act.save_dc and \
                    act.save_ability else "not an attack roll"
                raise CombatError(f"{book.name}'s {act.name} is {save}: roll the targets' saves with roll_dice "
                                  "and apply the damage with the damage tool.")
            name, to_hit_bonus = act.name, act.attack_bonus
            dice = [d.dice for d in act.damage]
            types = tuple(d.type for d in act.damage if d.type)
        else:
            if bonus is None or not damage:
                raise CombatError(f"{attacker.name} has no SRD stat block: give attack_bonus and damage "
                                  "(dice such as 1d8+3).")
            if abs(bonus) > HOMEBREW_MAX_BONUS:
                raise CombatError(f"attack_bonus must be from -{HOMEBREW_MAX_BONUS} to {HOMEBREW_MAX_BONUS}.")
            if len(damage) > MAX_DAMAGE_ROLLS:
                raise CombatError(f"An attack has at most {MAX_DAMAGE_ROLLS} damage rolls.")
            for expression in damage:
                if not DAMAGE_DICE.match(expression):
                    raise CombatError(f"“{expression[:40]}” is not damage dice; write it like 1d8+3 or 2d6.")
            name = " ".join((action or "attack").split())[:40] or "attack"
            to_hit_bonus, dice = bonus, [" ".join(d.split()) for d in damage]
        signed = f"+{to_hit_bonus}" if to_hit_bonus >= 0 else f"-{-to_hit_bonus}"
        expression = ("" if advantage == "none" else "adv " if advantage == "advantage" else "dis ") + f"1d20{signed}"
        reason = f"{name} attack on {target.name} (AC {target.ac})"
        to_hit = self.roll_dice(expression)
        rolls = [RollMade(attacker.name, expression, reason, to_hit)]
        critical = to_hit.crit == "crit"
        hit = critical or (to_hit.crit != "fail" and to_hit.total >= target.ac)
        total = 0
        if hit:
            for d in dice:
                rolled_dice = combat.doubled(d) if critical else d
                rolled = self.roll_dice(rolled_dice)
                rolls.append(RollMade(attacker.name, rolled_dice, f"{name} damage to {target.name}"
                                      + (" (critical hit)" if critical else ""), rolled))
                total += rolled.total
        total = max(0, total)
        events: list[str] = []
        after = encounter
        if hit and total:
            after, target, events = await self.change_hp(session, sheets, encounter, target.id, -total,
                                                         critical=critical)
        return AttackResult(after, attacker, target, name, to_hit_bonus, hit, critical, total, types, tuple(rolls),
                            tuple(events))

    async def next_turn(self, sheets: SheetJournal, encounter: Encounter) -> TurnChange:
        """End the current turn: the next combatant who can act begins theirs (``combat.advance``:
        the down are skipped, wrapping starts the next round; round 1 begins when not started). An
        unconscious player character whose turn comes rolls a death saving throw by code (SRD 5.1,
        "Death Saving Throws"); unless it regains a hit point (a natural 20: its sheet follows) its turn
        passes at once, as does a stable one's. Raises ``CombatError`` when nobody can act."""
        if not encounter.combatants:
            raise CombatError("Nobody is in the fight; add combatants first.")
        if all(c.down for c in encounter.combatants):
            raise CombatError("Everyone in the fight is down; end it with end_encounter.")
        current = combat.advance(encounter)
        rolls: list[RollMade] = []
        events: list[str] = []
        seen: set[str] = set()
        while (active := current.active) is not None and active.unconscious and active.id not in seen:
            seen.add(active.id)
            if active.stable:
                events.append(f"{active.name} is unconscious but stable; the turn passes.")
            else:
                save = combat.death_save(active, self.dice)
                rolls.append(RollMade(active.name, "1d20", "death saving throw", save.roll))
                events.append(save.text)
                current = combat.put(current, save.combatant)
                if save.combatant.hp > 0:
                    if save.combatant.character_id is not None:
                        await sheets.update(save.combatant.character_id, hp=save.combatant.hp)
                    break
            if all(c.down or c.unconscious for c in current.combatants):
                break  # nobody left who can act: stay here
            current = combat.advance(current)
        return TurnChange(current, tuple(rolls), tuple(events))

    async def set_condition(self, sheets: SheetJournal, encounter: Encounter, ref: str, condition: str, *,
                            present: bool = True) -> tuple[Encounter, Combatant, bool]:
        """Give a combatant a condition (``present``) or take it away; a player character's sheet
        follows. Conditions are short free text ("prone", "poisoned"; SRD 5.1 appendix "Conditions"),
        at most ``rules.CONDITIONS_MAX`` per combatant. Returns the new encounter, the combatant and
        whether anything changed. Raises ``CombatError`` (clearing a condition it does not have)."""
        target = self.find(encounter, ref)
        text = " ".join(condition.split())[:rules.ITEM_MAX]
        if not text:
            raise CombatError("Name the condition, e.g. prone or poisoned.")
        has = next((x for x in target.conditions if x.casefold() == text.casefold()), None)
        if present:
            if has is not None:
                return encounter, target, False
            if len(target.conditions) >= rules.CONDITIONS_MAX:
                raise CombatError(f"{target.name} already has {rules.CONDITIONS_MAX} conditions; clear one first.")
            conditions = (*target.conditions, text)
        else:
            if has is None:
                listed = ", ".join(target.conditions) or "none"
                raise CombatError(f"{target.name} is not {text}; its conditions: {listed}.")
            conditions = tuple(x for x in target.conditions if x != has)
        after = replace(target, conditions=conditions)
        if after.character_id is not None:
            await sheets.update(after.character_id, conditions=list(conditions))
        return combat.put(encounter, after), after, True

    def roll_dice(self, expression: str) -> Rolled:
        """Roll ``expression`` with the service's dice. Raises ``CombatError`` for a bad expression."""
        try:
            return self.dice(expression)
        except DiceError as exc:
            raise CombatError(str(exc)) from exc

    def _roll(self, expression: str) -> int:
        try:
            return self.dice(expression).total
        except DiceError as exc:
            raise CombatError(str(exc)) from exc

    # --- turn order fixes (the table's /combat commands; the FIREBALL replay) --------------------
    def set_initiative(self, encounter: Encounter, ref: str, initiative: int) -> tuple[Encounter, Combatant]:
        """The combatant called ``ref`` with a new initiative, the order re-sorted (ties as in
        ``combat.order_key``); whoever's turn it is keeps it. Raises ``CombatError``."""
        target = self.find(encounter, ref)
        active = encounter.active
        changed = replace(target, initiative=initiative)
        ordered = tuple(sorted((changed if c.id == target.id else c for c in encounter.combatants),
                               key=combat.order_key))
        current = next((i for i, c in enumerate(ordered) if active is not None and c.id == active.id),
                       encounter.current)
        return replace(encounter, combatants=ordered, current=current), changed

    def goto(self, encounter: Encounter, ref: str) -> Encounter:
        """Make it the turn of the combatant called ``ref`` (the round stays; before round 1 the turn
        pointer moves and the first ``advance`` still starts round 1 at the top). Raises ``CombatError``."""
        target = self.find(encounter, ref)
        return replace(encounter, current=next(i for i, c in enumerate(encounter.combatants) if c.id == target.id))

    def previous(self, encounter: Encounter) -> Encounter:
        """Back to the previous combatant's turn (the one before in the order, back into the previous
        round from the top; never before round 1). Raises ``CombatError`` before the first turn."""
        if encounter.active is None:
            raise CombatError("The fight has not started: there is no previous turn.")
        n = len(encounter.combatants)
        if encounter.current > 0:
            return replace(encounter, current=encounter.current - 1)
        if encounter.round <= 1:
            return encounter
        return replace(encounter, current=n - 1, round=encounter.round - 1)
