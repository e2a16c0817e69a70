"""Several bot processes on one database (``bot.store.leases``, ``bot.game.registry``), as real child
processes (``_shard_child.py``) on each backend: two contending for one campaign (exactly one
answers), a killed one's campaign taken over by the other at its next action, and two shards each
playing their own server."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.support import game_helpers
from tests.support.fake_openai import FakeOpenAI, Hang, Reply

pytestmark = pytest.mark.usefixtures("use_backend")  # each test on SQLite, then PostgreSQL

ROOT = Path(__file__).resolve().parents[2]


class Child:
    """One bot process: send it a command line, read its answers."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{line}\n".encode())
        await self.proc.stdin.drain()

    async def read(self, timeout: float = 20) -> str:
        """The next line it prints (fails after ``timeout`` seconds with what it printed so far)."""
        assert self.proc.stdout is not None
        try:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            raise AssertionError(f"no line from the child within {timeout} s; it printed {self.lines}") from None
        line = raw.decode().rstrip("\n")
        self.lines.append(line)
        return line

    async def ask(self, line: str) -> str:
        await self.send(line)
        return await self.read()


@asynccontextmanager
async def child(data_dir: Path, model_url: str, **env: str) -> AsyncIterator[Child]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration._shard_child", str(data_dir), model_url, cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": game_helpers.DATABASE_URL or "", **env})
    process = Child(proc)
    try:
        assert await process.read(30) == "READY"
        yield process
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_two_processes_contending_for_one_campaign_exactly_one_answers(tmp_path: Path) -> None:
    async with FakeOpenAI() as model:
        model.push(Reply("The gate groans open."))
        async with child(tmp_path, model.url) as a, child(tmp_path, model.url) as b:
            assert (await a.ask("start 1 10")).startswith("STARTED")
            # both processes receive the same message (a rolling deploy: old and new on one shard)
            assert (await a.ask("act 1 10 101 500 I open the gate")).startswith("QUEUED")
            assert await b.ask("act 1 10 101 500 I open the gate") == "IGNORED no_campaign"  # a holds the lease
            assert await a.read() == "REPLY 10 1 The gate groans open."
            assert len(model.chat_requests) == 1
            assert await b.ask("act 1 10 101 501 I step through") == "IGNORED no_campaign"
            assert b.lines == ["READY", "IGNORED no_campaign", "IGNORED no_campaign"]  # never a reply


async def test_a_killed_processs_campaign_is_answered_by_the_other_at_its_next_action(tmp_path: Path) -> None:
    async with FakeOpenAI() as model:
        model.push(Hang(60), Reply("The idol comes free; the floor gives way."), Reply("You run."))
        async with child(tmp_path, model.url) as a, child(tmp_path, model.url) as b:
            assert (await a.ask("start 1 10")).startswith("STARTED")
            assert (await a.ask("act 1 10 101 500 I grab the idol")).startswith("QUEUED")
            await model.wait_for_chat_requests(1, timeout=15)  # a is mid-turn
            assert await b.ask("act 1 10 101 501 I run") == "IGNORED no_campaign"  # a holds the lease
            a.proc.send_signal(signal.SIGKILL)
            assert await a.proc.wait() == -signal.SIGKILL
            # a's lease would run 15 s more, but a is dead: b takes the campaign at its next action
            assert (await b.ask("act 1 10 101 502 I run!")).startswith("QUEUED")
            assert await b.read() == "REPLY 10 1 The idol comes free; the floor gives way."
            first = model.chat_requests[1].messages[-1]["content"]
            assert "<<<I grab the idol>>>" in first  # what a left pending, answered by b
            if "<<<I run!>>>" not in first:  # taking over answers at once; the new action may be the next turn
                assert await b.read() == "REPLY 10 2 You run."
                assert "<<<I run!>>>" in model.chat_requests[2].messages[-1]["content"]


async def test_a_process_starting_after_a_killed_one_answers_what_it_left(tmp_path: Path) -> None:
    async with FakeOpenAI() as model:
        model.push(Hang(60), Reply("The idol comes free."))
        async with child(tmp_path, model.url) as a:
            assert (await a.ask("start 1 10")).startswith("STARTED")
            assert (await a.ask("act 1 10 101 500 I grab the idol")).startswith("QUEUED")
            await model.wait_for_chat_requests(1, timeout=15)
            a.proc.send_signal(signal.SIGKILL)
            assert await a.proc.wait() == -signal.SIGKILL
        async with child(tmp_path, model.url) as b:
            assert await b.read() == "REPLY 10 1 The idol comes free."  # taken over at start, not after 15 s


async def test_two_shards_on_one_database_each_play_their_own_server(tmp_path: Path) -> None:
    g0 = 4 << 22  # Discord's formula, (guild >> 22) % shard_count: shard 0 of 2
    g1 = 5 << 22  # shard 1 of 2
    async with FakeOpenAI() as model:
        model.push(Reply("Shard zero's keep wakes."), Reply("Shard one's keep wakes."))
        async with child(tmp_path, model.url, DISCORD_SHARD_COUNT="2", DISCORD_SHARD_IDS="0") as a, \
                child(tmp_path, model.url, DISCORD_SHARD_COUNT="2", DISCORD_SHARD_IDS="1") as b:
            assert (await a.ask(f"start {g0} 20")).startswith("STARTED")
            assert (await a.ask(f"act {g0} 20 101 600 I knock")).startswith("QUEUED")
            assert await a.read() == "REPLY 20 1 Shard zero's keep wakes."
            assert (await b.ask(f"start {g1} 21")).startswith("STARTED")
            assert (await b.ask(f"act {g1} 21 101 601 I knock too")).startswith("QUEUED")
            assert await b.read() == "REPLY 21 1 Shard one's keep wakes."
            assert [r.messages[-1]["content"].count("<<<") for r in model.chat_requests] == [1, 1]
