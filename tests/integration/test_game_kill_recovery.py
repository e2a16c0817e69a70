"""Kill -9 of a process mid-turn loses nothing: on restart the pending actions are answered."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from bot.store import Database, Store
from tests.support import game_helpers
from tests.support.fake_openai import FakeOpenAI, Hang, Reply
from tests.support.game_helpers import fast_settings, running_game

pytestmark = pytest.mark.usefixtures("use_backend")  # each test on SQLite, then PostgreSQL

ROOT = Path(__file__).resolve().parents[2]
ACTIONS = ("I grab the idol", "I cover the exit", "I read the runes aloud")
AUTHORS = (101, 102, 103)  # the child gives each a character: the turn closes once all three acted


async def test_kill_mid_turn_then_restart_answers_pending(tmp_path: Path) -> None:
    async with FakeOpenAI(default=lambda body: Hang(30)) as hanging:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.integration._game_child", str(tmp_path), hanging.url,
            ",".join(map(str, AUTHORS)),
            cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": game_helpers.DATABASE_URL or ""})
        assert child.stdin is not None and child.stdout is not None
        assert (await asyncio.wait_for(child.stdout.readline(), 30)).startswith(b"READY")
        for i, (author, text) in enumerate(zip(AUTHORS, ACTIONS)):
            child.stdin.write(f"{author}|p{author}|{text}|{500 + i}\n".encode())
            await child.stdin.drain()
            assert (await asyncio.wait_for(child.stdout.readline(), 10)).startswith(b"QUEUED")
        # the turn had started before the kill: the model endpoint holds its request, unanswered,
        # and that request carries all three actions (the turn closed when the whole party had acted)
        (in_flight,) = await hanging.wait_for_chat_requests(1, timeout=15)
        assert hanging.in_flight == 1
        asked = in_flight.messages[-1]["content"]
        for text in ACTIONS:
            assert f"<<<{text}>>>" in asked
        child.send_signal(signal.SIGKILL)
        assert await child.wait() == -signal.SIGKILL

    async with Database.open(fast_settings(tmp_path).database_target) as db:
        pending = await Store(db).story.pending(1)
        assert [m.content for m in pending] == list(ACTIONS)

    async with FakeOpenAI() as server:
        server.push(Reply("The idol comes free as the runes blaze."))
        async with running_game(fast_settings(tmp_path), server.url) as (_game, narrator, store):
            await narrator.wait_for(1)
            reply = narrator.turns[0]
            assert reply.kind == "recovered" and set(reply.answered_message_ids) == {500, 501, 502}
            assert await store.story.pending(1) == []
            last = server.chat_requests[0].messages[-1]["content"]
            for text in ACTIONS:
                assert f"<<<{text}>>>" in last  # all three answered in the one recovered reply
            stored = [m for m in await store.story.transcript(1) if m.role == "player"]
            assert [m.platform_message_id for m in stored] == [500, 501, 502]  # nothing lost, nothing doubled
            assert all(m.state == "answered" for m in stored)
