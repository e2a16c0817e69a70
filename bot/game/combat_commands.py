"""The table's side of a fight: ``/combat show|next|add|remove|end|init`` and their autocompletes.

Permissions: anyone may look (``show``); a player rolls their own initiative (``init``: joins their
character to the fight, or changes its initiative); fixing the fight (``next``, ``add``, ``remove``,
``end``) needs the campaign's creator or an admin (``require_manager``), as the model's mistakes are
theirs to fix.

Every change goes through ``EncounterService`` (the rules, player hit points through the sheets) and
is saved under the session's lock with ``EncounterService.save(session, enc, turn=campaign.turn)``,
then the tracker is shown through the narrator (Discord edits the tracker message in place).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.game import combat, srd
from bot.game.api import Actor, CombatChange, Narrator, TrackerView
from bot.game.campaign import require_manager
from bot.game.combat import Dice, Encounter
from bot.game.encounter import MAX_GROUP, CombatError, EncounterService
from bot.game.errors import NotInParty
from bot.game.registry import SessionRegistry
from bot.game.session import GameSession, LiveSession
from bot.game.tracker import render
from bot.store import Store

AUTOCOMPLETE_MAX = 25  # Discord shows at most 25 choices
INITIATIVE_MIN, INITIATIVE_MAX = -10, 50  # a typed-in initiative roll

__all__ = ["AUTOCOMPLETE_MAX", "INITIATIVE_MAX", "INITIATIVE_MIN", "CombatCommands"]


class CombatCommands:
    """The combat commands of the table.

    Args:
        store: where encounters are kept.
        registry: the loaded sessions (each holds its running ``encounter``).
        narrator: shows the tracker after a change.
        dice: how the rules roll (default ``combat.roll``; tests inject fixed dice).
    """

    def __init__(self, *, store: Store, registry: SessionRegistry, narrator: Narrator,
                 dice: Dice = combat.roll) -> None:
        self.store = store
        self.registry = registry
        self.narrator = narrator
        self.encounters = EncounterService(store, dice)

    @staticmethod
    def view(session: GameSession, encounter: Encounter | None = None, *, ended: bool = False) -> TrackerView:
        """The tracker of ``encounter`` (default: the session's) with the server's options."""
        return render(encounter if encounter is not None else session.encounter,
                      show_monster_hp=session.config.show_monster_hp, ended=ended)

    async def _change(self, channel_id: int, actor: Actor, what: str | None,
                      change: Callable[[LiveSession, Encounter | None], Awaitable[tuple[Encounter | None, str]]],
                      *, ended: bool = False) -> CombatChange:
        """Run ``change`` on the session's encounter (party sheets synced first) under the lock, save
        the result, show the tracker. ``what`` (for ``require_manager``) None: any party member."""
        live = await self.registry.require(channel_id)
        session = live.state
        if what is not None:
            require_manager(session, actor, what)
        async with session.lock:
            current = session.encounter
            if current is not None:
                current = self.encounters.sync_party(current, session.party)
            after, text = await change(live, current)
            view = self.view(session, after if after is not None else current, ended=ended)
            await self.encounters.save(session, None if ended else after, turn=session.campaign.turn)
            await self.narrator.show_tracker(session.channel_id, session.campaign.id, view)
        return CombatChange(view=view, text=text)

    # --- reading ---------------------------------------------------------------------------------
    async def show(self, channel_id: int) -> TrackerView:
        """The tracker of the running fight. Raises ``CombatError`` without one and ``NoCampaign``."""
        session = (await self.registry.require(channel_id)).state
        if session.encounter is None:
            raise CombatError("There is no fight running. `/combat add` starts one.")
        return self.view(session, self.encounters.sync_party(session.encounter, session.party))

    async def combatant_names(self, channel_id: int, prefix: str = "") -> list[str]:
        """For autocomplete: names of the combatants starting with (then containing) ``prefix``;
        [] without a fight or a campaign."""
        live = await self.registry.get(channel_id)
        if live is None or live.state.encounter is None:
            return []
        return _matching([c.name for c in live.state.encounter.combatants], prefix)

    async def addable_names(self, channel_id: int, prefix: str = "") -> list[str]:
        """For autocomplete: party members not yet in the fight, then SRD monster names, matching
        ``prefix``."""
        live = await self.registry.get(channel_id)
        party: list[str] = []
        if live is not None:
            fighting = {c.character_id for c in (live.state.encounter.combatants if live.state.encounter else ())}
            party = _matching([c.name for c in live.state.party if c.id not in fighting], prefix)
        return (party + [n for n in srd.names(prefix, AUTOCOMPLETE_MAX) if n not in party])[:AUTOCOMPLETE_MAX]

    # --- fixing the fight (creator or admin) -------------------------------------------------------
    async def next_turn(self, channel_id: int, actor: Actor) -> CombatChange:
        """End the current turn: the next combatant who can act (round 1 begins on the first call; an
        unconscious player character whose turn comes rolls its death saving throw by code, see
        ``EncounterService.next_turn``). Creator or admin. Raises ``CombatError`` without a fight,
        ``NotAllowed``, ``NoCampaign``."""
        async def change(live: LiveSession, enc: Encounter | None) -> tuple[Encounter | None, str]:
            if enc is None:
                raise CombatError("There is no fight running. `/combat add` starts one.")
            if not enc.combatants:
                raise CombatError("Nobody is in the fight yet: `/combat add` a monster or a party member.")
            turn = await self.encounters.next_turn(live.sheets, enc)
            active = turn.encounter.active
            return turn.encounter, " ".join([*turn.events, f"Round {turn.encounter.round}: "
                                                          f"{active.name if active else 'nobody'}'s turn."])

        return await self._change(channel_id, actor, "run the fight's turns", change)

    async def add(self, channel_id: int, actor: Actor, name: str, count: int = 1, *, hp: int | None = None,
                  ac: int | None = None, init_mod: int = 0) -> CombatChange:
        """Add a party member (by character name) or ``count`` monsters called ``name`` (SRD numbers;
        a monster the SRD lacks needs ``hp`` and ``ac``) with initiative rolled by code, starting the
        fight when none runs. Creator or admin. Raises ``CombatError``, ``NotAllowed``, ``NoCampaign``."""
        async def change(live: LiveSession, enc: Encounter | None) -> tuple[Encounter | None, str]:
            session = live.state
            if enc is None:
                enc = self.encounters.start(session, session.campaign.turn)
            character = session.find_character(name)
            if character is not None:
                if count != 1:
                    raise CombatError(f"{character.name} is one person: add them with count 1.")
                grown, added = self.encounters.add_character(enc, character)
                return grown, f"{added.name} joins the fight (initiative {added.initiative})."
            if not 1 <= count <= MAX_GROUP:
                raise CombatError(f"Add from 1 to {MAX_GROUP} monsters at a time.")
            homebrew = {k: v for k, v in (("hp", hp), ("ac", ac), ("init_mod", init_mod)) if v is not None}
            grown, monsters = self.encounters.add_monsters(enc, name, count, homebrew=homebrew,
                                                           average_hp=session.config.average_monster_hp)
            joined = ", ".join(f"{m.name} ({m.initiative})" for m in monsters)
            return grown, f"Joining the fight, with their initiative: {joined}."

        return await self._change(channel_id, actor, "add combatants to the fight", change)

    async def remove(self, channel_id: int, actor: Actor, name: str) -> CombatChange:
        """Take a combatant out of the fight (if it was acting, the next one's turn begins). Creator
        or admin. Raises ``CombatError``, ``NotAllowed``, ``NoCampaign``."""
        async def change(live: LiveSession, enc: Encounter | None) -> tuple[Encounter | None, str]:
            target = self.encounters.find(enc, name)
            assert enc is not None  # find raised otherwise
            return combat.remove(enc, target.id), f"{target.name} leaves the fight."

        return await self._change(channel_id, actor, "remove combatants from the fight", change)

    async def end(self, channel_id: int, actor: Actor) -> CombatChange:
        """End the fight: the tracker shows its final standings and the encounter is cleared. Creator
        or admin. Raises ``CombatError`` without a fight, ``NotAllowed``, ``NoCampaign``."""
        async def change(live: LiveSession, enc: Encounter | None) -> tuple[Encounter | None, str]:
            if enc is None:
                raise CombatError("There is no fight running.")
            return enc, f"The fight is over after {enc.round} round{'' if enc.round == 1 else 's'}."

        return await self._change(channel_id, actor, "end the fight", change, ended=True)

    # --- a player's own initiative -----------------------------------------------------------------
    async def initiative(self, channel_id: int, actor: Actor, roll: int | None = None) -> CombatChange:
        """The caller's character rolls initiative (``roll``: their own roll's total; None: d20 by
        code): it joins the running fight, or its initiative changes. Raises ``NotInParty``,
        ``CombatError`` (no fight, a roll out of bounds), ``NoCampaign``."""
        if roll is not None and not INITIATIVE_MIN <= roll <= INITIATIVE_MAX:
            raise CombatError(f"An initiative roll is from {INITIATIVE_MIN} to {INITIATIVE_MAX}.")

        async def change(live: LiveSession, enc: Encounter | None) -> tuple[Encounter | None, str]:
            session = live.state
            character = session.character_of(actor.user_id)
            if character is None:
                raise NotInParty()
            if enc is None:
                raise CombatError("There is no fight running: the DM or `/combat add` starts one.")
            mine = next((c for c in enc.combatants if c.character_id == character.id), None)
            rolled = roll if roll is not None else self.encounters.roll_initiative(mine.init_mod if mine else 0)
            if mine is None:
                grown, added = self.encounters.add_character(enc, character, initiative=rolled)
                return grown, f"{added.name} joins the fight with initiative {added.initiative}."
            changed, after = self.encounters.set_initiative(enc, mine.id, rolled)
            return changed, f"{after.name}'s initiative is now {after.initiative}."

        return await self._change(channel_id, actor, None, change)


def _matching(names: list[str], prefix: str) -> list[str]:
    """``names`` starting with ``prefix`` (case-insensitive), then those containing it, at most
    ``AUTOCOMPLETE_MAX``."""
    wanted = " ".join(prefix.split()).casefold()
    first = [n for n in names if n.casefold().startswith(wanted)]
    rest = [n for n in names if wanted and wanted in n.casefold() and n not in first]
    return (first + rest)[:AUTOCOMPLETE_MAX]
