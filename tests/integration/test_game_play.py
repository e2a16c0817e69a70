"""The game core against a scripted OpenAI-compatible server on 127.0.0.1, through the real client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.game.api import Actor, ChannelRef, CharacterSheetInput, IncomingMessage
from bot.game.memory import SUMMARY_MARKER
from tests.support.fake_openai import Error, FakeOpenAI, Reply, ToolCallSpec
from tests.support.game_helpers import fast_settings, running_game

pytestmark = pytest.mark.usefixtures("use_backend")  # each test on SQLite, then PostgreSQL

WHERE = ChannelRef(guild_id=1, channel_id=10)
PLAYERS = [Actor(101, "ann", is_admin=True), Actor(102, "bob"), Actor(103, "cy")]
SHEETS = [CharacterSheetInput("Aria", "Rogue", "Elf"), CharacterSheetInput("Borin", "Cleric", "Dwarf"),
          CharacterSheetInput("Cyra", "Wizard", "Human")]


def act(player: Actor, text: str, message_id: int) -> IncomingMessage:
    return IncomingMessage(guild_id=1, channel_id=10, author_id=player.user_id, author_name=player.name,
                           content=text, message_id=message_id)


async def setup_party(game: Any, n: int = 3) -> None:
    await game.start_campaign(WHERE, PLAYERS[0], title="The Sunken Crypt", setting="A drowned temple")
    for p, s in zip(PLAYERS[:n], SHEETS[:n]):
        await game.join(WHERE, p, s)


async def test_group_turn_answers_all_players_in_one_reply(tmp_path: Path) -> None:
    async with FakeOpenAI() as server:
        server.push(Reply("Aria finds a wire, Borin hears dragging, Cyra's light flares."))
        settings = fast_settings(tmp_path, turn_window_seconds=5, turn_max_window_seconds=10)
        async with running_game(settings, server.url) as (game, narrator, store):
            await setup_party(game)
            for i, p in enumerate(PLAYERS):
                intake = await game.handle_message(act(p, f"action of {p.name}", 1000 + i))
                assert intake.status == "queued"
            await narrator.wait_for(1)  # every party member acted: closes early, well before 5 s
            assert len(server.chat_requests) == 1
            body = server.chat_requests[0].body or {}
            last = body["messages"][-1]
            assert last["role"] == "user"
            for p, s in zip(PLAYERS, SHEETS):
                assert f"[{s.name} (player: {p.name})]: <<<action of {p.name}>>>" in last["content"]
            assert all(m["role"] != "system" or "action of" not in m["content"] for m in body["messages"])
            reply = narrator.turns[0]
            assert reply.turn == 1 and set(reply.answered_message_ids) == {1000, 1001, 1002}
            assert await store.campaigns.with_pending_actions() == []


async def test_action_during_reply_goes_to_next_turn_once(tmp_path: Path) -> None:
    async with FakeOpenAI() as server:
        server.push(Reply("First scene.", delay=0.5), Reply("Second scene."))
        async with running_game(fast_settings(tmp_path), server.url) as (game, narrator, _):
            await setup_party(game, 2)
            await game.handle_message(act(PLAYERS[0], "I open the door", 1))
            await game.handle_message(act(PLAYERS[1], "I follow", 2))
            await server.wait_for_chat_requests(1, timeout=5)
            assert server.in_flight == 1  # the first reply is being written
            await game.handle_message(act(PLAYERS[0], "I light a torch", 3))  # arrives mid-reply
            await narrator.wait_for(2)
            assert [r.answered_message_ids for r in narrator.turns] == [(1, 2), (3,)]
            second = server.chat_requests[1].messages[-1]["content"]
            assert "I light a torch" in second and "I open the door" not in second
            assert len(server.chat_requests) == 2


async def test_dm_rolls_real_dice_through_tools(tmp_path: Path) -> None:
    async with FakeOpenAI() as server:
        server.push(Reply(None, tool_calls=[
            ToolCallSpec("roll_dice", {"expression": "1d20+5", "reason": "Perception", "character": "Aria"}),
            ToolCallSpec("update_character", {"character": "Borin", "hp_change": -4}),
            ToolCallSpec("fly_away", {})]),
            Reply("Aria spots the trap; a dart grazes Borin."))
        async with running_game(fast_settings(tmp_path), server.url) as (game, narrator, store):
            await setup_party(game, 2)
            await game.handle_message(act(PLAYERS[0], "I search", 1))
            await narrator.wait_for(1)
            reply = narrator.turns[0]
            assert len(reply.rolls) == 1 and reply.rolls[0].expression == "1d20+5"
            assert "1d20" in reply.rolls[0].breakdown and 6 <= reply.rolls[0].total <= 25
            tool_msgs = [m for m in server.chat_requests[1].messages if m["role"] == "tool"]
            assert len(tool_msgs) == 3 and "unknown tool" in tool_msgs[2]["content"]
            assert f'"total": {reply.rolls[0].total}' in tool_msgs[0]["content"]
            borin = await game.character(WHERE, name="Borin")
            assert borin.hp == borin.max_hp - 4
            rolls = await store.story.rolls(1)
            assert [r.total for r in rolls] == [reply.rolls[0].total]


async def test_model_failure_keeps_actions_and_answers_them_later(tmp_path: Path) -> None:
    async with FakeOpenAI() as server:
        server.push(Error(401, code="invalid_api_key", message="bad key"), Reply("Both actions answered."))
        async with running_game(fast_settings(tmp_path), server.url) as (game, narrator, store):
            await setup_party(game, 2)
            await game.handle_message(act(PLAYERS[0], "I pray", 1))
            await narrator.wait_for(1, notices=True)
            assert "key" in narrator.notices[0].text
            assert [m.content for m in await store.story.pending(1)] == ["I pray"]
            await game.handle_message(act(PLAYERS[1], "I wait", 2))
            await narrator.wait_for(1)
            assert set(narrator.turns[0].answered_message_ids) == {1, 2}
            assert await store.story.pending(1) == []


async def test_retry_undo_and_refusals(tmp_path: Path) -> None:
    async with FakeOpenAI() as server:
        server.push(Reply("Version one."), Reply("Version two."))
        settings = fast_settings(tmp_path, max_input_chars=50, player_cooldown_seconds=30)
        async with running_game(settings, server.url) as (game, narrator, store):
            await setup_party(game, 2)
            for i in range(3):  # a burst of three quick lines is fine...
                assert (await game.handle_message(act(PLAYERS[0], f"I jump {i}", 10 + i))).status == "queued"
            too_soon = await game.handle_message(act(PLAYERS[0], "I jump again", 2))  # ...a fourth is not
            assert too_soon.status == "refused" and "Wait" in (too_soon.player_message or "")
            too_long = await game.handle_message(act(PLAYERS[1], "x" * 60, 3))
            assert too_long.status == "refused" and "50" in (too_long.player_message or "")
            await narrator.wait_for(1)
            await game.retry(WHERE, PLAYERS[0])
            assert narrator.turns[-1].kind == "retry" and narrator.turns[-1].text == "Version two."
            export = await game.export_markdown(WHERE)
            assert "Version two." in export and "Version one." not in export
            undone = await game.undo(WHERE, PLAYERS[0])
            assert undone.turn == 1 and "I jump 0" not in await game.export_markdown(WHERE)


async def test_sixty_turns_prompt_stops_growing_once_memory_folds(tmp_path: Path) -> None:
    from bot.llm import count_message_tokens

    def answer(body: dict[str, Any]) -> Reply:
        system = body["messages"][0]["content"]
        if system.startswith(SUMMARY_MARKER):
            return Reply("The party explored the crypt, fought a sea hag and found a silver key. " * 3)
        n = len(body["messages"])
        return Reply(f"The DM describes scene {n}: torches gutter, water drips, something moves in the "
                     "dark below the stairs and the party must decide what to do next.")

    settings = fast_settings(tmp_path, history_token_budget=600, summary_trigger_tokens=1200,
                             summary_token_cap=200)
    async with FakeOpenAI(default=answer) as server, running_game(settings, server.url) as (game, narrator, store):
        await setup_party(game)
        for turn in range(60):
            for i, p in enumerate(PLAYERS):
                await game.handle_message(act(p, f"{p.name} does thing {turn} with care", turn * 10 + i))
            await narrator.wait_for(turn + 1)
        turn_requests = [r.messages for r in server.chat_requests
                         if not r.messages[0]["content"].startswith(SUMMARY_MARKER)]
        folds = len(server.chat_requests) - len(turn_requests)
        sizes = [count_message_tokens(m) for m in turn_requests]
        assert len(sizes) == 60 and folds >= 3
        assert max(sizes[40:]) <= 1.1 * max(sizes[20:30]), sizes  # flat once memory folds
        assert max(sizes[40:]) < 2 * max(sizes[:10]) + 600, sizes
        summary = await store.summaries.get(1)
        assert summary is not None and summary.token_count <= 200
        assert summary.content in turn_requests[-1][0]["content"]
        whole = sum(m.token_count for m in await store.story.transcript(1))
        assert whole > 2 * max(sizes[40:])  # sending the whole story would cost far more
