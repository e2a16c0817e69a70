"""Replay a real recorded Discord D&D session (FIREBALL, CC-BY-4.0, see tests/data/fireball/LICENSE)
through the game core in its recorded order, against the real model client and a scripted
OpenAI-compatible server on 127.0.0.1, as a discrete-event simulation on a manual clock.

Time is compressed ten times (a faster table: the recorded minute between posts becomes six seconds),
and every model reply takes three seconds of story time, so some actions arrive while the DM is
replying. The 65 recorded minutes run in a few seconds of real time, deterministically.

What is expected is computed here from the data with simple, independent rules — never by calling the
code under test: other bots (Avrae) are ignored, ``!`` commands are ignored, out-of-character asides
and wordless lines ("1", "y") are ignored, every other message is stored and answered exactly once,
and the answers are batched exactly as the window rules predict (6 s window, +2 s per action, 20 s cap,
early close once every player with a character has acted; actions that arrive during a reply wait for
the next turn).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot.config import load_settings
from bot.game.api import Actor, ChannelRef, CharacterSheetInput, IncomingMessage
from bot.game.core import Game
from bot.game.memory import SUMMARY_MARKER
from bot.game.turns import ManualClock
from bot.llm import LLMClient
from bot.store import Database, Store
from tests.support.doubles import RecordingNarrator
from tests.support.fake_openai import FakeOpenAI, Reply
from tests.support.fireball import expected_kind, load_messages, user_id

WHERE = ChannelRef(guild_id=1, channel_id=55)
WINDOW, EXTEND, CAP, COOLDOWN = 6.0, 2.0, 20.0, 2.0
SPEED = 10.0  # recorded seconds per story second
LATENCY = 3.0  # story seconds per model reply


def expected_batches(actions: list[dict[str, Any]], party: set[int]) -> tuple[list[list[int]], int]:
    """Group actions into turns by the window rules, one reply at a time, each taking LATENCY story
    seconds. Returns the batches and how many actions arrived while the DM was replying."""
    batches: list[list[int]] = []
    current: list[int] = []
    opened = deadline = 0.0
    early: float | None = None
    acted: set[int] = set()
    free_at = float("-inf")  # when the DM finishes the reply being written
    during = 0
    for m in actions:
        t = story_time(m)
        while current:
            closes = max(free_at, deadline if early is None else min(deadline, early))
            if closes > t:
                break
            batches.append(current)
            current, free_at = [], closes + LATENCY
        during += t < free_at
        if not current:
            opened, deadline, acted, early = t, t + WINDOW, set(), None
        else:
            deadline = min(max(deadline, t + EXTEND), opened + CAP)
        current.append(m["message_id"])
        acted.add(user_id(m))
        if early is None and party and party <= acted:
            early = t
    if current:
        batches.append(current)
    return batches, during


def story_time(m: dict[str, Any]) -> float:
    return m["created_at"] / SPEED


class ClockedModel:
    """The real client, but each answer is held until LATENCY story seconds have passed on the manual
    clock (a model that takes time to write). Counts calls on the wire and calls waiting for time."""

    def __init__(self, inner: LLMClient, clock: ManualClock) -> None:
        self.inner, self.clock = inner, clock
        self.on_wire = 0
        self.waiting = 0

    async def chat(self, messages: list[dict[str, Any]], **kw: Any) -> Any:
        done_at = self.clock.now() + LATENCY
        self.on_wire += 1
        try:
            result = await self.inner.chat(messages, **kw)
        finally:
            self.on_wire -= 1
        self.waiting += 1
        try:
            await self.clock.wait(asyncio.Event(), done_at)
        finally:
            self.waiting -= 1
        return result


async def run_until_calm(game: Game, model: ClockedModel, clock: ManualClock) -> None:
    """Let the core run (real time) until nothing can happen without the clock moving."""
    calm = 0
    for _ in range(20_000):
        await asyncio.sleep(0 if calm else 0.001)
        blocked = sum(live.state.busy + live.memory.running for live in game.registry.sessions.values())
        idle = all(live.state.busy or live.worker.quiet for live in game.registry.sessions.values())
        if idle and clock.due() == 0 and model.on_wire == 0 and blocked == model.waiting:
            calm += 1
            if calm >= 3:
                return
        else:
            calm = 0
    raise TimeoutError("the game core did not settle")


async def advance_to(t: float, game: Game, model: ClockedModel, clock: ManualClock) -> None:
    """Move the clock to ``t``, stopping at every deadline on the way (windows, model replies)."""
    await run_until_calm(game, model, clock)
    while (nxt := clock.next_deadline()) is not None and nxt <= t:
        clock.set(nxt)
        await run_until_calm(game, model, clock)
    clock.set(t)
    await run_until_calm(game, model, clock)


async def test_fireball_session_replay(tmp_path: Path) -> None:
    messages = load_messages()
    kinds = [expected_kind(m) for m in messages]
    assert len(messages) == 182 and kinds.count("bot") == 70 and kinds.count("prefix") == 59
    actions = [m for m, k in zip(messages, kinds) if k == "act"]
    assert len(actions) > 40
    for a in actions:  # the players never trip the 3-actions-in-2-seconds cooldown, even compressed
        own = [story_time(b) for b in actions if user_id(b) == user_id(a) and b["created_at"] <= a["created_at"]]
        assert len(own) < 4 or story_time(a) - own[-4] >= COOLDOWN
    players = sorted({m["author_name"] for m in actions} - {"Player 0"})  # Player 0 is the human DM
    party = {user_id(m) for m in actions if m["author_name"] in players}
    batches, during = expected_batches(actions, party)
    assert len(batches) < len(actions) and during > 0
    assert any(len(b) > 1 for b in batches)

    settings = load_settings(None, data_dir=str(tmp_path), openai_api_key="sk-test", turn_window_seconds=WINDOW,
                             turn_extend_seconds=EXTEND, turn_max_window_seconds=CAP,
                             player_cooldown_seconds=COOLDOWN, llm_max_attempts=1)
    clock = ManualClock(story_time(messages[0]))
    narrator = RecordingNarrator()

    def answer(body: dict[str, Any]) -> Reply:
        lines = body["messages"][-1]["content"].count("<<<")
        return Reply(f"The DM answers {lines} actions.")

    async with FakeOpenAI(default=answer) as server, \
            Database.open(settings.database_path, migrate=True) as db, \
            LLMClient(api_key="sk-test", base_url=server.url, default_model=settings.dm_model, max_attempts=1) as llm:
        store = Store(db)
        model = ClockedModel(llm, clock)
        game = Game(store=store, llm=model, settings=settings, narrator=narrator, clock=clock)
        await game.start()
        try:
            gm = Actor(1, "gm", is_admin=True)
            await game.start_campaign(WHERE, gm, title="FIREBALL replay", setting="A murky cave of pools")
            names = {m["author_name"]: user_id(m) for m in actions}
            for i, name in enumerate(players):
                await game.join(WHERE, Actor(names[name], name), CharacterSheetInput(f"Hero{i}", "Fighter", "Human"))
            reasons: dict[str, int] = {}
            queued: list[int] = []
            for m in messages:
                await advance_to(story_time(m), game, model, clock)
                intake = await game.handle_message(IncomingMessage(
                    guild_id=1, channel_id=55, author_id=user_id(m), author_name=m["author_name"],
                    content=m["content"], message_id=m["message_id"], author_is_bot=m["author_bot"],
                    created_at=m["created_at"]))
                reasons[intake.reason] = reasons.get(intake.reason, 0) + 1
                if intake.status == "queued":
                    queued.append(m["message_id"])
            await advance_to(clock.now() + 10 * CAP, game, model, clock)
        finally:
            await game.close()

        assert reasons == {"bot": kinds.count("bot"), "prefix": kinds.count("prefix"), "ooc": kinds.count("ooc"),
                           "empty": kinds.count("empty"), "action": len(actions)}
        assert queued == [m["message_id"] for m in actions]
        answered = [list(r.answered_message_ids) for r in narrator.turns]
        assert answered == batches  # batched exactly as the window rules predict
        flat = [i for batch in answered for i in batch]
        assert sorted(flat) == sorted(queued) and len(set(flat)) == len(flat)  # each answered exactly once
        assert not narrator.notices
        turn_requests = [r.messages for r in server.chat_requests
                         if not r.messages[0]["content"].startswith(SUMMARY_MARKER)]
        assert len(turn_requests) == len(batches)
        by_id = {m["message_id"]: m for m in actions}
        for sent, batch in zip(turn_requests, batches):
            last = sent[-1]["content"]
            assert last.count("<<<") - last.count("Backstory: <<<") == len(batch)
            positions = [last.index(by_id[i]["content"].strip()[:40]) for i in batch]
            assert positions == sorted(positions)  # in recorded order
        stored = [m for m in await store.story.transcript(1) if m.role == "player"]
        assert [m.platform_message_id for m in stored] == queued
        assert all(m.state == "answered" for m in stored)
        print(f"FIREBALL replay: {len(messages)} messages, {len(actions)} in character, {len(batches)} DM "
              f"replies, {during} actions arrived mid-reply, intake {reasons}")
