"""The combat tools the DM model may call (dispatched by ``bot.game.tools``); code keeps every number
of a fight (``bot.game.encounter.EncounterService`` applies the rules of ``bot.game.combat``):

- ``start_encounter(monsters, party?)``: begin a fight. Each monster is ``{name, count?, hp?, ac?,
  init_mod?, kind?}``: an SRD 5.1 monster takes its stat block (armor class, hit points rolled from its
  hit dice, initiative from its Dexterity); any other needs homebrew ``hp`` and ``ac`` (bounded by
  ``HOMEBREW_MAX_*``). Every party character joins, initiative d20 + ``init_mod`` rolled by code (or
  the ``initiative`` a player rolled), and round 1 begins.
- ``add_combatant(name, ...)``: a monster or NPC (as above) or a party character joins a running fight.
- ``remove_combatant(combatant)``: someone leaves the fight (fled, surrendered).
- ``attack(attacker, target, action?, attack_bonus?, damage?, advantage?)``: an attack roll against the
  target's AC, damage rolled and applied on a hit; an SRD monster uses its book action, anyone else the
  bounded numbers given.
- ``damage(target, amount | dice, half?, critical?)``, ``heal(target, amount | dice)``: hit points by the
  rules (0..max; a player character's sheet follows through the sheet journal).
- ``set_condition`` / ``clear_condition(target, condition)``.
- ``end_turn(combatant?)``: the next combatant's turn; an unconscious player character's death saving
  throw is rolled by code on the way.
- ``end_encounter()``: the fight is over.

Every result states the new numbers (hit points over maximum, whose turn it is, the round); an
impossible request gives ``{"error": ...}`` for the model to correct. Rolls are added to the turn's
rolls (shown to the table with their breakdowns, stored with the turn); sheet changes to its changes.

The tools work on a copy of the session's encounter during the turn; the pipeline stores it once,
before the turn's commit (``CombatTools.save``), so a failed turn leaves the fight as it was and the
encounter's state before the turn is kept for ``/undo`` and ``/retry``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from bot.game import combat, rules
from bot.game.combat import Combatant, Encounter
from bot.game.combat_schemas import COMBAT_TOOL_NAMES, COMBAT_TOOL_SCHEMAS, INITIATIVE_MAX, MAX_MONSTER_KINDS
from bot.game.encounter import (
    DAMAGE_DICE,
    HOMEBREW_MAX_AC,
    HOMEBREW_MAX_BONUS,
    HOMEBREW_MAX_HP,
    MAX_DAMAGE_ROLLS,
    MAX_GROUP,
    Advantage,
    CombatError,
    EncounterService,
    RollMade,
)
from bot.game.session import GameSession
from bot.game.sheets import SheetJournal
from bot.models import Character, RollRecord

__all__ = ["COMBAT_TOOL_NAMES", "COMBAT_TOOL_SCHEMAS", "CombatTools", "sync_fight"]


class _Bad(Exception):
    """An argument the model got wrong; the message goes back to it."""


def _text(value: Any, what: str, limit: int = 60, *, required: bool = True) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _Bad(f"{what} is required")
        return None
    if not isinstance(value, str):
        raise _Bad(f"{what} must be a string")
    text = " ".join(value.split())
    if len(text) > limit:
        raise _Bad(f"{what} is at most {limit} characters")
    return text


def _number(value: Any, what: str, lo: int, hi: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value != int(value):
        raise _Bad(f"{what} must be a whole number")
    if not lo <= value <= hi:
        raise _Bad(f"{what} must be from {lo} to {hi}")
    return int(value)


def _flag(value: Any, what: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _Bad(f"{what} must be true or false")
    return value


def combatant_dict(c: Combatant) -> dict[str, Any]:
    """A combatant as the JSON the model reads: id, name, kind, initiative, hit points over maximum,
    AC, conditions and (when not fighting fit) its state and death saves."""
    out: dict[str, Any] = {"id": c.id, "name": c.name, "kind": c.kind, "initiative": c.initiative,
                           "hp": f"{c.hp}/{c.max_hp}", "ac": c.ac}
    if c.conditions:
        out["conditions"] = list(c.conditions)
    if c.dead or c.hp <= 0:
        out["state"] = c.health()
    if c.unconscious:
        out["death_saves"] = {"successes": c.death_successes, "failures": c.death_failures, "stable": c.stable}
    return out


def turn_dict(encounter: Encounter) -> dict[str, Any]:
    """Whose turn it is and the round, as the model reads them."""
    active = encounter.active
    out: dict[str, Any] = {"round": encounter.round, "turn_of": active.name if active else None}
    if not any(not c.down and c.kind != "pc" for c in encounter.combatants):
        out["hint"] = "no opponent is standing: call end_encounter when the fight is over"
    elif not any(not c.down and not c.unconscious and c.kind == "pc" for c in encounter.combatants):
        out["hint"] = "no player character is standing"
    return out


def state_dict(encounter: Encounter) -> dict[str, Any]:
    """The whole fight for the model: the order with every combatant's numbers, round, whose turn."""
    return {"order": [combatant_dict(c) for c in encounter.combatants], **turn_dict(encounter)}


