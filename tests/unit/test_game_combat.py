"""Combat rules kept by code (SRD 5.1): initiative order and ties, turns skipping the down, attacks
against AC with critical hits, damage, healing, instant death and death saving throws. Dice are
injected (``FixedDice``), never patched into text."""

from __future__ import annotations

from collections import deque

import pytest

from bot.game import combat, srd
from bot.game.combat import Combatant, Encounter, Rolled


class FixedDice:
    """Answers each roll with the next scripted ``(total, crit)``; records the expressions."""

    def __init__(self, *results: tuple[int, combat.Crit]) -> None:
        self.results = deque(results)
        self.asked: list[str] = []

    def __call__(self, expression: str) -> Rolled:
        self.asked.append(expression)
        total, crit = self.results.popleft()
        return Rolled(total, f"{expression} = `{total}`", crit)


def pc(name: str, init: int, mod: int = 0, hp: int = 10, **kw: object) -> Combatant:
    return Combatant(id="", name=name, kind="pc", initiative=init, init_mod=mod, hp=hp, max_hp=hp, **kw)  # type: ignore[arg-type]  # test builder


def monster(name: str, init: int, mod: int = 0, hp: int = 7, **kw: object) -> Combatant:
    return Combatant(id="", name=name, kind="monster", initiative=init, init_mod=mod, hp=hp, max_hp=hp, **kw)  # type: ignore[arg-type]  # test builder


def test_the_srd_goblin_has_its_book_numbers() -> None:
    goblin = srd.find("goblin")
    assert goblin is not None
    assert (goblin.name, goblin.ac, goblin.hp, goblin.hit_dice, goblin.initiative_mod) == ("Goblin", 15, 7, "2d6", 2)
    scimitar = goblin.action("scim")
    assert scimitar is not None and (scimitar.attack_bonus, [d.dice for d in scimitar.damage]) == (4, ["1d6+2"])
    assert srd.find("Sea Hag") is srd.find("sea-hag") is not None
    assert srd.find("Beholder") is None  # not in the SRD
    assert srd.names("gob") == ["Goblin", "Hobgoblin"]


def test_initiative_order_breaks_ties_by_modifier_then_roll_off() -> None:
    enc = combat.add(Encounter(), [pc("Aria", 15, 3), monster("Goblin 1", 15, 2), pc("Borin", 15, 3, tiebreak=9),
                                   monster("Goblin 2", 20, 2), pc("Cyra", 4, 1)])
    assert [c.name for c in enc.combatants] == ["Goblin 2", "Borin", "Aria", "Goblin 1", "Cyra"]
    assert [c.id for c in enc.combatants] == ["c4", "c3", "c1", "c2", "c5"]
    assert combat.group_names("Goblin", 3, ["Goblin 1", "Goblin 2"]) == ["Goblin 3", "Goblin 4", "Goblin 5"]


def test_turns_follow_the_order_skip_the_down_and_count_rounds() -> None:
    enc = combat.add(Encounter(), [pc("Aria", 15), monster("Goblin", 12), pc("Borin", 8, hp=0)])
    assert enc.active is None
    enc = combat.advance(enc)
    assert (enc.round, enc.active.name if enc.active else None) == (1, "Aria")
    enc = combat.put(enc, combat.damage(enc.combatants[1], 7).combatant)  # the goblin drops
    enc = combat.advance(enc)
    assert (enc.round, enc.active.name if enc.active else None) == (1, "Borin")  # unconscious PCs still get turns
    enc = combat.advance(enc)
    assert (enc.round, enc.active.name if enc.active else None) == (2, "Aria")
    enc = combat.add(enc, [monster("Goblin 2", 20)])  # a newcomer does not steal the turn
    assert enc.active is not None and enc.active.name == "Aria"
    assert combat.remove(enc, enc.active.id).active.name == "Borin"  # type: ignore[union-attr]


