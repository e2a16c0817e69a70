"""One bot process for ``bench/pg_bench.py``: the game core on a given set of channels.

Run by the parent as ``python -m bench._pg_child '<json config>'`` (never by hand). The process builds
the game core as the bot does (settings from the environment, so ``DISCORD_SHARD_COUNT`` and
``DISCORD_SHARD_IDS`` apply; ``Database.open(settings.database_target, pool_size=DATABASE_POOL_SIZE)``),
plays one warm-up turn per channel (loads every session and takes its lease), prints ``{"ready": ...}``
and waits for ``go <perf_counter start>`` on stdin, so that several processes start at the same
instant (``time.perf_counter`` is CLOCK_MONOTONIC on Linux: one clock for every process).

Modes:
- ``throughput``: every channel plays turns back to back until ``start + duration``; counted are the
  turns delivered inside that window.
- ``overhead``: every channel plays ``turns`` turns, its players thinking ``think_s`` seconds
  (uniform, seeded) between a reply and their next action, as in ``python -m bench``'s overhead bench.

Prints one JSON line with the figures (per-turn overheads in ms, so the parent can pool processes).

``python -m bench._pg_child --model-server SECONDS``: the scripted model server for the overhead runs
(see ``serve_model``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any


def emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


async def run(cfg: dict[str, Any]) -> dict[str, Any]:
    from bench.__main__ import InstantModel, NullNarrator  # the main bench's own doubles
    from bot.config import load_settings
    from bot.game.api import IncomingMessage
    from bot.game.core import Game
    from bot.llm import LLMClient
    from bot.runtime import freeze_startup_heap
    from bot.store import Database, Store

    settings = load_settings(None, data_dir=cfg["data_dir"], turn_mode="mention", player_cooldown_seconds=0,
                             llm_max_concurrency=256, channel_queue_limit=10_000,
                             **({"database_url": cfg["database_url"]} if cfg.get("database_url") else {}))
    url = cfg.get("model_url")
    model = (LLMClient(api_key="sk-bench", base_url=url, default_model="gpt-4o-mini", max_concurrency=256,
                       timeout_s=30, deadline_s=60) if url else contextlib.nullcontext(InstantModel()))
    channels: list[tuple[int, int]] = [tuple(c) for c in cfg["campaigns"]]  # (channel id, guild id)
    not_mine = [g for _c, g in channels if not settings.owns_guild(g)]
    if not_mine:  # the parent chose guild ids on this process's shard (DISCORD_SHARD_IDS)
        raise SystemExit(f"guilds {not_mine[:3]} are not on this process's shards")
    narrator = NullNarrator()
    loop = asyncio.get_running_loop()
    async with Database.open(settings.database_target, migrate=True,
                             pool_size=settings.database_pool_size) as db, model as client:
        game = Game(store=Store(db), llm=client, settings=settings, narrator=narrator)
        await game.start()
        freeze_startup_heap()  # as the bot process does once it is set up (bot/app.py)
        try:
            def act(channel: int, guild: int, i: int, mid: int) -> IncomingMessage:
                return IncomingMessage(guild_id=guild, channel_id=channel, author_id=100 + i % 3,
                                       author_name=f"player{i % 3}", content=f"I press on, {i}", message_id=mid,
                                       mentions_bot=True)

            async def warm(channel: int, guild: int) -> None:
                await game.handle_message(act(channel, guild, 0, 1_000_000_000 + channel))
                await narrator.wait(channel)

            await asyncio.gather(*(warm(ch, g) for ch, g in channels))
            loaded = len(game.registry.sessions)
            emit({"ready": True, "pid": os.getpid(), "sessions": loaded})
            line = await loop.run_in_executor(None, sys.stdin.readline)
            start = float(line.split()[1])
            await asyncio.sleep(max(0.0, start - time.perf_counter()))
            game.turn_timings.clear()
            timings: list[Any] = []

            async def drain() -> None:  # the core keeps only its newest 10,000 timings
                while True:
                    await asyncio.sleep(0.2)
                    while game.turn_timings:
                        timings.append(game.turn_timings.popleft())

            drainer = asyncio.create_task(drain())
            profiler = None
            if cfg.get("profile"):
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            cpu0 = time.process_time()
            cpu_at_end: list[float] = []
            if cfg["mode"] == "throughput":
                end = start + cfg["duration"]

                async def window_cpu() -> None:  # this process's CPU over the counted window exactly
                    await asyncio.sleep(max(0.0, end - time.perf_counter()))
                    cpu_at_end.append(time.process_time() - cpu0)

                clock = asyncio.create_task(window_cpu())

                async def play(channel: int, guild: int) -> None:
                    i = 0
                    while time.perf_counter() < end:
                        await game.handle_message(act(channel, guild, i, 2_000_000_000 + channel * 100_000 + i))
                        await narrator.wait(channel)
                        i += 1
            else:
                rng = random.Random(cfg.get("seed", 7))
                low, high = cfg["think_s"]

                async def play(channel: int, guild: int) -> None:
                    for i in range(cfg["turns"]):
                        await asyncio.sleep(rng.uniform(low, high))
                        await game.handle_message(act(channel, guild, i, 2_000_000_000 + channel * 100_000 + i))
                        await narrator.wait(channel)

            await asyncio.gather(*(play(ch, g) for ch, g in channels))
            finished = time.perf_counter()
            cpu = time.process_time() - cpu0
            if cfg["mode"] == "throughput":
                await clock
                cpu = cpu_at_end[0]
            if profiler is not None:
                profiler.disable()
            drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drainer
            timings.extend(game.turn_timings)
        finally:
            await game.close()
    if cfg["mode"] == "throughput":
        timings = [t for t in timings if t.delivered_at <= start + cfg["duration"]]
        wall = cfg["duration"]
    else:
        wall = finished - start
    result: dict[str, Any] = {
        "pid": os.getpid(), "sessions": loaded, "turns": len(timings), "wall_s": wall, "cpu_s": cpu,
        "start": start, "finished": finished,
        "overhead_ms": [round(t.overhead_s * 1000, 3) for t in timings],
        "model_ms": [round(t.model_s * 1000, 2) for t in timings]}
    if profiler is not None:
        import pstats

        stats = pstats.Stats(profiler)
        rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:20]  # type: ignore[attr-defined]
        result["profile_top_own_seconds"] = [[f"{Path(f).name}:{line}({name})", round(tt, 3), nc]
                                             for (f, line, name), (_cc, nc, tt, _ct, _c) in rows]
    return result


NARRATION = "The torches gutter; the party presses on. What do you do?"


def serve_model(latency: float) -> None:
    """The scripted model server (tests/support/fake_openai.py) answering every call with
    ``NARRATION`` after ``latency`` seconds. Not its command line's default reply: that one echoes the
    turn's message, which the output guard rightly cuts (``context_echo``), so no turn would finish."""
    from tests.support.fake_openai import FakeOpenAI, Reply

    async def serve() -> None:
        server = FakeOpenAI(default=lambda body: Reply(NARRATION, delay=latency))
        await server.start()
        print(f"fake OpenAI endpoint at {server.url}", flush=True)
        while True:  # keep memory flat: the server records every request
            await asyncio.sleep(1.0)
            server.requests.clear()

    asyncio.run(serve())


def main() -> None:
    if sys.argv[1] == "--model-server":
        serve_model(float(sys.argv[2]))
        return
    cfg = json.loads(sys.argv[1])
    emit({"result": asyncio.run(run(cfg))})


if __name__ == "__main__":
    main()
