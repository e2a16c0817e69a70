"""The combat tracker the table sees: a pure renderer from an ``Encounter`` to a ``TrackerView``
(round, initiative order, whose turn it is, player characters' hit points as numbers, monsters
described as unhurt, hurt, bloodied or down unless the server's ``show_monster_hp`` option shows their
numbers), and ``refresh_tracker``, which shows a session's current tracker through the narrator.

Discord posts the tracker once when the fight starts and edits that message in place as it changes;
terminal play prints the same text. Call ``refresh_tracker`` at most once per turn: after a turn or a
command that changed ``GameSession.encounter_version``.
"""

from __future__ import annotations

from bot.game.api import Narrator, TrackerView
from bot.game.combat import Combatant, Encounter
from bot.game.session import GameSession
from bot.store import Store

NAME_MAX = 40  # characters of a name on a tracker line

__all__ = ["TrackerView", "combatant_state", "refresh_tracker", "render"]


def combatant_state(c: Combatant, *, show_monster_hp: bool = False) -> str:
    """How one combatant stands: ``HP 7/12`` for a player character (``, unconscious, death saves 1
    success, 2 failures`` / ``, stable`` / ``, dead`` at 0), the look of a monster or NPC (``unhurt``,
    ``hurt``, ``bloodied``, ``down``) or its numbers with ``show_monster_hp``; conditions after."""
    if c.kind == "pc":
        parts = [f"HP {max(0, c.hp)}/{c.max_hp}"]
        if c.dead:
            parts.append("dead")
        elif c.unconscious:
            if c.stable:
                parts.append("unconscious, stable")
            else:
                parts.append(f"unconscious, death saves {c.death_successes} success"
                             f"{'' if c.death_successes == 1 else 'es'}, {c.death_failures} failure"
                             f"{'' if c.death_failures == 1 else 's'}")
    elif show_monster_hp:
        parts = [f"HP {max(0, c.hp)}/{c.max_hp}", *(["down"] if c.down else [])]
    else:
        parts = [c.health()]
    return ", ".join([*parts, *c.conditions])


def render(encounter: Encounter | None, *, show_monster_hp: bool = False, ended: bool = False) -> TrackerView:
    """The tracker of ``encounter`` (None: a fight that is over, shown without lines). ``ended`` marks
    the last view of a fight that just ended (its final standings)."""
    if encounter is None:
        return TrackerView(round=0, active=None, lines=(), ended=True)
    active = encounter.active
    lines = []
    for c in encounter.combatants:
        marker = ">" if active is not None and c.id == active.id and not ended else " "
        lines.append(f"{marker} {c.initiative:>2}  {c.name[:NAME_MAX]} — "
                     f"{combatant_state(c, show_monster_hp=show_monster_hp)}")
    return TrackerView(round=encounter.round, active=None if ended or active is None else active.name,
                       lines=tuple(lines), ended=ended)


async def refresh_tracker(narrator: Narrator, store: Store, session: GameSession) -> None:
    """Show ``session``'s tracker through ``narrator`` (Discord edits the tracker message in place).
    Call it after a turn that changed ``session.encounter_version`` (once per turn). A fight that is
    over shows its final view only where a tracker message is known (the narrator decides); nothing is
    shown for a campaign that never had a fight. ``store`` is where the tracker message's place is
    kept (``store.encounters.tracker``): without a running fight and without a known message there is
    nothing to refresh."""
    encounter = session.encounter
    if encounter is None and await store.encounters.tracker(session.campaign.id) is None \
            and session.encounter_version == 0:
        return
    await narrator.show_tracker(session.channel_id, session.campaign.id,
                                render(encounter, show_monster_hp=session.config.show_monster_hp))
