"""A fight played through the game core end to end (real SQLite, scripted model, manual clock, fixed
dice): turns follow initiative (the window closes as soon as the character whose turn it is acts),
the encounter goes into the prompt, a failed turn keeps no encounter change, /undo and /retry put the
fight back, and a restart in the middle of a fight carries on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.game.combat import Encounter
from bot.llm.errors import ServiceUnavailable
from tests.support.doubles import ScriptedModel, reply
from tests.unit.test_game_combat_tools import ScriptDice, use_dice
from tests.unit.test_game_sessions import ANN, BOB, GM, WHERE, Env, make_env, party_of

START = ("start_encounter", {"monsters": [{"name": "Goblin"}]})


def opening_dice() -> ScriptDice:
    """The goblin: 7 HP (2d6), initiative 8; Aria 17, Borin 3. Order: Aria, Goblin, Borin."""
    return ScriptDice().script("2d6", 7).script("1d20+2", 8).script("1d20+0", 17, 3)


def fight(env: Env) -> Encounter:
    encounter = env.session().encounter
    assert encounter is not None
    return encounter


def numbers(encounter: Encounter | None) -> list[tuple[str, int, bool]]:
    assert encounter is not None
    return [(c.name, c.hp, c.dead) for c in encounter.combatants]


async def stored(env: Env) -> Encounter | None:
    state = await env.store.encounters.get(env.session().campaign.id)
    return Encounter.from_dict(state) if state is not None else None


def tool_results(env: Env) -> list[dict[str, Any]]:
    """Every tool result the model read, in order (each request repeats the earlier ones)."""
    seen: dict[str, dict[str, Any]] = {}
    for request in env.model.turn_requests:
        for m in request.messages:
            if m.get("role") == "tool":
                seen.setdefault(m["tool_call_id"], json.loads(m["content"]))
    return list(seen.values())


async def open_fight(env: Env, dice: ScriptDice) -> None:
    """Turn 1: Aria and Borin meet a goblin; the DM starts the fight (Aria's turn, round 1)."""
    use_dice(env, dice)
    await party_of(env, ANN, BOB)
    env.model.push(reply("", START), reply("A goblin leaps out! Aria, you are quickest."))
    await env.act(ANN, "I draw my blade")
    await env.act(BOB, "I ready my axe")  # everyone acted: the window closes early
    await env.settle()
    assert len(env.narrator.turns) == 1
    assert numbers(env.session().encounter) == [("Aria", 10, False), ("Goblin", 7, False), ("Borin", 12, False)]
    assert fight(env).active is not None and fight(env).active.name == "Aria"  # type: ignore[union-attr]


async def test_the_window_closes_as_soon_as_the_combatant_whose_turn_it_is_acts(tmp_path: Path) -> None:
    dice = opening_dice()
    async with make_env(tmp_path) as env:
        await open_fight(env, dice)
        assert env.session().spotlight() == ANN.user_id
        dice.script("1d20+5", 3).script("1d20+4", 19).script("1d6+2", 5)
        env.model.push(
            reply("", ("attack", {"attacker": "Aria", "target": "Goblin", "attack_bonus": 5, "damage": "1d6+3"}),
                  ("end_turn", {"combatant": "Aria"})),
            reply("", ("attack", {"attacker": "Goblin", "target": "Borin"}), ("end_turn", {"combatant": "Goblin"})),
            reply("Aria's blade glances off; the goblin slashes Borin. Borin, your move."))
        opened = env.clock.now()
        await env.act(BOB, "I shout a warning")  # not his turn: the window stays open
        await env.advance(1.0)
        assert len(env.narrator.turns) == 1
        await env.act(ANN, "I stab the goblin")  # Aria's turn: her action closes the window at once
        await env.settle()
        assert env.clock.now() == opened + 1.0 < opened + env.settings.turn_window_seconds
        assert len(env.narrator.turns) == 2 and len(env.narrator.turns[1].answered_message_ids) == 2
        prompt = env.model.turn_requests[-3].messages[-1]["content"]
        assert "[Table]: A fight is running; the game keeps its numbers. Round 1" in prompt
        assert ">> Aria [c2] (player character), initiative 17: HP 10/10, AC 14" in prompt
        assert "- Goblin [c1] (monster), initiative 8: HP 7/7, AC 15" in prompt
        assert ("This turn resolves Aria's action: resolve it with the tools (attack, damage, heal...), call end_turn, "
                "then play the monsters whose turns follow (Goblin) with the attack tool, calling end_turn after each, "
                "and stop when it is Borin's turn: ask them what they do.") in prompt
        assert prompt.index("The party now") < prompt.index("A fight is running") < prompt.index("I stab the goblin")
        assert env.model.turn_requests[-3].messages[0] == env.model.turn_requests[0].messages[0]  # cached prefix
        attack, _end, goblin, end = tool_results(env)[1:]
        assert (attack["hit"], goblin["hit"], goblin["damage"], goblin["target_now"]["hp"]) == (False, True, 5, "7/12")
        assert end["turn_of"] == "Borin"
        assert numbers(env.session().encounter) == [("Aria", 10, False), ("Goblin", 7, False), ("Borin", 7, False)]
        assert numbers(await stored(env)) == numbers(env.session().encounter)
        assert env.session().party[1].hp == 7
        shown = env.narrator.turns[1]
        assert [(r.expression, r.total) for r in shown.rolls] == [("1d20+5", 3), ("1d20+4", 19), ("1d6+2", 5)]
        assert env.session().spotlight() == BOB.user_id


async def test_on_a_monsters_turn_the_window_behaves_as_outside_combat(tmp_path: Path) -> None:
    dice = ScriptDice().script("2d6", 7).script("1d20+2", 20).script("1d20+0", 17, 3)
    async with make_env(tmp_path) as env:
        use_dice(env, dice)
        await party_of(env, ANN, BOB)
        env.model.push(reply("", START), reply("A goblin is upon you!"))
        await env.act(ANN, "I look around")
        await env.advance(6.0)
        assert fight(env).active is not None and fight(env).active.name == "Goblin"  # type: ignore[union-attr]
        assert env.session().spotlight() is None
        await env.act(ANN, "I duck")
        await env.advance(5.9)
        assert len(env.narrator.turns) == 1  # one player acted on a monster's turn: the window runs its course
        await env.advance(0.1)
        assert len(env.narrator.turns) == 2
        assert "It is Goblin's turn: play it with the attack tool and call end_turn, and stop when it is Aria's " \
               "turn: ask them what they do." in env.model.turn_requests[-1].messages[-1]["content"]


async def test_undo_of_a_turn_that_killed_a_monster_brings_it_back(tmp_path: Path) -> None:
    dice = opening_dice()
    async with make_env(tmp_path) as env:
        await open_fight(env, dice)
        before = fight(env)
        dice.script("1d20+5", 18).script("1d6+3", 7)
        env.model.push(reply("", ("attack", {"attacker": "Aria", "target": "Goblin", "attack_bonus": 5,
                                             "damage": "1d6+3"}), ("end_turn", {})),
                       reply("The goblin falls."))
        await env.act(ANN, "I stab the goblin")
        await env.settle()
        assert numbers(env.session().encounter) == [("Aria", 10, False), ("Goblin", 0, True), ("Borin", 12, False)]
        assert fight(env).active is not None and fight(env).active.name == "Borin"  # type: ignore[union-attr]
        undone = await env.game.undo(WHERE, GM)
        assert undone.turn == 2
        assert env.session().encounter == before  # the goblin stands again, and it is Aria's turn
        assert await stored(env) == before
        assert env.session().spotlight() == ANN.user_id
        undone = await env.game.undo(WHERE, GM)  # the turn that started the fight
        assert env.session().encounter is None and await stored(env) is None


async def test_retry_replays_the_turn_from_the_fight_as_it_was(tmp_path: Path) -> None:
    dice = opening_dice()
    async with make_env(tmp_path) as env:
        await open_fight(env, dice)
        before = fight(env)
        kill = ("attack", {"attacker": "Aria", "target": "Goblin", "attack_bonus": 5, "damage": "1d6+3"})
        dice.script("1d20+5", 18).script("1d6+3", 7)
        env.model.push(reply("", kill), reply("The goblin falls."))
        await env.act(ANN, "I stab the goblin")
        await env.settle()
        killed = fight(env)
        assert numbers(killed)[1] == ("Goblin", 0, True)
        env.model.push(ServiceUnavailable("down", status=503))
        try:
            await env.game.retry(WHERE, GM)
        except ServiceUnavailable:
            pass
        assert env.session().encounter == killed and await stored(env) == killed  # a failed retry keeps the old turn
        dice.script("1d20+5", 4)
        env.model.push(reply("", kill), reply("Aria misses."))
        await env.game.retry(WHERE, GM)
        assert numbers(env.session().encounter)[1] == ("Goblin", 7, False)
        prompt = env.model.turn_requests[-2].messages[-1]["content"]
        assert "- Goblin [c1] (monster), initiative 8: HP 7/7, AC 15" in prompt  # the fight before the turn
        await env.game.undo(WHERE, GM)
        assert env.session().encounter == before


async def test_a_failed_turn_keeps_no_encounter_change(tmp_path: Path) -> None:
    dice = opening_dice()
    async with make_env(tmp_path) as env:
        await open_fight(env, dice)
        before = fight(env)
        dice.script("1d20+4", 19).script("1d6+2", 6)
        env.model.push(reply("", ("attack", {"attacker": "Goblin", "target": "Aria"}), ("end_turn", {})),
                       ServiceUnavailable("down", status=503))
        await env.act(ANN, "I parry")
        await env.settle()
        assert len(env.narrator.notices) == 1 and len(env.narrator.turns) == 1
        assert tool_results(env)[-2]["target_now"]["hp"] == "4/10"  # the tools did run...
        assert env.session().encounter == before and await stored(env) == before  # ...and nothing stayed
        assert env.session().party[0].hp == 10
        assert (await env.store.characters.party(env.session().campaign.id))[0].hp == 10


async def test_a_restart_in_the_middle_of_a_fight_carries_on(tmp_path: Path) -> None:
    dice = opening_dice()
    async with make_env(tmp_path) as env:
        await open_fight(env, dice)
        before = fight(env)
    model = ScriptedModel()
    async with make_env(tmp_path, model) as env:  # the same database, a new process
        after = ScriptDice().script("1d20+5", 18).script("1d6+3", 7)
        use_dice(env, after)
        model.push(reply("", ("attack", {"attacker": "Aria", "target": "Goblin", "attack_bonus": 5,
                                         "damage": "1d6+3"}), ("end_turn", {})),
                   reply("The goblin drops."))
        await env.act(BOB, "I circle left", message_id=2001)  # (ids of the first run are taken)
        assert env.session().encounter == before and env.session().spotlight() == ANN.user_id
        await env.act(ANN, "I stab the goblin", message_id=2002)  # Aria's turn, as before the restart
        await env.settle()
        assert len(env.narrator.turns) == 1 and env.narrator.turns[0].turn == 2
        assert ">> Aria [c2]" in model.turn_requests[0].messages[-1]["content"]
        assert numbers(env.session().encounter) == [("Aria", 10, False), ("Goblin", 0, True), ("Borin", 12, False)]
        assert numbers(await stored(env)) == numbers(env.session().encounter)
        await env.game.undo(WHERE, GM)  # the fight's state before turn 2 was stored: undo works after a restart
        assert env.session().encounter == before


async def test_the_tracker_follows_turns_that_change_the_fight_and_only_those(tmp_path: Path) -> None:
    async with make_env(tmp_path, ScriptedModel(default=lambda m: reply("The goblin snarls."))) as env:
        await open_fight(env, opening_dice())
        assert len(env.narrator.trackers) == 1  # the turn that started the fight shows the tracker
        channel, campaign, view = env.narrator.trackers[0]
        assert (channel, campaign, view.round, view.active, view.ended) == (WHERE.channel_id, 1, 1, "Aria", False)
        assert len(view.lines) == 3
        await env.act(ANN, "I look around carefully")  # the DM changes nothing in the fight
        await env.settle()
        assert len(env.narrator.turns) == 2 and len(env.narrator.trackers) == 1
        env.model.push(reply("", ("end_encounter", {})), reply("The goblin flees into the dark."))
        await env.act(ANN, "I shout at the goblin")
        await env.settle()
        assert len(env.narrator.trackers) == 2 and env.session().encounter is None
        assert env.narrator.trackers[-1][2].ended is True
