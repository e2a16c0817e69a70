"""The campaign journal's benchmark (``python -m bench --only journal``).

1. Server time of the campaign page (its newest transcript page) and of a deep transcript page (the
   middle of the story) of a 100,000-message campaign, SQLite, measured as the time of a request
   over loopback (an upper bound of the server's own time), each a full build (the page cache is
   emptied first; a cached page's time is reported beside). Mark: median <= 50 ms each.
2. The bot's overhead per turn (200 channels at a table's pace, the overhead bench's scenario) with
   and without a client (another process, as a reader's browser is) reloading a journal page every
   100 ms from the bot's journal server, on the bot's database.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp


async def seed_big_campaign(db: Any, messages: int) -> tuple[int, int]:
    """A campaign with ``messages`` answered story messages (a player action and a reply a turn), a
    roll every 10 turns, a party of 4 and 200 lore entries; returns ``(campaign id, guild id)``."""
    from bot.store import Store

    store = Store(db)
    guild = 4_000_000_000_000_555
    c = await store.campaigns.create(guild_id=guild, channel_id=77, title="The Long Road", setting="A year of play",
                                     tone="epic", created_by=1)
    for i in range(4):
        await store.characters.create(campaign_id=c.id, player_id=100 + i, player_name=f"p{i}", name=f"Hero {i}",
                                      char_class="Fighter", ancestry="Human")
    for i in range(200):
        await store.lore.create(campaign_id=c.id, kind="npc", name=f"Person {i}", description=f"Met in turn {i}.",
                                author_kind="dm", author_id=None, author_name="DM", turn=i)
    now = time.time()
    rows = []
    for i in range(messages):
        turn = i // 2 + 1
        role = "player" if i % 2 == 0 else "dm"
        rows.append((c.id, turn, role, 100 if role == "player" else None, "p0" if role == "player" else "DM",
                     "Hero 0" if role == "player" else None,
                     f"Turn {turn}: " + ("I walk on." if role == "player" else "The road winds on past the hills."),
                     8, "answered", now))
    await db.executemany("INSERT INTO story_messages (campaign_id, turn, role, author_id, author_name, character_name,"
                         " content, token_count, state, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    await db.executemany("INSERT INTO dice_rolls (campaign_id, turn, roller_id, roller_name, character_name,"
                         " expression, reason, total, breakdown, by_dm, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                         [(c.id, t, None, "DM", "Hero 0", "1d20+3", "Athletics", 15, "1d20 (12) + 3 = `15`", 1, now)
                          for t in range(10, messages // 2, 10)])
    await db.execute("UPDATE campaigns SET turn = ? WHERE id = ?", (messages // 2, c.id))
    return c.id, guild


async def _timed_gets(url: str, n: int, server: Any = None) -> list[float]:
    """``n`` GETs of ``url``, milliseconds each; with ``server``, its page cache is emptied before each
    request, so every one is a full build."""
    times = []
    async with aiohttp.ClientSession() as http:
        for _ in range(n):
            if server is not None:
                server._built.clear()
            started = time.perf_counter()
            async with http.get(url) as response:
                await response.read()
                assert response.status == 200, response.status
            times.append((time.perf_counter() - started) * 1000)
    return times


async def bench_pages(messages: int = 100_000, requests: int = 40) -> dict[str, Any]:
    """Part 1 of the module docstring."""
    from bot.config import load_settings
    from bot.journal.server import JournalServer, token_hash
    from bot.store import Database, Store

    with tempfile.TemporaryDirectory() as tmp:
        async with Database.open(Path(tmp) / "db.sqlite3", migrate=True) as db:
            store = Store(db)
            campaign_id, guild = await seed_big_campaign(db, messages)
            token = secrets.token_urlsafe(24)
            await store.journal.issue(token_hash=token_hash(token), kind="campaign", campaign_id=campaign_id,
                                      guild_id=guild, created_by=1)
            server = JournalServer(store, load_settings(None, data_dir=tmp))
            port = await server.start("127.0.0.1", 0)
            try:
                base = f"http://127.0.0.1:{port}/j/{token}"
                await _timed_gets(base, 3, server)  # warm the database's pages and the templates
                newest = await _timed_gets(base, requests, server)
                middle = await _timed_gets(f"{base}?page={messages // 50 // 2}", requests, server)
                oldest = await _timed_gets(f"{base}?page={messages // 50}", requests, server)
                cached = await _timed_gets(base, requests)
            finally:
                await server.close()

    def stats(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {"median": round(statistics.median(values), 2), "p90": round(ordered[int(len(ordered) * 0.9)], 2),
                "max": round(ordered[-1], 2)}

    return {"messages": messages, "requests_each": requests, "campaign_page_ms": stats(newest),
            "middle_page_ms": stats(middle), "oldest_page_ms": stats(oldest), "cached_page_ms": stats(cached),
            "campaign_page_ms_median": round(statistics.median(newest), 2),
            "transcript_page_ms_median": round(statistics.median(middle), 2)}


async def _overhead_run(url: str, channels: int, stored: int, turns: int, think_s: tuple[float, float],
                        reloading: bool) -> dict[str, Any]:
    """One overhead run (the overhead bench's scenario), with or without the page reloader."""
    import random

    from bench.__main__ import NullNarrator, game_on, percentile, play_all, seed
    from bot.config import load_settings
    from bot.journal.server import JournalServer, token_hash
    from bot.store import Store

    rng = random.Random(7)
    narrator = NullNarrator()
    loads = 0
    with tempfile.TemporaryDirectory() as tmp:
        async with game_on(Path(tmp), url, narrator=narrator) as (game, db, _llm):
            await seed(db, channels, stored)
            store = Store(db)
            campaign = await store.campaigns.live_in_channel(10_001)
            assert campaign is not None
            token = secrets.token_urlsafe(24)
            await store.journal.issue(token_hash=token_hash(token), kind="campaign", campaign_id=campaign.id,
                                      guild_id=campaign.guild_id, created_by=1)
            server = JournalServer(store, load_settings(None, data_dir=tmp))
            page = f"http://127.0.0.1:{await server.start('127.0.0.1', 0)}/j/{token}"
            # the reader is a browser elsewhere: a separate process, so its own work is not the bot's
            reloader_code = (
                "import sys, time, urllib.request\n"
                "n = 0\n"
                "while True:\n"
                "    urllib.request.urlopen(sys.argv[1]).read(); n += 1\n"
                "    print(n, flush=True); time.sleep(0.1)\n")

            def think() -> float:
                return rng.uniform(*think_s)

            await play_all(game, narrator, channels, 10_000_000, 1)
            game.turn_timings.clear()
            reloader = (await asyncio.create_subprocess_exec(sys.executable, "-c", reloader_code, page,
                                                             stdout=asyncio.subprocess.PIPE)) if reloading else None
            try:
                await play_all(game, narrator, channels, 20_000_000, turns, think)
            finally:
                if reloader is not None:
                    reloader.kill()
                    out, _ = await reloader.communicate()
                    lines = out.decode().split()
                    loads = int(lines[-1]) if lines else 0
                await server.close()
            overheads = [t.overhead_s * 1000 for t in game.turn_timings]
    return {"overhead_ms_median": round(statistics.median(overheads), 3),
            "overhead_ms_p99": round(percentile(overheads, 99), 3), "turns": len(overheads), "page_loads": loads}


async def bench_overhead_with_reloads(latency_s: float = 1.0, channels: int = 200, stored: int = 5000,
                                      turns: int = 10, think_s: tuple[float, float] = (1.0, 4.0)) -> dict[str, Any]:
    """Part 2 of the module docstring: the overhead bench twice, without and with the reloader, each
    against its own freshly started model server (``latency_s`` seconds a call). A server shared by
    both runs answered the second run more and more unevenly (it keeps every request it saw), which
    once passed for the reloads' cost: three runs without any reloader on one server gave p99 14, 41,
    72 ms; on a fresh server each, 14, 16, 12 (the last with reloads)."""
    from bench.__main__ import model_server

    out: dict[str, Any] = {}
    for name, reloading in (("without", False), ("with_reloads", True)):
        with model_server(latency=latency_s) as url:
            out[name] = await _overhead_run(url, channels, stored, turns, think_s, reloading=reloading)
    out["overhead_ms_median_with_reloads"] = out["with_reloads"]["overhead_ms_median"]
    out["overhead_ms_p99_with_reloads"] = out["with_reloads"]["overhead_ms_p99"]
    return out