def sync_fight(service: EncounterService, encounter: Encounter, party: list[Character]) -> Encounter:
    """``encounter`` with player characters' hit points, AC and conditions as their sheets have them
    now (``EncounterService.sync_party``); one whose sheet was healed above 0 hit points forgets its
    death saves (SRD 5.1, "Death Saving Throws")."""
    synced = service.sync_party(encounter, party)
    for c in synced.combatants:
        if c.kind == "pc" and c.hp > 0 and (c.death_successes or c.death_failures or c.stable):
            synced = combat.put(synced, replace(c, death_successes=0, death_failures=0, stable=False))
    return synced


@dataclass
class CombatTools:
    """The session's encounter as the model's tools see it during one turn (built by the pipeline).

    Attributes:
        service: the encounter's rules and storage.
        session: the channel's session (its ``encounter`` is the fight before this turn).
        sheets: the sheet journal (player characters' hit points and conditions go through it).
        turn: the turn being answered (rolls are recorded with it; ``save`` stores with it).
        encounter: the working copy the tools change (None: no fight).
        saved: True once ``save`` stored a change.
    """

    service: EncounterService
    session: GameSession
    sheets: SheetJournal
    turn: int
    encounter: Encounter | None = field(init=False)
    saved: bool = False

    def __post_init__(self) -> None:
        self.encounter = self.session.encounter

    async def call(self, tool: str, args: dict[str, Any], rolls: list[RollRecord]) -> dict[str, Any]:
        """Perform the combat tool ``tool`` with the model's ``args`` (a JSON object) for the session's
        party (its current sheets); rolls made are appended to ``rolls``. The result is JSON-ready,
        ``{"error": ...}`` for an impossible request (the encounter then stays as it was)."""
        handler = {"start_encounter": self._start, "add_combatant": self._add, "remove_combatant": self._remove,
                   "attack": self._attack, "damage": self._damage, "heal": self._heal,
                   "set_condition": self._set_condition, "clear_condition": self._clear_condition,
                   "end_turn": self._end_turn, "end_encounter": self._end}.get(tool)
        if handler is None:
            return {"error": f"unknown combat tool {tool!r}"}
        party = list(self.session.party)
        if self.encounter is not None:
            self.encounter = self.synced(self.encounter, party)
        made: list[RollMade] = []
        try:
            result = await handler(args, party, made)
        except (_Bad, CombatError) as exc:
            return {"error": str(exc)}
        rolls.extend(self._record(r) for r in made)
        return result

    def synced(self, encounter: Encounter, party: list[Character]) -> Encounter:
        """See ``sync_fight``."""
        return sync_fight(self.service, encounter, party)

    async def save(self) -> bool:
        """Store the working encounter (player characters' numbers synced with their sheets) when it
        differs from the session's: once per turn, before the commit. Returns whether it stored
        anything."""
        final = self.synced(self.encounter, self.session.party) if self.encounter is not None else None
        if final == self.session.encounter:
            return False
        await self.service.save(self.session, final, self.turn)
        self.encounter = final
        self.saved = True
        return True

    # --- helpers -----------------------------------------------------------------------------------
    def _record(self, made: RollMade) -> RollRecord:
        return RollRecord(id=None, campaign_id=self.session.campaign.id, turn=self.turn, roller_id=None,
                          roller_name="DM", character_name=made.who[:60], expression=made.expression,
                          reason=made.reason[:200], total=made.rolled.total, breakdown=made.rolled.breakdown,
                          created_at=time.time(), by_dm=True)

    def _running(self) -> Encounter:
        if self.encounter is None:
            raise CombatError("No fight is running: call start_encounter first.")
        return self.encounter

    def _character(self, party: list[Character], name: str) -> Character | None:
        wanted = name.casefold()
        found = [c for c in party if c.name.casefold() == wanted]
        if not found:
            found = [c for c in party if c.name.casefold().split()[0] == wanted.split()[0]] if wanted else []
        return found[0] if len(found) == 1 else None

    def _monsters(self, encounter: Encounter, spec: Any) -> tuple[Encounter, list[Combatant]]:
        if not isinstance(spec, dict):
            raise _Bad("each monster must be an object like {\"name\": \"Goblin\", \"count\": 3}")
        name = _text(spec.get("name"), "a monster's name", 40) or ""
        count = _number(spec.get("count"), "count", 1, MAX_GROUP) or 1
        kind = spec.get("kind") or "monster"
        if kind not in ("monster", "npc"):
            raise _Bad("kind must be monster or npc")
        bounds = {"hp": (1, HOMEBREW_MAX_HP), "ac": (1, HOMEBREW_MAX_AC), "init_mod": (-10, 10)}
        homebrew = {k: v for k, (lo, hi) in bounds.items() if (v := _number(spec.get(k), k, lo, hi)) is not None}
        grown, added = self.service.add_monsters(encounter, name, count, homebrew=homebrew,
                                                 average_hp=self.session.config.average_monster_hp)
        if kind == "npc":
            for c in added:
                grown = combat.put(grown, replace(c, kind="npc"))
            added = [replace(c, kind="npc") for c in added]
        return grown, added

    # --- the tools ---------------------------------------------------------------------------------
    async def _start(self, args: dict[str, Any], party: list[Character], made: list[RollMade]) -> dict[str, Any]:
        if self.encounter is not None:
            raise CombatError("A fight is already running: use add_combatant, or end_encounter first.")
        monsters = args.get("monsters")
        if isinstance(monsters, dict):
            monsters = [monsters]
        if not isinstance(monsters, list) or not monsters:
            raise _Bad("monsters must be a list like [{\"name\": \"Goblin\", \"count\": 3}]")
        if len(monsters) > MAX_MONSTER_KINDS:
            raise _Bad(f"at most {MAX_MONSTER_KINDS} monster entries; use count for groups")
        raw_party = args.get("party") or []
        if not isinstance(raw_party, list) or not all(isinstance(p, dict) for p in raw_party):
            raise _Bad("party must be a list of objects like {\"character\": \"Aria\", \"init_mod\": 3}")
        chosen: dict[int, tuple[int | None, int]] = {}
        for p in raw_party:
            name = _text(p.get("character"), "character") or ""
            character = self._character(party, name)
            if character is None:
                raise _Bad(f"no party character named {name!r}; the party is: "
                           + (", ".join(c.name for c in party) or "nobody"))
            chosen[character.id] = (_number(p.get("initiative"), "initiative", -10, INITIATIVE_MAX),
                                    _number(p.get("init_mod"), "init_mod", -10, 10) or 0)
        encounter = Encounter(started_turn=self.turn)  # (the session's may have ended earlier this turn)
        for spec in monsters:
            encounter, _added = self._monsters(encounter, spec)
        for character in party:
            initiative, mod = chosen.get(character.id, (None, 0))
            encounter, _pc = self.service.add_character(encounter, character, initiative, mod)
        change = await self.service.next_turn(self.sheets, encounter)
        made.extend(change.rolls)
        self.encounter = change.encounter
        return {"ok": True, "started": True, **state_dict(change.encounter),
                **({"events": list(change.events)} if change.events else {})}

    async def _add(self, args: dict[str, Any], party: list[Character], made: list[RollMade]) -> dict[str, Any]:
        encounter = self._running()
        name = _text(args.get("name"), "name", 40) or ""
        character = self._character(party, name)
        if character is not None:
            initiative = _number(args.get("initiative"), "initiative", -10, INITIATIVE_MAX)
            mod = _number(args.get("init_mod"), "init_mod", -10, 10) or 0
            grown, joined = self.service.add_character(encounter, character, initiative, mod)
            added = [joined]
        else:
            grown, added = self._monsters(encounter, args)
        self.encounter = grown
        return {"ok": True, "added": [combatant_dict(c) for c in added], **state_dict(grown)}

    async def _remove(self, args: dict[str, Any], party: list[Character], made: list[RollMade]) -> dict[str, Any]:
        encounter = self._running()
        gone = self.service.find(encounter, _text(args.get("combatant"), "combatant") or "")
        self.encounter = combat.remove(encounter, gone.id)
        return {"ok": True, "removed": gone.name, **state_dict(self.encounter)}

    async def _attack(self, args: dict[str, Any], party: list[Character], made: list[RollMade]) -> dict[str, Any]:
        encounter = self._running()
        attacker = _text(args.get("attacker"), "attacker") or ""
        target = _text(args.get("target"), "target") or ""
        action = _text(args.get("action"), "action", required=False)
        bonus = _number(args.get("attack_bonus"), "attack_bonus", -HOMEBREW_MAX_BONUS, HOMEBREW_MAX_BONUS)
        raw = args.get("damage")
        damage = [raw] if isinstance(raw, str) else raw if raw is not None else []
        if not isinstance(damage, list) or not all(isinstance(d, str) and len(d) <= 40 for d in damage):
            raise _Bad("damage must be dice such as 1d8+3")
        if len(damage) > MAX_DAMAGE_ROLLS:
            raise _Bad(f"at most {MAX_DAMAGE_ROLLS} damage expressions")
        raw_advantage = args.get("advantage") or "none"
        advantage: Advantage = ("advantage" if raw_advantage == "advantage" else
                                "disadvantage" if raw_advantage == "disadvantage" else "none")
        if raw_advantage != advantage:
            raise _Bad("advantage must be 'none', 'advantage' or 'disadvantage'")
        result = await self.service.attack(self.session, self.sheets, encounter, attacker, target, action=action,
                                           bonus=bonus, damage=[d for d in damage if d.strip()],
                                           advantage=advantage)
        made.extend(result.rolls)
        self.encounter = result.encounter
        to_hit = result.rolls[0].rolled
        out: dict[str, Any] = {
            "attacker": result.attacker.name, "action": result.action, "target": result.target.name,
            "to_hit": to_hit.total, "roll": to_hit.breakdown, "target_ac": result.target.ac, "hit": result.hit}
        if result.critical:
            out["critical"] = True
        elif to_hit.crit == "fail":
            out["natural_1"] = True
        if result.hit:
            out["damage"] = result.damage
            if result.damage_types:
                out["damage_type"] = "/".join(result.damage_types)
        out["target_now"] = combatant_dict(result.target)
        if result.events:
            out["events"] = list(result.events)
        return {**out, **turn_dict(result.encounter)}

    async def _amount(self, args: dict[str, Any], made: list[RollMade], who: str, what: str) -> int:
        amount = _number(args.get("amount"), "amount", 1, rules.HP_CHANGE_MAX)
        dice = _text(args.get("dice"), "dice", 40, required=False)
        if (amount is None) == (dice is None):
            raise _Bad("give either amount (a positive number) or dice (like 2d6+1)")
        if amount is not None:
            return amount
        reason = _text(args.get("reason"), "reason", 80, required=False) or what
        if not DAMAGE_DICE.match(dice or ""):
            raise _Bad(f"{dice!r} is not dice; write it like 2d6+1")
        rolled = self.service.roll_dice(dice or "")
        made.append(RollMade(who, dice or "", f"{reason} ({what})", rolled))
        return max(0, rolled.total)

    async def _damage(self, args: dict[str, Any], party: list[Character], made: list[RollMade]) -> dict[str, Any]:
        encounter = self._running()
        target = self.service.find(encounter, _text(args.get("target"), "target") or "")
        critical = _flag(args.get("critical"), "critical")
        half = _flag(args.get("half"), "half")
        rolled = await self._amount(args, made, target.name, "damage")
        amount = rolled // 2 if half else rolled
        out: dict[str, Any] = {}
        events: list[str] = []
        if target.dead:
            raise CombatError(f"{target.name} is already dead.")
        if amount:
            self.encounter, target, events = await self.service.change_hp(self.session, self.sheets, encounter,
                                                                          target.id, -amount, critical=critical)
        out = {"ok": True, "damage": amount, **({"halved_from": rolled} if half else {}),
               "target_now": combatant_dict(target), **({"events": events} if events else {})}
        return {**out, **turn_dict(self.encounter or encounter)}

    async def _heal(self, args: dict[str, Any], party: list[Character], made: list[RollMade]) -> dict[str, Any]:
        encounter = self._running()
        target = self.service.find(encounter, _text(args.get("target"), "target") or "")
        if target.dead:
            raise CombatError(f"{target.name} is dead; healing does not bring back the dead.")
        amount = await self._amount(args, made, target.name, "healing")
        before = target.hp
        self.encounter, target, events = await self.service.change_hp(self.session, self.sheets, encounter,
                                                                      target.id, amount)
        out: dict[str, Any] = {"ok": True, "healed": max(0, target.hp) - max(0, before),
                               "target_now": combatant_dict(target)}
        if max(0, before) + amount > target.max_hp:
            out["note"] = f"hit points stop at the maximum ({target.max_hp})"
        if events:
            out["events"] = events
        return {**out, **turn_dict(self.encounter)}

    async def _condition(self, args: dict[str, Any], present: bool) -> dict[str, Any]:
        encounter = self._running()
        target = _text(args.get("target"), "target") or ""
        condition = _text(args.get("condition"), "condition", rules.ITEM_MAX) or ""
        self.encounter, after, changed = await self.service.set_condition(self.sheets, encounter, target, condition,
                                                                          present=present)
        return {"ok": True, **({} if changed else {"unchanged": True}), "target_now": combatant_dict(after),
                **turn_dict(self.encounter)}

    async def _set_condition(self, args: dict[str, Any], party: list[Character],
                             made: list[RollMade]) -> dict[str, Any]:
        return await self._condition(args, True)

    async def _clear_condition(self, args: dict[str, Any], party: list[Character],
                               made: list[RollMade]) -> dict[str, Any]:
        return await self._condition(args, False)

    async def _end_turn(self, args: dict[str, Any], party: list[Character], made: list[RollMade]) -> dict[str, Any]:
        encounter = self._running()
        ending = _text(args.get("combatant"), "combatant", required=False)
        active = encounter.active
        if ending is not None and active is not None and self.service.find(encounter, ending).id != active.id:
            raise CombatError(f"It is {active.name}'s turn, not {ending}'s; end {active.name}'s turn first.")
        change = await self.service.next_turn(self.sheets, encounter)
        made.extend(change.rolls)
        self.encounter = change.encounter
        now = change.encounter.active
        out: dict[str, Any] = {"ok": True, "ended": active.name if active else None, **turn_dict(change.encounter)}
        if change.events:
            out["events"] = list(change.events)
        if now is not None:
            out["acting"] = combatant_dict(now)
            if now.kind == "pc":
                out["next_step"] = f"{now.name} is a player character: ask their player what they do"
            else:
                out["next_step"] = f"play {now.name}'s turn (attack), then end_turn"
        return out

    async def _end(self, args: dict[str, Any], party: list[Character], made: list[RollMade]) -> dict[str, Any]:
        encounter = self._running()
        self.encounter = None
        return {"ok": True, "ended": True, "rounds": encounter.round,
                "final": [combatant_dict(c) for c in encounter.combatants]}
