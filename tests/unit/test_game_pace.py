"""Table pace (issue 16): rounds, deadlines, reminders, /away, auto, a restart in the middle of a
round. The game core in-process on real SQLite with a scripted model and a manual clock: time only
moves when a test moves it, so a 12-hour deadline is exercised at its exact boundary."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.config import Settings, load_settings
from bot.errors import UserInputError
from bot.game.api import IncomingMessage
from bot.game.core import Game
from bot.game.errors import NotAllowed, NotInParty
from bot.game.pace import TablePace, auto_mode, is_say, median_gap
from bot.game.turns import ManualClock
from bot.store import Database, Store
from tests.support.doubles import RecordingNarrator, ScriptedModel, settle
from tests.unit.test_game_sessions import ANN, BOB, CY, GM, NEWBIE, WHERE, Env, make_env, party_of, words

HOUR = 3600.0


# --- the pure rules -------------------------------------------------------------------------------
@pytest.mark.parametrize("text, say", [
    ('"Who goes there?"', True), ("“Stand aside,” “please.”", True), ('"Halt!" I raise my spear.', False),
    ("I open the door", False), ('I say "hello"', False), ("«Bonjour»", True), ('""', False),
])
def test_is_say_is_only_quoted_words(text: str, say: bool) -> None:
    assert is_say(text) is say


def test_auto_needs_evidence_then_follows_the_gaps_between_different_players() -> None:
    assert median_gap([(0.0, 1), (900.0, 2), (1800.0, 1)]) is None  # two gaps: not enough
    same_player = [(i * 900.0, 1) for i in range(10)]
    assert median_gap(same_player) is None  # one player posting alone says nothing about the table
    slow = [(0.0, 1), (900.0, 2), (1900.0, 1), (2500.0, 3), (3700.0, 2)]  # gaps 900, 1000, 600, 1200
    assert median_gap(slow) == 950.0
    assert auto_mode(slow, "live") == "rounds"
    fast = [(0.0, 1), (30.0, 2), (50.0, 1), (110.0, 3), (150.0, 2)]  # 30, 20, 60, 40
    assert auto_mode(fast, "rounds") == "live"
    between = [(0.0, 1), (120.0, 2), (240.0, 1), (360.0, 3), (480.0, 2)]  # 2 minutes each: no change
    assert (auto_mode(between, "live"), auto_mode(between, "rounds")) == ("live", "rounds")


def test_auto_rounds_last_six_of_the_tables_gaps_within_bounds_unless_the_campaign_set_one() -> None:
    from bot.models import PaceSettings

    pace = TablePace()
    for i in range(6):
        pace.note_message(i * 1200.0, i % 3)  # 20 minutes apart
    assert (pace.mode(), pace.deadline_s()) == ("rounds", 2 * HOUR)
    pace.recent.clear()
    for i in range(10):
        pace.note_message(10_000 + i * 100.0, i % 2)  # 100 s apart: between the thresholds, still rounds
    assert (pace.mode(), pace.deadline_s()) == ("rounds", 15 * 60.0)  # six gaps are 10 min: the floor
    pace.recent.clear()
    for i in range(6):
        pace.note_message(i * 4 * HOUR, i % 2)  # hours apart: the full 12 hours
    assert pace.deadline_s() == 12 * HOUR
    pace.settings = PaceSettings(round_deadline_s=HOUR)
    assert pace.deadline_s() == HOUR  # the campaign's own deadline is kept
    pace.settings = PaceSettings(pace="rounds")
    assert pace.deadline_s() == 12 * HOUR  # rounds chosen outright: the default deadline


def test_a_player_away_or_silent_for_three_turns_is_not_active() -> None:
    pace = TablePace()
    pace.player(1).joined_turn = 2
    pace.player(2).last_turn = 5
    pace.player(3).last_turn = 9
    pace.player(3).away = True
    assert [pace.is_active(p, campaign_turn=8) for p in (1, 2, 3, 4)] == [False, True, False, True]


# --- rounds in play -------------------------------------------------------------------------------
async def rounds_table(env: Env, *players: object, deadline_hours: float = 12.0, share: float = 0.5) -> None:
    await party_of(env, *players)  # type: ignore[arg-type]
    status = await env.game.set_pace(WHERE, GM, pace="rounds", deadline_hours=deadline_hours, reminder_share=share)
    assert (status.configured, status.mode) == ("rounds", "rounds")


async def test_a_round_closes_when_the_last_active_character_acts(tmp_path: Path) -> None:
    async with make_env(tmp_path) as env:
        await rounds_table(env, ANN, BOB, CY)
        await env.act(ANN, "I pick the lock")
        await env.advance(3 * HOUR)  # far past the live window: still waiting for Borin and Cyra
        await env.act(BOB, "I watch the corridor")
        await env.advance(2 * HOUR)
        assert env.narrator.turns == [] and env.model.requests == []
        status = (await env.game.status(WHERE)).pace
        assert status is not None and status.waiting_for == ("Cyra",)
        await env.act(CY, "I read the runes on the door")
        await env.settle()  # no clock movement: Cyra was the last one
        assert len(env.narrator.turns) == 1 and env.narrator.turns[0].answered_message_ids == (1001, 1002, 1003)
        assert (await env.store.pace.load(1))[1] is None  # the stored round is closed


async def test_a_round_closes_on_its_deadline_with_whoever_acted(tmp_path: Path) -> None:
    async with make_env(tmp_path) as env:
        await rounds_table(env, ANN, BOB, deadline_hours=2.0, share=0)
        await env.act(ANN, "I search the altar")
        await env.advance(2 * HOUR - 1)
        assert env.narrator.turns == []
        await env.advance(1)
        assert len(env.narrator.turns) == 1 and env.narrator.turns[0].answered_message_ids == (1001,)
        assert env.narrator.notices == []  # reminders were off


async def test_away_and_inactive_players_do_not_hold_the_round(tmp_path: Path) -> None:
    async with make_env(tmp_path) as env:
        await party_of(env, ANN, BOB, CY)
        for i in range(4):  # four live turns without Cyra: she has not posted for more than 3 turns
            await env.act(ANN, f"I walk on, step {i}")
            await env.act(BOB, f"I follow, step {i}")
            await env.advance(7)
        assert len(env.narrator.turns) == 4
        await env.game.set_pace(WHERE, GM, pace="rounds")
        assert await env.game.away(WHERE, BOB) is True
        await env.act(ANN, "I open the gate")
        await env.settle()  # Borin is away, Cyra inactive: Aria alone closes the round
        assert len(env.narrator.turns) == 5 and env.narrator.turns[-1].answered_message_ids == (1009,)
        await env.act(BOB, "I'm back: I follow Aria through the gate")  # an action ends /away
        await env.settle()
        assert len(env.narrator.turns) == 5  # now the round waits for Aria again
        assert (await env.game.status(WHERE)).pace.waiting_for == ("Aria",)  # type: ignore[union-attr]
        with pytest.raises(NotInParty):
            await env.game.away(WHERE, NEWBIE)


async def test_speech_and_ooc_never_close_a_round(tmp_path: Path) -> None:
    async with make_env(tmp_path) as env:
        await rounds_table(env, ANN, BOB)
        await env.act(ANN, "I knock on the door")
        assert (await env.act(BOB, "((brb, coffee))")).reason == "ooc"
        assert (await env.act(BOB, '"Who lives here?"')).status == "queued"
        await env.advance(HOUR)
        assert env.narrator.turns == []
        status = (await env.game.status(WHERE)).pace
        assert status is not None and status.waiting_for == ("Borin",)
        await env.act(BOB, "I step back and ready my axe")
        await env.settle()
        assert len(env.narrator.turns) == 1 and env.narrator.turns[0].answered_message_ids == (1001, 1003, 1004)
        assert '[Borin (player: bob)]: <<<"Who lives here?">>>' in env.model.requests[0].messages[-1]["content"]


async def test_the_reminder_names_whom_the_dm_waits_for_and_pings_only_who_asked(tmp_path: Path) -> None:
    async with make_env(tmp_path) as env:
        await rounds_table(env, ANN, BOB, CY, deadline_hours=4.0, share=0.5)
        assert await env.game.reminders(WHERE, CY, ping=True) is True
        await env.act(ANN, "I climb the tower")
        await env.advance(2 * HOUR - 1)
        assert env.narrator.notices == []
        await env.advance(1)
        [notice] = env.narrator.notices
        assert notice.text == ("⏳ The DM is waiting for Borin and Cyra to act (a line of speech alone is not an"
                               " action). The round closes in 2 h or as soon as everyone has posted (`/away` if"
                               " you're out for a while).\n<@103>")
        assert notice.ping_user_ids == (103,) and notice.kind == "notice"
        await env.advance(HOUR)
        assert len(env.narrator.notices) == 1  # once a round
        await env.advance(HOUR)
        assert len(env.narrator.turns) == 1


async def test_a_reminder_without_anyone_asking_pings_nobody(tmp_path: Path) -> None:
    async with make_env(tmp_path) as env:
        await rounds_table(env, ANN, BOB, deadline_hours=10.0, share=0.3)
        await env.act(BOB, "I sharpen my axe")
        await env.advance(3 * HOUR)
        [notice] = env.narrator.notices
        assert notice.ping_user_ids == () and "<@" not in notice.text
        assert notice.text.startswith("⏳ The DM is waiting for Aria to act (a line of speech alone is not an"
                                      " action). The round closes in 7 h")


async def test_pace_settings_are_the_creators_or_an_admins_and_checked(tmp_path: Path) -> None:
    async with make_env(tmp_path) as env:
        await party_of(env, ANN)
        with pytest.raises(NotAllowed):
            await env.game.set_pace(WHERE, ANN, pace="rounds")
        for bad in ({"pace": "slow"}, {"deadline_hours": 0.001}, {"deadline_hours": 169.0},
                    {"deadline_hours": float("nan")}, {"reminder_share": 1.0}):
            with pytest.raises(UserInputError):
                await env.game.set_pace(WHERE, GM, **bad)  # type: ignore[arg-type]
        status = await env.game.set_pace(WHERE, GM, deadline_hours=6.0)
        assert (status.configured, status.deadline_s, status.reminder_share) == ("auto", 6 * HOUR, 0.5)
        status = await env.game.set_pace(WHERE, GM, pace="default")
        assert (status.configured, status.deadline_s) == ("auto", 6 * HOUR)  # the server's default: auto


async def test_auto_moves_to_rounds_on_a_play_by_post_pace_and_back(tmp_path: Path) -> None:
    async with make_env(tmp_path) as env:
        await party_of(env, ANN, BOB, CY)
        status = (await env.game.status(WHERE)).pace
        assert status is not None and (status.configured, status.mode) == ("auto", "live")
        players = [ANN, BOB, CY, ANN, BOB]
        for i, who in enumerate(players):  # 20 minutes apart, each answered alone at a live table
            await env.act(who, f"post {i}")
            await env.advance(20 * 60)
        status = (await env.game.status(WHERE)).pace
        assert status is not None and status.mode == "rounds"
        assert status.reason == "players post about 20 min apart"
        assert len(env.narrator.turns) == 4  # the fifth post opened the first round
        assert status.deadline_s == 2 * HOUR  # six of the table's 20-minute gaps, not 12 hours
        assert status.waiting_for == ("Aria", "Cyra")
        await env.advance(2 * HOUR - 20 * 60 - 1)
        assert len(env.narrator.turns) == 4
        await env.advance(1)
        assert len(env.narrator.turns) == 5 and env.narrator.turns[-1].answered_message_ids == (1005,)
        for who in (CY, ANN, BOB, CY, ANN, BOB, CY):  # now they are at the table together: 20 s apart
            await env.act(who, "quick")
            await env.advance(20)
        status = (await env.game.status(WHERE)).pace
        assert status is not None and status.mode == "live"
        assert status.reason == "players post about 20 s apart"
        assert env.narrator.turns[-1].answered_message_ids[-1] == 1012  # a live table waits for nobody


@contextlib.asynccontextmanager
async def process(settings: Settings, clock: ManualClock, narrator: RecordingNarrator) -> AsyncIterator[Game]:
    """One run of the bot's process on ``settings``' database: a started Game, closed on exit (the
    next ``process`` on the same database is the restart)."""
    async with Database.open(settings.database_path, migrate=True) as db:
        game = Game(store=Store(db), llm=ScriptedModel(), settings=settings, narrator=narrator, clock=clock,
                    count_tokens=words)
        await game.start()
        try:
            yield game
        finally:
            await game.close(grace_s=0)


async def test_a_restart_in_the_middle_of_a_round_resumes_it_with_the_same_deadline(tmp_path: Path) -> None:
    settings = load_settings(None, data_dir=str(tmp_path), player_cooldown_seconds=0)
    clock = ManualClock(0.0)

    def action(who: object, text: str, mid: int) -> IncomingMessage:
        return IncomingMessage(guild_id=WHERE.guild_id, channel_id=WHERE.channel_id, author_id=who.user_id,  # type: ignore[attr-defined]
                               author_name=who.name, content=text, message_id=mid)  # type: ignore[attr-defined]

    first = RecordingNarrator()
    async with process(settings, clock, first) as game:
        await party_of(Env(game, ScriptedModel(), first, clock, game.store, settings), ANN, BOB)
        await game.set_pace(WHERE, GM, pace="rounds", deadline_hours=8.0, reminder_share=0)
        await game.handle_message(action(ANN, "I hide behind the statue", 2001))
        await settle(game, clock)
        deadline = (await game.status(WHERE)).pace.round_deadline_at  # type: ignore[union-attr]
        assert deadline == clock.wall_origin + 8 * HOUR
    clock.advance(3 * HOUR)  # the bot was down for three hours
    second = RecordingNarrator()
    async with process(settings, clock, second) as game:
        await settle(game, clock)
        assert second.turns == []  # not answered as a recovered turn: the round goes on
        status = (await game.status(WHERE)).pace
        assert status is not None and status.round_deadline_at == deadline and status.waiting_for == ("Borin",)
        clock.advance(5 * HOUR - 1)
        await settle(game, clock)
        assert second.turns == []
        clock.advance(1)
        await settle(game, clock)
        assert len(second.turns) == 1 and second.turns[0].answered_message_ids == (2001,)
        assert second.turns[0].kind == "turn"


async def test_in_a_fight_under_rounds_the_initiative_order_decides_whom_the_round_waits_for(tmp_path: Path) -> None:
    from tests.unit.test_game_combat_play import open_fight, opening_dice

    async with make_env(tmp_path) as env:
        await open_fight(env, opening_dice())  # Aria's turn, round 1
        await env.game.set_pace(WHERE, GM, pace="rounds", reminder_share=0)
        await env.act(BOB, "I shout a warning")  # not his turn
        await env.advance(HOUR)  # the live window would have closed after 6 s
        assert len(env.narrator.turns) == 1
        status = (await env.game.status(WHERE)).pace
        assert status is not None and status.waiting_for == ("Aria",)
        await env.act(ANN, "I stab the goblin")
        await env.settle()
        assert len(env.narrator.turns) == 2 and env.narrator.turns[1].answered_message_ids == (1003, 1004)


# --- what the review of the first version found ------------------------------------------------
async def test_a_post_during_the_dms_reply_opens_the_next_round_which_waits(tmp_path: Path) -> None:
    from tests.support.doubles import Held, reply

    held = Held(reply("The door groans open."))
    model = ScriptedModel()
    model.push(held)
    async with make_env(tmp_path, model) as env:
        await rounds_table(env, ANN, BOB)
        await env.act(ANN, "I push the door")
        await env.act(BOB, "I cover Aria")  # everyone acted: the DM starts answering
        await held.started.wait()
        assert (await env.act(ANN, "I light a torch")).status == "queued"  # arrives mid-reply
        held.release.set()
        await env.settle()
        assert [r.answered_message_ids for r in env.narrator.turns] == [(1001, 1002)]
        await env.advance(HOUR)  # the new round waits for Borin (the live window would have closed)
        assert len(env.narrator.turns) == 1
        status = (await env.game.status(WHERE)).pace
        assert status is not None and status.waiting_for == ("Borin",)
        stored_round = (await env.store.pace.load(1))[1]
        assert stored_round is not None and stored_round.deadline_at == status.round_deadline_at


async def test_a_round_whose_only_action_is_withdrawn_is_no_round(tmp_path: Path) -> None:
    async with make_env(tmp_path) as env:
        await rounds_table(env, ANN, BOB, deadline_hours=2.0, share=0)
        await env.act(BOB, "I sharpen my axe", message_id=501)
        assert (await env.game.handle_delete(WHERE.channel_id, 501)).reason == "withdrawn"
        assert (await env.store.pace.load(1))[1] is None
        await env.advance(5 * HOUR)
        await env.act(BOB, "I sharpen my axe again")  # a new round: it waits for Aria
        await env.advance(HOUR)
        assert env.narrator.turns == []
        await env.advance(HOUR)
        assert len(env.narrator.turns) == 1 and env.narrator.turns[0].answered_message_ids == (1002,)


async def test_speech_edited_into_an_action_closes_the_round_at_once(tmp_path: Path) -> None:
    async with make_env(tmp_path) as env:
        await rounds_table(env, ANN, BOB)
        await env.act(ANN, "I knock")
        await env.act(BOB, '"Careful!"', message_id=601)
        await env.advance(60)
        assert env.narrator.turns == []
        edited = IncomingMessage(guild_id=WHERE.guild_id, channel_id=WHERE.channel_id, author_id=BOB.user_id,
                                 author_name=BOB.name, content='"Careful!" I pull Aria back.', message_id=601)
        assert (await env.game.handle_edit(edited)).status == "queued"
        await env.settle()  # no clock movement: the edit completed the round
        assert len(env.narrator.turns) == 1
        assert '<<<"Careful!" I pull Aria back.>>>' in env.model.requests[0].messages[-1]["content"]


async def test_switching_to_live_after_a_restart_mid_round_answers_at_once(tmp_path: Path) -> None:
    settings = load_settings(None, data_dir=str(tmp_path), player_cooldown_seconds=0)
    clock = ManualClock(0.0)
    narrator = RecordingNarrator()
    async with process(settings, clock, narrator) as game:
        await party_of(Env(game, ScriptedModel(), narrator, clock, game.store, settings), ANN, BOB)
        await game.set_pace(WHERE, GM, pace="rounds")
        await game.handle_message(IncomingMessage(WHERE.guild_id, WHERE.channel_id, ANN.user_id, ANN.name,
                                                  "I wait by the well", message_id=3001))
        await settle(game, clock)
    async with process(settings, clock, narrator) as game:
        await settle(game, clock)
        assert narrator.turns == []  # the round goes on
        await game.set_pace(WHERE, GM, pace="live")
        await settle(game, clock)  # no clock movement: nothing holds the action any more
        assert len(narrator.turns) == 1 and narrator.turns[0].answered_message_ids == (3001,)


async def test_an_action_stored_while_the_bot_shut_down_waits_for_its_round_after_the_restart(tmp_path: Path) -> None:
    settings = load_settings(None, data_dir=str(tmp_path), player_cooldown_seconds=0)
    clock = ManualClock(0.0)
    narrator = RecordingNarrator()
    async with process(settings, clock, narrator) as game:
        await party_of(Env(game, ScriptedModel(), narrator, clock, game.store, settings), ANN, BOB)
        await game.set_pace(WHERE, GM, pace="rounds", deadline_hours=4.0, reminder_share=0)
        game.registry.closing = True  # shutting down: a message is stored for the next start only
        intake = await game.handle_message(IncomingMessage(WHERE.guild_id, WHERE.channel_id, ANN.user_id,
                                                           ANN.name, "I bar the door", message_id=4001,
                                                           created_at=clock.wall()))
        assert intake.status == "queued"
    clock.advance(HOUR)
    async with process(settings, clock, narrator) as game:
        await settle(game, clock)
        assert narrator.turns == []  # not answered alone as a recovered turn
        status = (await game.status(WHERE)).pace
        assert status is not None and status.round_deadline_at == clock.wall_origin + 4 * HOUR
        clock.advance(3 * HOUR)
        await settle(game, clock)
        assert len(narrator.turns) == 1 and narrator.turns[0].answered_message_ids == (4001,)


async def test_a_monsters_turn_after_combat_next_is_played_without_waiting_for_the_round(tmp_path: Path) -> None:
    from tests.unit.test_game_combat_play import open_fight, opening_dice

    async with make_env(tmp_path) as env:
        await open_fight(env, opening_dice())  # Aria's turn, round 1
        await env.game.set_pace(WHERE, GM, pace="rounds", reminder_share=0.5)
        await env.act(BOB, "I shout a warning")
        await env.advance(HOUR)
        assert len(env.narrator.turns) == 1
        await env.game.combat_next(WHERE, GM)  # the goblin's turn: the DM plays it in the live window
        await env.advance(6)
        assert len(env.narrator.turns) == 2 and env.narrator.turns[1].answered_message_ids == (1003,)
        assert env.narrator.notices == []  # nobody was waited for at the reminder's time
