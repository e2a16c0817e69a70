"""The table's side of a fight, in-process: ``/combat`` permissions, a player's own initiative, the
tracker's exact text (monsters described by default, numbered with ``show_monster_hp``), the tracker
shown after every change, and terminal play printing the same text. Real SQLite in a temp dir, a
scripted model, a manual clock, dice fixed by an injected roller."""

from __future__ import annotations

import contextlib
import io
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.errors import UserInputError
from bot.game.api import Actor, ChannelRef, CharacterSheetInput
from bot.game.combat import Combatant, Encounter, Rolled
from bot.game.combat_commands import CombatCommands
from bot.game.core import Game
from bot.game.errors import NotAllowed, NotInParty
from bot.game.tracker import refresh_tracker, render
from bot.game.turns import ManualClock
from bot.store import Database, Store
from bot.terminal import play
from tests.support.doubles import RecordingNarrator, ScriptedModel

WHERE = ChannelRef(guild_id=7, channel_id=70)
GM = Actor(1, "gm")  # the campaign's creator, not a server admin
ADMIN = Actor(9, "mod", is_admin=True)
ANN, BOB, DEE = Actor(101, "ann"), Actor(102, "bob"), Actor(104, "dee")


class FixedDice:
    """Answers each expression from its own queue of totals (a natural 20/1 on ``1d20`` marked)."""

    def __init__(self, **totals: list[int]) -> None:
        self.queues: dict[str, deque[int]] = defaultdict(deque)
        for key, values in totals.items():
            self.queues[key.replace("_", "+")] = deque(values)
        self.asked: list[str] = []

    def __call__(self, expression: str) -> Rolled:
        self.asked.append(expression)
        total = self.queues[expression].popleft()
        crit = ("crit" if total == 20 else "fail" if total == 1 else None) if expression == "1d20" else None
        return Rolled(total, f"{expression} = `{total}`", crit)


def dice(**totals: list[int]) -> FixedDice:
    """``dice(**{"2d6": [7], "1d20+2": [14]})`` spelled with valid keywords: ``d2d6``, ``d1d20_2``."""
    return FixedDice(**{k.removeprefix("d"): v for k, v in totals.items()})


@contextlib.asynccontextmanager
async def fight(tmp_path: Path, roller: FixedDice) -> AsyncIterator[tuple[Game, RecordingNarrator, Store]]:
    settings = load_settings(None, data_dir=str(tmp_path), player_cooldown_seconds=0, turn_window_seconds=6)
    narrator = RecordingNarrator()
    async with Database.open(settings.database_path, migrate=True) as db:
        store = Store(db)
        game = Game(store=store, llm=ScriptedModel(), settings=settings, narrator=narrator,
                    clock=ManualClock(1000.0), count_tokens=lambda text, model="": len(text.split()))
        game.combat_commands = CombatCommands(store=store, registry=game.registry, narrator=narrator, dice=roller)
        await game.start()
        try:
            await game.start_campaign(WHERE, GM, title="The Sunken Crypt")
            await game.join(WHERE, ANN, CharacterSheetInput("Aria", "Rogue", "Elf"))  # HP 10/10, AC 14
            await game.join(WHERE, BOB, CharacterSheetInput("Borin", "Fighter", "Dwarf"))  # HP 12/12, AC 16
            yield game, narrator, store
        finally:
            await game.close(grace_s=0)


def goblins_then_aria() -> FixedDice:
    # Goblin 1: HP 2d6 = 7, initiative 1d20+2 = 14, roll-off 10; Goblin 2: 3, 9, 10; Aria's roll-off 10
    return dice(d2d6=[7, 3], d1d20_2=[14, 9], d1d20=[10, 10, 10, 10])


async def test_a_small_fight_tracker_text_is_exact(tmp_path: Path) -> None:
    async with fight(tmp_path, goblins_then_aria()) as (game, narrator, store):
        added = await game.combat_add(WHERE, GM, "goblin", 2)
        assert added.text == "Joining the fight, with their initiative: Goblin 1 (14), Goblin 2 (9)."
        joined = await game.combat_init(WHERE, ANN, 12)
        assert joined.text == "Aria joins the fight with initiative 12."
        moved = await game.combat_next(WHERE, GM)
        assert moved.text == "Round 1: Goblin 1's turn."
        assert moved.view.text == ("Combat: round 1, Goblin 1's turn\n"
                                   "> 14  Goblin 1 — unhurt\n"
                                   "  12  Aria — HP 10/10\n"
                                   "   9  Goblin 2 — unhurt")
        # every change showed the tracker in the channel; the first one before round 1
        assert [(c, v.title) for c, _, v in narrator.trackers] == [
            (70, "Combat: not started (the first turn begins round 1)"),
            (70, "Combat: not started (the first turn begins round 1)"),
            (70, "Combat: round 1, Goblin 1's turn")]
        assert (await game.combat_show(WHERE)).text == moved.view.text

        # a server that shows monsters' numbers
        config = await game.set_config(7, ADMIN, "show_monster_hp", "on")
        assert config.show_monster_hp is True and (await game.get_config(7)).show_monster_hp is True
        assert (await game.combat_show(WHERE)).lines == ("> 14  Goblin 1 — HP 7/7", "  12  Aria — HP 10/10",
                                                         "   9  Goblin 2 — HP 3/3")
        # the pipeline's hook shows the same view after a turn that changed the fight
        session = game.registry.sessions[70].state
        await refresh_tracker(narrator, store, session)
        assert narrator.trackers[-1][2].lines[0] == "> 14  Goblin 1 — HP 7/7"

        ended = await game.combat_end(WHERE, GM)
        assert ended.text == "The fight is over after 1 round."
        assert ended.view.text == ("Combat: the fight is over\n"
                                   "  14  Goblin 1 — HP 7/7\n  12  Aria — HP 10/10\n   9  Goblin 2 — HP 3/3")
        assert await store.encounters.get(session.campaign.id) is None and session.encounter is None
        with pytest.raises(UserInputError, match="There is no fight running"):
            await game.combat_show(WHERE)


