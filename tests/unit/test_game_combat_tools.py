"""The model's combat tools against a real session and database: SRD monsters and homebrew bounds,
attacks against AC, damage, healing and clamping, death saving throws on a character's turn, turn
order skipping the dead, and errors the model can correct. Dice are injected (``ScriptDice``), never
patched into text; sheets change through the sheet journal."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any

from bot.game import combat
from bot.game.combat import Crit, Rolled
from bot.game.combat_tools import CombatTools
from bot.game.encounter import EncounterService
from bot.game.tools import ToolContext, run_tool
from tests.unit.test_game_sessions import ANN, BOB, GM, WHERE, Env, make_env, party_of


class ScriptDice:
    """Fixed dice: each expression answers from its own queue of totals (``(total, "crit")`` or
    ``(total, "fail")`` for a natural 20 or 1); an expression without a scripted result answers from
    ``defaults`` or fails the test. ``asked`` keeps every expression rolled, in order."""

    def __init__(self, defaults: dict[str, int] | None = None, **_: Any) -> None:
        self.queues: dict[str, deque[int | tuple[int, Crit]]] = {}
        self.defaults = {"1d20": 10, **(defaults or {})}  # the initiative roll-off, unless scripted
        self.asked: list[str] = []

    def script(self, expression: str, *results: int | tuple[int, Crit]) -> ScriptDice:
        """Queue ``results`` for ``expression``."""
        self.queues.setdefault(expression, deque()).extend(results)
        return self

    def __call__(self, expression: str) -> Rolled:
        self.asked.append(expression)
        queue = self.queues.get(expression)
        if queue:
            result = queue.popleft()
        elif expression in self.defaults:
            result = self.defaults[expression]
        else:
            raise AssertionError(f"unscripted roll {expression!r}")
        total, crit = result if isinstance(result, tuple) else (result, None)
        return Rolled(total, f"{expression} = `{total}`", crit)


def use_dice(env: Env, dice: ScriptDice) -> EncounterService:
    """Give the game (its pipeline and commands) an encounter service rolling ``dice``."""
    service = EncounterService(env.store, dice)
    env.game.encounters = service
    env.game.pipeline.encounters = service
    return service


class Table:
    """One turn's tool context with combat tools, as the pipeline builds it (turn 1)."""

    def __init__(self, env: Env, service: EncounterService, turn: int = 1) -> None:
        live = env.live()
        self.session = live.state
        self.fight = CombatTools(service, live.state, live.sheets, turn)
        self.ctx = ToolContext(live.state.campaign.id, turn, list(live.state.party), update=live.sheets.update,
                               combat=self.fight)

    async def call(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(await run_tool(self.ctx, name, json.dumps(args)))
        return result

    def hp(self, name: str) -> str:
        assert self.fight.encounter is not None
        found = self.fight.encounter.get(name)
        assert found is not None
        return f"{found.hp}/{found.max_hp}"


async def goblin_fight(env: Env, dice: ScriptDice, *players: Any, goblins: int = 1) -> Table:
    """A party (``players``) and ``goblins`` SRD goblins started through ``start_encounter``."""
    await party_of(env, *players)
    table = Table(env, use_dice(env, dice))
    out = await table.call("start_encounter", {"monsters": [{"name": "goblin", "count": goblins}]})
    assert out.get("started") is True, out
    return table


async def test_an_srd_goblin_takes_its_stat_block_and_the_party_joins_by_initiative(tmp_path: Path) -> None:
    dice = ScriptDice().script("2d6", 9).script("1d20+2", 15).script("1d20+0", 12, 18)
    async with make_env(tmp_path) as env:
        table = await goblin_fight(env, dice, ANN, BOB)
        assert dice.asked[:2] == ["2d6", "1d20+2"]  # HP from its hit dice, initiative from DEX 14 (+2)
        fight = table.fight.encounter
        assert fight is not None and fight.round == 1
        assert [(c.name, c.kind, c.initiative, c.hp, c.max_hp, c.ac) for c in fight.combatants] == [
            ("Borin", "pc", 18, 12, 12, 16), ("Goblin", "monster", 15, 9, 9, 15), ("Aria", "pc", 12, 10, 10, 14)]
        assert fight.active is not None and fight.active.name == "Borin"
        assert fight.combatants[1].monster == "goblin"
        assert env.session().encounter is None  # stored only at the turn's commit
        assert await table.fight.save() is True
        assert env.session().encounter == fight
        stored = await env.store.encounters.get(env.session().campaign.id)
        assert stored is not None and [c["name"] for c in stored["combatants"]] == ["Borin", "Goblin", "Aria"]


async def test_srd_hit_points_are_rolled_within_the_hit_dice(tmp_path: Path) -> None:
    async with make_env(tmp_path) as env:
        service = EncounterService(env.store, combat.roll)
        fight, goblins = service.add_monsters(combat.Encounter(), "Goblin", 12)
        assert sorted(g.name for g in goblins) == sorted(f"Goblin {n}" for n in range(1, 13))
        assert [g.name for g in goblins] == [c.name for c in fight.combatants]  # in initiative order
        assert all(2 <= g.hp == g.max_hp <= 12 and g.ac == 15 for g in goblins)


async def test_a_server_can_choose_the_listed_average_hit_points(tmp_path: Path) -> None:
    dice = ScriptDice().script("1d20+2", 15).script("1d20+0", 12)
    async with make_env(tmp_path) as env:
        await env.game.set_config(WHERE.guild_id, GM, "average_monster_hp", "on")
        table = await goblin_fight(env, dice, ANN)
        assert "2d6" not in dice.asked  # no hit dice rolled
        assert table.hp("Goblin") == "7/7"  # the SRD goblin's listed average


async def test_the_goblin_scimitar_is_plus_4_and_1d6_plus_2_against_ac(tmp_path: Path) -> None:
    dice = ScriptDice().script("2d6", 7).script("1d20+2", 20).script("1d20+0", 3)
    async with make_env(tmp_path) as env:
        table = await goblin_fight(env, dice, ANN)
        dice.script("1d20+4", 14).script("1d6+2", 6)  # 14 hits Aria's AC 14 exactly
        out = await table.call("attack", {"attacker": "Goblin", "target": "Aria", "action": "scimitar"})
        assert (out["action"], out["to_hit"], out["target_ac"], out["hit"], out["damage"], out["damage_type"]) == (
            "Scimitar", 14, 14, True, 6, "slashing")
        assert out["target_now"]["hp"] == "4/10" and out["turn_of"] == "Goblin" and out["round"] == 1
        aria = env.session().party[0]
        assert aria.hp == 4 and (await env.store.characters.party(aria.campaign_id))[0].hp == 4  # the sheet
        assert [(r.expression, r.total, r.character_name, r.reason) for r in table.ctx.rolls][-2:] == [
            ("1d20+4", 14, "Goblin", "Scimitar attack on Aria (AC 14)"),
            ("1d6+2", 6, "Goblin", "Scimitar damage to Aria")]
        assert table.ctx.changes == ["Aria: HP 10 → 4/10"]
        dice.script("1d20+4", 13)  # one short of the AC: a miss, no damage rolled
        asked = len(dice.asked)
        miss = await table.call("attack", {"attacker": "Goblin", "target": "Aria"})  # its first attack
        assert (miss["action"], miss["hit"], "damage" in miss) == ("Scimitar", False, False)
        assert dice.asked[asked:] == ["1d20+4"] and table.hp("Aria") == "4/10"
        dice.script("1d20+4", (24, "crit"), ).script("2d6+2", 9)  # a natural 20 doubles the dice
        crit = await table.call("attack", {"attacker": "Goblin", "target": "Aria"})
        assert (crit["hit"], crit["critical"], crit["damage"]) == (True, True, 9)
        assert crit["target_now"]["hp"] == "0/10" and crit["target_now"]["state"] == "unconscious"
        assert crit["events"] == ["Aria falls unconscious"]
        dice.script("1d20+4", (5, "fail"))
        fumble = await table.call("attack", {"attacker": "Goblin", "target": "Aria"})
        assert (fumble["hit"], fumble["natural_1"]) == (False, True)


async def test_a_natural_1_misses_whatever_the_total(tmp_path: Path) -> None:
    dice = ScriptDice().script("2d6", 7).script("1d20+2", 20).script("1d20+0", 3)
    async with make_env(tmp_path) as env:
        table = await goblin_fight(env, dice, ANN)
        dice.script("1d20+4", (30, "fail"))
        out = await table.call("attack", {"attacker": "Goblin", "target": "Aria"})
        assert out["hit"] is False and table.hp("Aria") == "10/10"


async def test_a_player_character_attacks_with_bounded_numbers_and_kills_a_goblin(tmp_path: Path) -> None:
    dice = ScriptDice().script("2d6", 5).script("1d20+2", 2).script("1d20+0", 17)
    async with make_env(tmp_path) as env:
        table = await goblin_fight(env, dice, ANN)
        missing = await table.call("attack", {"attacker": "Aria", "target": "Goblin", "action": "Shortsword"})
        assert "give attack_bonus and damage" in missing["error"]
        too_big = await table.call("attack", {"attacker": "Aria", "target": "Goblin", "attack_bonus": 99,
                                              "damage": "1d6+3"})
        assert too_big["error"] == "attack_bonus must be from -20 to 20"
        junk = await table.call("attack", {"attacker": "Aria", "target": "Goblin", "attack_bonus": 5,
                                           "damage": "drop table"})
        assert "is not damage dice" in junk["error"]
        dice.script("adv 1d20+5", 16).script("1d6+3", 6)
        out = await table.call("attack", {"attacker": "Aria", "target": "Goblin", "action": "Shortsword",
                                          "attack_bonus": 5, "damage": "1d6+3", "advantage": "advantage"})
        assert (out["hit"], out["damage"], out["target_now"]["hp"], out["target_now"]["state"]) == (
            True, 6, "0/5", "dead")
        assert out["events"] == ["Goblin is down"]
        assert out["hint"] == "no opponent is standing: call end_encounter when the fight is over"
        again = await table.call("attack", {"attacker": "Aria", "target": "Goblin", "attack_bonus": 5,
                                            "damage": "1d6"})
        assert again["error"] == "Goblin is already dead."
        dead_attacker = await table.call("attack", {"attacker": "Goblin", "target": "Aria"})
        assert dead_attacker["error"] == "Goblin is dead and cannot attack."


async def test_an_unknown_monster_needs_bounded_homebrew_numbers(tmp_path: Path) -> None:
    dice = ScriptDice().script("1d20+0", 11).script("1d20+1", 9)
    async with make_env(tmp_path) as env:
        await party_of(env, ANN)
        table = Table(env, use_dice(env, dice))
        refused = await table.call("start_encounter", {"monsters": [{"name": "Mire Wraith"}]})
        assert refused["error"] == "“Mire Wraith” is not in the SRD: give its hit points (1-1000)."
        no_ac = await table.call("start_encounter", {"monsters": [{"name": "Mire Wraith", "hp": 22}]})
        assert no_ac["error"] == "“Mire Wraith” is not in the SRD: give its armor class (1-30)."
        huge = await table.call("start_encounter", {"monsters": [{"name": "Mire Wraith", "hp": 5000, "ac": 13}]})
        assert huge["error"] == "hp must be from 1 to 1000"
        assert table.fight.encounter is None and dice.asked == []
        out = await table.call("start_encounter", {"monsters": [{"name": "Mire Wraith", "hp": 22, "ac": 13,
                                                                 "init_mod": 1}]})
        assert [(c["name"], c["hp"], c["ac"], c["initiative"]) for c in out["order"]] == [
            ("Aria", "10/10", 14, 11), ("Mire Wraith", "22/22", 13, 9)]
        claws = await table.call("attack", {"attacker": "Mire Wraith", "target": "Aria"})
        assert "has no SRD stat block" in claws["error"]
        dice.script("1d20+3", 12).script("2d4+1", 4)
        miss = await table.call("attack", {"attacker": "mire", "target": "Aria", "action": "Chill Touch",
                                           "attack_bonus": 3, "damage": "2d4+1"})
        assert (miss["action"], miss["to_hit"], miss["hit"], "damage" in miss) == ("Chill Touch", 12, False, False)
        assert table.hp("Aria") == "10/10" and "2d4+1" not in dice.asked  # 12 misses AC 14: no damage rolled
        dice.script("1d20+3", 17).script("2d4+1", 4)
        hit = await table.call("attack", {"attacker": "Mire Wraith", "target": "Aria", "action": "Chill Touch",
                                          "attack_bonus": 3, "damage": "2d4+1"})
        assert (hit["hit"], hit["damage"], hit["target_now"]["hp"]) == (True, 4, "6/10")


async def test_damage_healing_and_clamping(tmp_path: Path) -> None:
    dice = ScriptDice().script("2d6", 8).script("1d20+2", 20).script("1d20+0", 5, 4)
    async with make_env(tmp_path) as env:
        table = await goblin_fight(env, dice, ANN, BOB)
        assert (await table.call("damage", {"target": "Goblin"}))["error"] == (
            "give either amount (a positive number) or dice (like 2d6+1)")
        assert (await table.call("damage", {"target": "Goblin", "amount": -3}))["error"] == (
            "amount must be from 1 to 10000")
        dice.script("8d6", 27)
        fireball = await table.call("damage", {"target": "Goblin", "dice": "8d6", "half": True, "reason": "Fireball"})
        assert (fireball["damage"], fireball["halved_from"], fireball["target_now"]["hp"]) == (13, 27, "0/8")
        assert table.ctx.rolls[-1].reason == "Fireball (damage)" and table.ctx.rolls[-1].total == 27
        assert (await table.call("heal", {"target": "Goblin", "amount": 5}))["error"] == (
            "Goblin is dead; healing does not bring back the dead.")
        hurt = await table.call("damage", {"target": "Borin", "amount": 5})
        assert hurt["target_now"]["hp"] == "7/12" and env.session().party[1].hp == 7
        healed = await table.call("heal", {"target": "Borin", "amount": 20})
        assert (healed["healed"], healed["target_now"]["hp"], healed["note"]) == (
            5, "12/12", "hit points stop at the maximum (12)")
        assert table.ctx.changes == ["Borin: HP 12 → 7/12", "Borin: HP 7 → 12/12"]
        down = await table.call("damage", {"target": "Aria", "amount": 10})
        assert down["events"] == ["Aria falls unconscious"] and down["target_now"]["death_saves"] == {
            "successes": 0, "failures": 0, "stable": False}
        hit_at_0 = await table.call("damage", {"target": "Aria", "amount": 2, "critical": True})
        assert hit_at_0["target_now"]["death_saves"]["failures"] == 2  # a critical hit at 0: two failures
        assert hit_at_0["target_now"]["hp"] == "0/10"
        dice.script("1d8+3", 6)
        up = await table.call("heal", {"target": "Aria", "dice": "1d8+3", "reason": "Cure Wounds"})
        assert (up["healed"], up["target_now"]["hp"], up["events"]) == (6, "6/10", ["Aria regains consciousness"])
        assert "death_saves" not in up["target_now"]


async def test_massive_damage_kills_a_character_outright(tmp_path: Path) -> None:
    dice = ScriptDice().script("2d6", 8).script("1d20+2", 20).script("1d20+0", 5)
    async with make_env(tmp_path) as env:
        table = await goblin_fight(env, dice, ANN)
        out = await table.call("damage", {"target": "Aria", "amount": 20})  # 10 left over >= max 10
        assert out["events"] == ["Aria is killed outright (massive damage)"] and out["target_now"]["state"] == "dead"


async def test_an_unconscious_character_rolls_death_saves_on_its_turn(tmp_path: Path) -> None:
    dice = ScriptDice().script("2d6", 8).script("1d20+2", 20).script("1d20+0", 12, 5)
    async with make_env(tmp_path) as env:
        table = await goblin_fight(env, dice, ANN, BOB)  # order: Goblin 20, Aria 12, Borin 5
        await table.call("damage", {"target": "Aria", "amount": 10})
        dice.script("1d20", 12)
        out = await table.call("end_turn", {"combatant": "Goblin"})
        assert out["events"] == ["Aria succeeds on a death save (12): 1 success(es)"]
        assert (out["ended"], out["turn_of"], out["acting"]["name"]) == ("Goblin", "Borin", "Borin")
        assert [(r.expression, r.total, r.character_name, r.reason) for r in table.ctx.rolls][-1] == (
            "1d20", 12, "Aria", "death saving throw")
        await table.call("end_turn", {})  # Borin -> Goblin, round 2
        dice.script("1d20", (1, "fail"))
        out = await table.call("end_turn", {})
        assert out["events"] == ["Aria fails a death save (1): 2 failure(s)"] and out["turn_of"] == "Borin"
        await table.call("end_turn", {})
        dice.script("1d20", (20, "crit"))
        out = await table.call("end_turn", {})  # a natural 20: 1 hit point, and it is Aria's turn
        assert out["events"] == ["Aria rolls a natural 20 on a death save and regains 1 hit point!"]
        assert (out["turn_of"], out["acting"]["hp"], out["round"]) == ("Aria", "1/10", 3)
        assert env.session().party[0].hp == 1
        await table.call("damage", {"target": "Aria", "amount": 1})
        await table.call("end_turn", {})  # Aria -> Borin
        await table.call("end_turn", {})  # Borin -> Goblin
        dice.script("1d20", 4, 3)
        out = await table.call("end_turn", {})
        assert out["events"] == ["Aria fails a death save (4): 1 failure(s)"]
        await table.call("end_turn", {})  # Borin -> Goblin
        out = await table.call("end_turn", {})
        assert out["events"] == ["Aria fails a death save (3): 2 failure(s)"]
        dice.script("1d20", 2)
        await table.call("end_turn", {})
        out = await table.call("end_turn", {})
        assert out["events"] == ["Aria fails a death save (2): dead"] and out["turn_of"] == "Borin"
        for _ in range(2):
            out = await table.call("end_turn", {})
        assert out["turn_of"] == "Borin" and "events" not in out  # the dead are skipped: no more saves


async def test_turns_skip_the_dead_and_end_turn_checks_whose_turn_it_is(tmp_path: Path) -> None:
    dice = ScriptDice().script("2d6", 4, 4, 4).script("1d20+2", 19, 18, 17).script("1d20+0", 2)
    async with make_env(tmp_path) as env:
        table = await goblin_fight(env, dice, ANN, goblins=3)
        assert table.fight.encounter is not None
        assert [c.name for c in table.fight.encounter.combatants] == ["Goblin 1", "Goblin 2", "Goblin 3", "Aria"]
        await table.call("damage", {"target": "Goblin 2", "amount": 4})
        wrong = await table.call("end_turn", {"combatant": "Aria"})
        assert wrong["error"] == "It is Goblin 1's turn, not Aria's; end Goblin 1's turn first."
        out = await table.call("end_turn", {"combatant": "Goblin 1"})
        assert (out["turn_of"], out["round"], out["next_step"]) == (
            "Goblin 3", 1, "play Goblin 3's turn (attack), then end_turn")
        out = await table.call("end_turn", {})
        assert (out["turn_of"], out["next_step"]) == ("Aria", "Aria is a player character: ask their player what "
                                                                "they do")
        out = await table.call("end_turn", {})
        assert (out["turn_of"], out["round"]) == ("Goblin 1", 2)
        removed = await table.call("remove_combatant", {"combatant": "Goblin 1"})
        assert (removed["removed"], removed["turn_of"]) == ("Goblin 1", "Goblin 3")
        dice.script("2d6", 6).script("1d20+2", 1)
        added = await table.call("add_combatant", {"name": "Goblin"})
        assert [c["name"] for c in added["added"]] == ["Goblin"] and added["turn_of"] == "Goblin 3"
        assert [c["name"] for c in added["order"]] == ["Goblin 2", "Goblin 3", "Aria", "Goblin"]
        ended = await table.call("end_encounter", {})
        assert ended["ended"] is True and table.fight.encounter is None
        assert (await table.call("end_turn", {}))["error"] == "No fight is running: call start_encounter first."


async def test_conditions_and_errors_the_model_can_correct(tmp_path: Path) -> None:
    dice = ScriptDice().script("2d6", 8).script("1d20+2", 20).script("1d20+0", 12)
    async with make_env(tmp_path) as env:
        await party_of(env, ANN)
        table = Table(env, use_dice(env, dice))
        assert (await table.call("attack", {"attacker": "Goblin", "target": "Aria"}))["error"] == (
            "No fight is running: call start_encounter first.")
        assert (await table.call("start_encounter", {}))["error"].startswith("monsters must be a list")
        await table.call("start_encounter", {"monsters": [{"name": "Goblin"}]})
        again = await table.call("start_encounter", {"monsters": [{"name": "Goblin"}]})
        assert again["error"] == "A fight is already running: use add_combatant, or end_encounter first."
        nobody = await table.call("damage", {"target": "Zed", "amount": 3})
        assert nobody["error"] == "No combatant called “Zed”; in the fight: Goblin, Aria."
        bite = await table.call("attack", {"attacker": "Goblin", "target": "Aria", "action": "Bite"})
        assert bite["error"] == "Goblin has no action called “Bite”; its actions: Scimitar, Shortbow."
        prone = await table.call("set_condition", {"target": "Aria", "condition": "prone"})
        assert prone["target_now"]["conditions"] == ["prone"] and env.session().party[0].conditions == ("prone",)
        assert (await table.call("set_condition", {"target": "Aria", "condition": "Prone"}))["unchanged"] is True
        assert (await table.call("clear_condition", {"target": "Goblin", "condition": "prone"}))["error"] == (
            "Goblin is not prone; its conditions: none.")
        cleared = await table.call("clear_condition", {"target": "Aria", "condition": "PRONE"})
        assert "conditions" not in cleared["target_now"] and env.session().party[0].conditions == ()
        assert table.ctx.changes == ["Aria: +prone", "Aria: no longer prone"]
