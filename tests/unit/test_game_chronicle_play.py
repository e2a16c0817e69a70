"""The chronicle in play: a fold writes a chapter and fills the lorebook from the same model call,
the story so far is rebuilt from chapters, and a table back after a long break hears "Previously..."."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.support.doubles import ScriptedModel, reply
from tests.unit.test_game_sessions import ANN, BOB, make_env, party_of

HOUR = 3600.0


def fold_answer(messages: list[dict[str, Any]]) -> Any:
    return reply(json.dumps({"chapter": "The party met Marta, who asked them to find the idol.", "entities": [
        {"kind": "npc", "name": "Marta", "aliases": ["the innkeeper"], "description": "Runs the Drowned Rat."},
        {"kind": "quest", "name": "Find the idol", "status": "open", "description": "Marta wants it back."}]}))


async def play_until_a_fold(env: Any, rounds: int = 30, *, start: float = 1_000_000.0) -> float:
    """Act until the first chapter exists; returns the (UNIX) time of the last action."""
    at = start
    for i in range(rounds):
        at = start + i * 60
        await env.act(ANN if i % 2 else BOB, f"I search the cellar, step {i}", mentions_bot=True, created_at=at)
        await env.settle()
        if await env.store.chapters.all(1):
            return at
    raise AssertionError(f"no chapter after {rounds} turns")


async def test_a_fold_writes_a_chapter_and_the_entities_of_its_span_join_the_lorebook(tmp_path: Path) -> None:
    model = ScriptedModel(default=lambda m: reply("The cellar is damp and the lantern flickers on."),
                          summarize=fold_answer)
    async with make_env(tmp_path, model, turn_mode="mention", history_token_budget=200,
                        summary_trigger_tokens=300, summary_token_cap=120) as env:
        await party_of(env, ANN, BOB)
        await play_until_a_fold(env)
        [chapter] = await env.store.chapters.all(1)
        assert chapter.content == "The party met Marta, who asked them to find the idol."
        assert (chapter.number, chapter.first_turn) == (1, 1)
        summary = await env.store.summaries.get(1)
        assert summary is not None
        assert summary.content == (f"Chapter 1 (turns 1-{chapter.last_turn}): The party met Marta, who asked them "
                                   "to find the idol.")
        lore = {e.name: e for e in await env.store.lore.live(1)}
        assert sorted(lore) == ["Find the idol", "Marta"]
        assert (lore["Marta"].aliases, lore["Marta"].created_by_kind) == (("the innkeeper",), "extract")
        assert (lore["Find the idol"].kind, lore["Find the idol"].status) == ("quest", "open")
        assert sorted(e.name for e in env.session().lore) == ["Find the idol", "Marta"]  # the cache follows
        prompt = env.model.summary_requests[0].messages
        assert "at most 100 tokens" in prompt[0]["content"]  # the chapter fits the 120-token summary whole
        assert "(this is the first chapter)" in prompt[1]["content"]


async def test_a_fold_answer_that_is_not_json_still_keeps_the_chapter(tmp_path: Path) -> None:
    model = ScriptedModel(default=lambda m: reply("The cellar is damp and the lantern flickers on."),
                          summarize=lambda m: reply("Plain prose: the party searched the cellar."))
    async with make_env(tmp_path, model, turn_mode="mention", history_token_budget=200,
                        summary_trigger_tokens=300, summary_token_cap=120) as env:
        await party_of(env, ANN, BOB)
        await play_until_a_fold(env)
        assert [c.content for c in await env.store.chapters.all(1)] == ["Plain prose: the party searched the cellar."]
        assert await env.store.lore.live(1) == []


async def test_after_a_long_break_the_first_reply_opens_with_previously(tmp_path: Path) -> None:
    model = ScriptedModel(default=lambda m: reply("The cellar is damp and the lantern flickers on."),
                          summarize=fold_answer)
    async with make_env(tmp_path, model, turn_mode="mention", history_token_budget=200,
                        summary_trigger_tokens=300, summary_token_cap=120, recap_after_hours=8) as env:
        await party_of(env, ANN, BOB)
        # the DM's replies are stamped with the real time; players' messages with Discord's
        await play_until_a_fold(env, start=time.time())
        model.push(reply("You are back at the Drowned Rat."), reply("Marta pours the ale."))
        await env.act(ANN, "I wave at Marta", mentions_bot=True, created_at=time.time() + 7.9 * HOUR)
        await env.settle()
        assert env.narrator.turns[-1].text == "You are back at the Drowned Rat."  # under 8 hours: no recap
        await env.act(ANN, "We return to the inn", mentions_bot=True, created_at=time.time() + 8.1 * HOUR)
        await env.settle()
        assert env.narrator.turns[-1].text == (
            "*Previously…* The party met Marta, who asked them to find the idol.\n"
            "*Open quests:* Find the idol.\n\nMarta pours the ale.")
        stored = [m.content for m in await env.store.story.transcript(1) if m.role == "dm"]
        assert stored[-1] == "Marta pours the ale."  # the opening is shown, not stored


async def test_a_name_only_an_old_chapter_knows_brings_its_excerpt_into_the_prompt(tmp_path: Path) -> None:
    from bot.store import ChapterDraft

    model = ScriptedModel(default=lambda m: reply("The harbour is quiet tonight."))
    async with make_env(tmp_path, model, turn_mode="mention") as env:
        await party_of(env, ANN)
        await env.store.summaries.fold(1, content="x", token_count=1, through_message_id=0, chapter=ChapterDraft(
            1, 3, 0, 0.0, 0.0, "Long ago the party sold a cursed compass to Zorvath, a fence at the docks.", 17))
        await env.act(ANN, "I look for Zorvath at the docks", mentions_bot=True)
        await env.settle()
        final = env.model.turn_requests[-1].messages[-1]["content"]
        assert "- Zorvath, in chapter 1: Long ago the party sold a cursed compass to Zorvath, a fence at the docks." \
            in final
        await env.act(ANN, "I look for Quillon instead", mentions_bot=True)  # no chapter knows him
        await env.settle()
        assert "in chapter" not in env.model.turn_requests[-1].messages[-1]["content"]