def test_monsters_are_described_unless_numbers_are_shown() -> None:
    enc = Encounter(combatants=(
        Combatant("c1", "Aria", "pc", 18, hp=0, max_hp=10, death_successes=1, death_failures=2, character_id=1),
        Combatant("c2", "Ogre", "monster", 15, hp=59, max_hp=59),
        Combatant("c3", "Goblin 1", "monster", 12, hp=5, max_hp=7, conditions=("prone",)),
        Combatant("c4", "Goblin 2", "monster", 12, hp=3, max_hp=7),
        Combatant("c5", "Goblin 3", "monster", 8, hp=0, max_hp=7, dead=True),
        Combatant("c6", "Borin", "pc", 5, hp=12, max_hp=12, stable=False, character_id=2)), round=3, current=1)
    assert render(enc).text == ("Combat: round 3, Ogre's turn\n"
                                "  18  Aria — HP 0/10, unconscious, death saves 1 success, 2 failures\n"
                                "> 15  Ogre — unhurt\n"
                                "  12  Goblin 1 — hurt, prone\n"
                                "  12  Goblin 2 — bloodied\n"
                                "   8  Goblin 3 — dead\n"
                                "   5  Borin — HP 12/12")
    assert render(enc, show_monster_hp=True).lines[1:5] == ("> 15  Ogre — HP 59/59", "  12  Goblin 1 — HP 5/7, prone",
                                                            "  12  Goblin 2 — HP 3/7", "   8  Goblin 3 — HP 0/7, down")
    assert render(Encounter()).text == "Combat: not started (the first turn begins round 1)\n(nobody in the fight yet)"
    assert render(None).text == "Combat: the fight is over"


async def test_a_player_who_is_not_the_creator_cannot_fix_or_end_the_fight(tmp_path: Path) -> None:
    async with fight(tmp_path, goblins_then_aria()) as (game, narrator, store):
        with pytest.raises(NotAllowed) as refused:
            await game.combat_add(WHERE, BOB, "goblin", 2)
        assert refused.value.player_message == "Only the campaign's creator or a server admin can add combatants " \
                                               "to the fight."
        await game.combat_add(WHERE, GM, "goblin", 2)
        for attempt, what in ((game.combat_end(WHERE, BOB), "end the fight"),
                              (game.combat_next(WHERE, BOB), "run the fight's turns"),
                              (game.combat_remove(WHERE, BOB, "Goblin 1"), "remove combatants from the fight")):
            with pytest.raises(NotAllowed) as refused:
                await attempt
            assert refused.value.player_message == f"Only the campaign's creator or a server admin can {what}."
        assert len(narrator.trackers) == 1 and len(game.registry.sessions[70].state.encounter.combatants) == 2
        removed = await game.combat_remove(WHERE, ADMIN, "goblin 2")  # an admin may, by any case of the name
        assert removed.text == "Goblin 2 leaves the fight."
        assert (await game.combat_end(WHERE, ADMIN)).text == "The fight is over after 0 rounds."


async def test_a_player_rolls_their_own_initiative_or_changes_it(tmp_path: Path) -> None:
    roller = dice(d2d6=[7], d1d20_2=[14], d1d20=[10, 10, 10], d1d20_0=[11])
    async with fight(tmp_path, roller) as (game, narrator, store):
        with pytest.raises(UserInputError, match="There is no fight running"):
            await game.combat_init(WHERE, ANN)
        await game.combat_add(WHERE, GM, "Goblin")
        with pytest.raises(NotInParty):
            await game.combat_init(WHERE, DEE, 12)
        with pytest.raises(UserInputError, match=r"An initiative roll is from -10 to 50\."):
            await game.combat_init(WHERE, ANN, 51)
        assert (await game.combat_init(WHERE, BOB)).text == "Borin joins the fight with initiative 11."  # d20 by code
        assert roller.asked[-2:] == ["1d20+0", "1d20"]  # the roll, then the roll-off for ties
        await game.combat_next(WHERE, GM)  # round 1: the goblin (14) acts
        changed = await game.combat_init(WHERE, BOB, 20)
        assert changed.text == "Borin's initiative is now 20."
        assert changed.view.text == "Combat: round 1, Goblin's turn\n  20  Borin — HP 12/12\n> 14  Goblin — unhurt"
        stored = await store.encounters.get(game.registry.sessions[70].state.campaign.id)
        assert stored is not None and [c["name"] for c in stored["combatants"]] == ["Borin", "Goblin"]


async def test_terminal_play_prints_the_same_tracker(tmp_path: Path) -> None:
    script = ("/start The Sunken Crypt\nAria: /join Aria Rogue Elf\n/combat add Ogre\n/combat add Aria\n"
              "/combat next\n/combat\n/combat end\n/quit\n")
    settings = load_settings(None, data_dir=str(tmp_path), openai_api_key="sk-test", player_cooldown_seconds=0)
    out = io.StringIO()
    assert await play(settings, channel_id=4, inp=io.StringIO(script), out=out, llm=ScriptedModel()) == 0
    text = out.getvalue()
    assert "\n[combat] Combat: not started (the first turn begins round 1)\n" in text
    assert "  (Joining the fight, with their initiative: Ogre (" in text
    assert "  (Aria joins the fight (initiative " in text
    assert "Aria — HP 10/10" in text and "Ogre — unhurt" in text  # numbers for players, a look for monsters
    assert "\n[combat] Combat: round 1, " in text and "\n[combat] Combat: the fight is over\n" in text
