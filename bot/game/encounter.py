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

from dataclasses import replace

from bot.errors import UserInputError
from bot.game import combat, srd
from bot.game.combat import Combatant, Dice, Encounter
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

    def _roll(self, expression: str) -> int:
        try:
            return self.dice(expression).total
        except DiceError as exc:
            raise CombatError(str(exc)) from exc