def test_an_attack_hits_at_the_targets_ac_and_a_natural_20_doubles_the_dice() -> None:
    miss = combat.attack(4, 15, ["1d6+2"], FixedDice((14, None)))
    assert (miss.hit, miss.damage, miss.damage_rolls) == (False, 0, ())
    dice = FixedDice((15, None), (6, None))
    hit = combat.attack(4, 15, ["1d6+2"], dice)
    assert (hit.hit, hit.critical, hit.damage) == (True, False, 6) and dice.asked == ["1d20+4", "1d6+2"]
    dice = FixedDice((24, "crit"), (9, None), (3, None))
    crit = combat.attack(4, 30, ["1d6+2", "2d8"], dice)
    assert (crit.hit, crit.critical, crit.damage) == (True, True, 12) and dice.asked == ["1d20+4", "2d6+2", "4d8"]
    fumble = combat.attack(40, 10, ["1d6"], FixedDice((41, "fail")))
    assert fumble.hit is False  # a natural 1 always misses
    dice = FixedDice((5, None))
    assert combat.attack(-1, 10, ["1d4"], dice).hit is False and dice.asked == ["1d20-1"]


def test_damage_heal_and_instant_death() -> None:
    goblin = monster("Goblin", 10, hp=7)
    assert combat.damage(goblin, 3).combatant.hp == 4
    down = combat.damage(goblin, 9)
    assert (down.combatant.hp, down.combatant.down, down.events) == (0, True, ("Goblin is down",))
    aria = pc("Aria", 10, hp=10)
    ko = combat.damage(aria, 12)
    assert (ko.combatant.hp, ko.combatant.unconscious, ko.events) == (0, True, ("Aria falls unconscious",))
    killed = combat.damage(aria, 20)  # 10 left over >= 10 maximum
    assert (killed.combatant.dead, killed.events) == (True, ("Aria is killed outright (massive damage)",))
    back = combat.heal(ko.combatant, 4)
    assert (back.combatant.hp, back.events) == (4, ("Aria regains consciousness",))
    assert combat.heal(aria, 50).combatant.hp == 10 and combat.heal(killed.combatant, 5).combatant.hp == 0


def test_death_saving_throws_by_the_rules() -> None:
    down = combat.damage(pc("Aria", 10, hp=10), 10).combatant
    one = combat.death_save(down, FixedDice((10, None)))
    assert (one.combatant.death_successes, one.text) == (1, "Aria succeeds on a death save (10): 1 success(es)")
    fail = combat.death_save(one.combatant, FixedDice((9, None)))
    assert fail.combatant.death_failures == 1
    double = combat.death_save(fail.combatant, FixedDice((1, "fail")))
    assert (double.combatant.death_failures, double.combatant.dead) == (3, True)  # 1 + 2 = dead
    assert double.text == "Aria fails a death save (1): dead"
    nat20 = combat.death_save(down, FixedDice((20, "crit")))
    assert (nat20.combatant.hp, nat20.combatant.unconscious) == (1, False)
    stable = down
    for _ in range(3):
        stable = combat.death_save(stable, FixedDice((12, None))).combatant
    assert stable.stable and not stable.dead
    hurt = combat.damage(one.combatant, 2, critical=True)  # a critical hit at 0: two failures
    assert hurt.combatant.death_failures == 2
    with pytest.raises(ValueError):
        combat.death_save(pc("Borin", 5), FixedDice((10, None)))


def test_health_words_and_the_stored_form() -> None:
    assert [combat.damage(monster("G", 1, hp=8), n).combatant.health() for n in (0, 3, 4, 8)] == [
        "unhurt", "hurt", "bloodied", "dead"]
    enc = combat.advance(combat.add(Encounter(started_turn=4), [pc("Aria", 15, character_id=3, conditions=("prone",)),
                                                                 monster("Goblin 1", 12, monster="goblin")]))
    assert Encounter.from_dict(enc.to_dict()) == enc
    assert enc.get("gob") is enc.combatants[1] and enc.get("c1") is enc.combatants[0] and enc.get("x") is None
