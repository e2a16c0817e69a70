"""Benchmarks: what a turn costs the bot in time, memory and tokens (``python -m bench``).

Not part of the pass/fail test run. Everything runs on this machine: the model is the scripted
OpenAI-compatible server (tests/support/fake_openai.py) in its own process on 127.0.0.1 with zero or
fixed latency, reached through the real ``LLMClient``; the database is a real SQLite file.
Prints a table and writes the figures to ``bench/results/latest.json``.

    python -m bench            # everything (about 11 minutes on 2 cores); scripts/bench.sh sets up .venv first
    python -m bench --quick    # smaller sizes, for a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench import combat_bench, guard_bench, journal_bench, pace_bench, pg_bench, stream_bench, world_memory

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


# --- plumbing --------------------------------------------------------------------------------------
@contextlib.contextmanager
def model_server(latency: float = 0.0, *, argv: list[str] | None = None,
                 env: dict[str, str] | None = None) -> Any:
    """Start the scripted model server in its own process; yields its base URL. ``argv``: another
    server's arguments after the interpreter (default: tests/support/fake_openai.py with ``latency``
    seconds a call); ``env``: its environment (default: this one, with the project on the path)."""
    command = argv or ["-m", "tests.support.fake_openai", "--latency", str(latency)]
    proc = subprocess.Popen([sys.executable, *command], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env=env or {**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"(http://\S+)", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"model server did not start: {line!r}")
    try:
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(10)


class MeasuringLLM:
    """Wraps the real client: records each call's prompt (token count of the messages) and time."""

    def __init__(self, inner: Any, count_prompts: bool = False) -> None:
        self.inner = inner
        self.count_prompts = count_prompts
        self.calls = 0
        self.prompts: list[list[dict[str, Any]]] = []

    async def chat(self, messages: list[dict[str, Any]], **kw: Any) -> Any:
        self.calls += 1
        if self.count_prompts:
            self.prompts.append([dict(m) for m in messages])
        return await self.inner.chat(messages, **kw)


class NullNarrator:
    """Hands replies to nothing; ``delivered`` counts them and wakes waiters per channel."""

    def __init__(self) -> None:
        self.delivered = 0
        self.events: dict[int, asyncio.Event] = {}

    async def deliver(self, reply: Any) -> None:
        if reply.kind != "notice":
            self.delivered += 1
        self.events.setdefault(reply.channel_id, asyncio.Event()).set()

    def stream(self, head: Any) -> None:
        """No streamed replies: the core delivers each reply whole (``deliver`` counts it)."""
        return None

    async def show_tracker(self, channel_id: int, campaign_id: int, view: Any) -> None:
        pass

    @contextlib.asynccontextmanager
    async def thinking(self, channel_id: int) -> AsyncIterator[None]:
        yield

    async def wait(self, channel_id: int) -> None:
        event = self.events.setdefault(channel_id, asyncio.Event())
        await event.wait()
        event.clear()


def rss_kib() -> int:
    """Resident set size of this process now, KiB (from /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def seed(db: Any, channels: int, stored: int) -> None:
    """Create ``channels`` campaigns of three players each with ``stored`` answered story messages;
    the oldest part is already folded into a summary, as in a long-running campaign."""
    import time as _t

    now = _t.time()
    rows_c, rows_ch, rows_m, rows_s = [], [], [], []
    mid = 0
    for c in range(1, channels + 1):
        rows_c.append((c, 1, 10_000 + c, f"Campaign {c}", "A drowned temple", "grim", "active", 1, now,
                       stored // 4))
        for p in range(3):
            rows_ch.append((c, 100 + p, f"player{p}", f"Hero{p}", "Fighter", "Human", now))
        for i in range(stored):
            mid += 1
            role = "dm" if i % 4 == 3 else "player"
            text = ("The DM describes the flooded hall, the dripping stone and the hag's lair." if role == "dm"
                    else f"Hero{i % 3} searches the room carefully, step {i}.")
            rows_m.append((mid, c, i // 4 + 1, role, 100 + i % 3 if role == "player" else None,
                           f"player{i % 3}" if role == "player" else "DM",
                           f"Hero{i % 3}" if role == "player" else None, text, 18, "answered", now,
                           None))
        rows_s.append((c, "Long ago the party entered the crypt. " * 20, 160, mid - 120, now))
    async with db.transaction() as conn:
        await conn.executemany("INSERT INTO campaigns (id, guild_id, channel_id, title, setting, tone, status,"
                               " created_by, created_at, turn) VALUES (?,?,?,?,?,?,?,?,?,?)", rows_c)
        await conn.executemany("INSERT INTO characters (campaign_id, player_id, player_name, name, char_class,"
                               " ancestry, created_at) VALUES (?,?,?,?,?,?,?)", rows_ch)
        await conn.executemany("INSERT INTO story_messages (id, campaign_id, turn, role, author_id, author_name,"
                               " character_name, content, token_count, state, created_at, platform_message_id)"
                               " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows_m)
        await conn.executemany("INSERT INTO summaries (campaign_id, content, token_count, through_message_id,"
                               " updated_at) VALUES (?,?,?,?,?)", rows_s)


class InstantModel:
    """A zero-latency model in this process: answers every call at once with a short narration and
    plausible usage. Measures the core alone, without the HTTP client's own cost."""

    async def chat(self, messages: list[dict[str, Any]], *, model: str | None = None, **kw: Any) -> Any:
        from bot.llm.types import ChatResult, Usage

        return ChatResult(text="The torches gutter; the party presses on. What do you do?",
                          usage=Usage(prompt_tokens=1500, completion_tokens=15), cost_usd=0.0002,
                          model=model or "gpt-4o-mini")

    async def aclose(self) -> None:
        return None


@contextlib.asynccontextmanager
async def game_on(tmp: Path, url: str | None, *, narrator: Any, count_prompts: bool = False,
                  **overrides: Any) -> AsyncIterator[tuple[Any, Any, MeasuringLLM]]:
    from bot.config import load_settings
    from bot.game.core import Game
    from bot.llm import LLMClient
    from bot.store import Database, Store

    options: dict[str, Any] = dict(data_dir=str(tmp), turn_mode="mention", player_cooldown_seconds=0,
                                   llm_max_concurrency=256, channel_queue_limit=10_000)
    options.update(overrides)
    settings = load_settings(None, **options)
    model = (LLMClient(api_key="sk-bench", base_url=url, default_model="gpt-4o-mini", max_concurrency=256,
                       timeout_s=30, deadline_s=60) if url else contextlib.nullcontext(InstantModel()))
    async with Database.open(settings.database_path, migrate=True) as db, model as client:
        llm = MeasuringLLM(client, count_prompts=count_prompts)
        game = Game(store=Store(db), llm=llm, settings=settings, narrator=narrator)
        await game.start()
        from bot.runtime import freeze_startup_heap

        freeze_startup_heap()  # as the bot process does once it is set up (bot/app.py)
        try:
            yield game, db, llm
        finally:
            await game.close()


def act(channel: int, player: int, text: str, mid: int) -> Any:
    from bot.game.api import IncomingMessage

    return IncomingMessage(guild_id=1, channel_id=channel, author_id=player, author_name=f"player{player % 3}",
                           content=text, message_id=mid, mentions_bot=True)


async def play_table(game: Any, narrator: NullNarrator, channel: int, base: int, n: int,
                     think: Any = None) -> None:
    """One bench table: ``n`` actions in channel ``10_000 + channel`` (message ids from ``base``), each
    after the DM answered the one before; ``think()``, when given, is the seconds the players take
    between a reply and their next action (a table's pace)."""
    for i in range(n):
        if think is not None:
            await asyncio.sleep(think())
        await game.handle_message(act(10_000 + channel, 100 + i % 3, f"I press on, {i}", base + i))
        await narrator.wait(10_000 + channel)


async def play_all(game: Any, narrator: NullNarrator, channels: int, base: int, n: int, think: Any = None) -> None:
    """``play_table`` at every channel 1..``channels`` at once (channel c's message ids from
    ``base + c * 1000``)."""
    await asyncio.gather(*(play_table(game, narrator, c, base + c * 1000, n, think) for c in range(1, channels + 1)))


# --- 1: overhead per turn, 200 channels playing at a table's pace -----------------------------------
async def bench_overhead(url: str, channels: int, stored: int, turns: int, think_s: tuple[float, float],
                         seed_value: int = 7) -> dict[str, Any]:
    """200 channels play at once against a model with fixed latency (``url``'s server); each table's
    players take ``think_s`` seconds (uniform, seeded) between a reply and their next action, as a table
    does. Overhead per turn is the core's ``TurnTiming.overhead_s``: window closed -> reply handed to
    the adapter, minus the model call's own time."""
    import random

    rng = random.Random(seed_value)
    narrator = NullNarrator()
    with tempfile.TemporaryDirectory() as tmp:
        async with game_on(Path(tmp), url, narrator=narrator) as (game, db, _llm):
            await seed(db, channels, stored)

            def think() -> float:
                return rng.uniform(*think_s)

            await play_all(game, narrator, channels, 10_000_000, 1)
            game.turn_timings.clear()
            await play_all(game, narrator, channels, 20_000_000, turns, think)
            overheads = [t.overhead_s * 1000 for t in game.turn_timings]
            model = [t.model_s * 1000 for t in game.turn_timings]
    return {"channels": channels, "stored_messages_per_campaign": stored, "turns": len(overheads),
            "think_seconds": list(think_s),
            "overhead_ms_median": round(statistics.median(overheads), 3),
            "overhead_ms_p99": round(percentile(overheads, 99), 3),
            "model_call_ms_median": round(statistics.median(model), 1)}


# --- 2: throughput with a zero-latency model ---------------------------------------------------------
async def bench_throughput(url: str | None, channels: int, stored: int, turns: int,
                           profile: bool = False) -> dict[str, Any]:
    """Every channel plays ``turns`` turns back to back, all at once. ``url=None``: the in-process
    zero-latency model (the core alone); otherwise the real client over HTTP to a zero-latency server
    (adds the openai SDK's own per-request cost). With ``profile``, where the time went (cProfile,
    top functions by own time)."""
    import cProfile
    import pstats

    narrator = NullNarrator()
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        async with game_on(Path(tmp), url, narrator=narrator) as (game, db, _llm):
            await seed(db, channels, stored)

            await play_all(game, narrator, channels, 10_000_000, 1)
            game.turn_timings.clear()
            profiler = cProfile.Profile() if profile else None
            cpu0 = time.process_time()
            start = time.perf_counter()
            if profiler:
                profiler.enable()
            await play_all(game, narrator, channels, 20_000_000, turns)
            if profiler:
                profiler.disable()
            wall = time.perf_counter() - start
            cpu = time.process_time() - cpu0
            done = len(game.turn_timings)
            result = {"channels": channels, "turns": done, "turns_per_second": round(done / wall, 1),
                      "cpu_ms_per_turn": round(cpu / done * 1000, 2)}
            if profiler:
                stats = pstats.Stats(profiler)
                # Stats.stats (per-function, not merged by name like get_stats_profile()) is not in typeshed
                rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:12]  # type: ignore[attr-defined]
                result["profile_top_own_seconds"] = [
                    [f"{Path(f).name}:{line}({name})", round(tt, 3)]
                    for (f, line, name), (_cc, _nc, tt, _ct, _c) in rows]
    return result


# --- 3 + 4: prompt size as the story grows, and prefix stability ----------------------------------
async def bench_prompt_growth(url: str, turns: int) -> dict[str, Any]:
    from bot.llm import count_message_tokens, count_tokens
    from bot.store import Store

    marks = [m for m in (50, 100, 500, 1000, 2000) if m <= turns]
    narrator = NullNarrator()
    sizes: dict[int, int] = {}
    every: dict[int, int] = {}
    whole: dict[int, int] = {}
    shares: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with game_on(Path(tmp), url, narrator=narrator, count_prompts=True) as (game, db, llm):
            from bot.game.api import Actor, ChannelRef, CharacterSheetInput

            where = ChannelRef(1, 42)
            await game.start_campaign(where, Actor(100, "p0", True), title="Growth")
            for p in range(3):
                await game.join(where, Actor(100 + p, f"p{p}"), CharacterSheetInput(f"Hero{p}", "Fighter", "Human"))
            store = Store(db)
            previous: list[dict[str, Any]] | None = None
            for turn in range(1, turns + 1):
                before = len(llm.prompts)
                calls_before_turn = llm.calls
                await game.handle_message(act(42, 100 + turn % 3, f"Hero{turn % 3} explores corridor {turn}", turn))
                await narrator.wait(42)
                prompt = next(p for p in llm.prompts[before:] if p[0]["content"].startswith("You are the Dungeon"))
                every[turn] = count_message_tokens(prompt)
                del llm.prompts[:]  # keep memory flat over thousands of turns
                if turn in marks:
                    sizes[turn] = every[turn]
                    whole[turn] = sum(m.token_count + 8 for m in await store.story.transcript(1)
                                      if m.role in ("player", "dm", "system"))
                if previous is not None and calls_before_turn == llm.calls - 1:  # no fold in between
                    a = json.dumps(previous)
                    b = json.dumps(prompt)
                    common = 0
                    for x, y in zip(a, b, strict=False):
                        if x != y:
                            break
                        common += 1
                    shares.append(count_tokens(b[:common]) / max(1, count_tokens(b)))
                previous = prompt
                await asyncio.sleep(0)  # let a scheduled fold start
    ratio = {t: round(whole[t] / sizes[t], 1) for t in marks}
    # The sticky history window (bot/game/context.py) makes the prompt a sawtooth: it grows by a turn at
    # a time, then drops when the window jumps forward, so that endpoints can reuse cached prefixes.
    # A single turn samples one point of that cycle; the mean of the 20 turns ending at each mark is
    # what the campaign costs around that point.
    mean20 = {t: round(statistics.mean(every[k] for k in range(max(1, t - 19), t + 1))) for t in marks}
    band = [every[k] for k in range(100, turns + 1)] if turns >= 100 else []
    return {"prompt_tokens_at_turn": sizes, "prompt_tokens_mean20_at_turn": mean20,
            "prompt_tokens_min_max_after_turn_100": [min(band), max(band)] if band else None,
            "turn_max_vs_turn_100_mean20": round(mean20[marks[-1]] / mean20[100], 3) if 100 in mean20 else None,
            "whole_history_tokens_at_turn": whole,
            "whole_history_ratio": ratio,
            "turn_max_vs_turn_100": round(sizes[marks[-1]] / sizes[100], 3) if 100 in sizes else None,
            "prefix_share_median": round(statistics.median(shares), 3) if shares else None,
            "prefix_share_p10": round(percentile(shares, 10), 3) if shares else None}


# --- 5: memory per session -------------------------------------------------------------------------
async def bench_memory(url: str, channels: int) -> dict[str, Any]:
    narrator = NullNarrator()
    with tempfile.TemporaryDirectory() as tmp:
        async with game_on(Path(tmp), url, narrator=narrator) as (game, db, _llm):
            await seed(db, channels, 140)
            gc.collect()
            before = rss_kib()
            for c in range(1, channels + 1):
                await game.registry.get(10_000 + c)
            gc.collect()
            after = rss_kib()
            loaded = len(game.registry.sessions)
    return {"sessions": loaded, "rss_kib_total": after - before,
            "kib_per_session": round((after - before) / max(1, loaded), 1)}


# --- 6: cold start ---------------------------------------------------------------------------------
COLD_START = r"""
import asyncio, sys, time
t0 = float(sys.argv[1])
async def main():
    from bot.app import DungeonMasterBot, COGS
    from bot.config import load_settings
    from bot.store import Database, Store
    from bot.llm import LLMClient
    s = load_settings(None, data_dir=sys.argv[2], discord_token="x.y.z", openai_api_key="sk-x")
    async with Database.open(s.database_path, migrate=True) as db, LLMClient.from_settings(s) as llm:
        bot = DungeonMasterBot(settings=s, store=Store(db), llm=llm)  # builds the game core, as in run_bot
        for name in COGS:
            await bot.load_extension(name)
        await bot.game.start()
        print(time.time() - t0)
        await bot.game.close()
asyncio.run(main())
"""


def bench_cold_start(runs: int) -> dict[str, Any]:
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run([sys.executable, "-c", COLD_START, repr(time.time()), tmp], cwd=ROOT,
                                 capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            if out.returncode != 0:
                raise RuntimeError(out.stderr[-2000:])
            times.append(float(out.stdout.strip().splitlines()[-1]))
    return {"runs": runs, "seconds_median": round(statistics.median(times), 3), "seconds_max": round(max(times), 3)}


# --- 7: FIREBALL replay ----------------------------------------------------------------------------
async def bench_replay(url: str, speed: float) -> dict[str, Any]:
    from bot.game.api import Actor, ChannelRef, IncomingMessage
    from bot.llm import count_message_tokens

    events = [json.loads(line) for line in (ROOT / "tests/data/fireball/raw.jsonl").read_text().splitlines()]
    messages = sorted((e for e in events if e["event_type"] == "message"), key=lambda e: e["created_at"])
    narrator = NullNarrator()
    with tempfile.TemporaryDirectory() as tmp:
        async with game_on(Path(tmp), url, narrator=narrator, count_prompts=True, turn_mode="batch",
                           turn_window_seconds=6 / speed, turn_extend_seconds=2 / speed,
                           turn_max_window_seconds=20 / speed, max_input_chars=4000) as (game, _db, llm):
            await game.start_campaign(ChannelRef(1, 55), Actor(1, "gm", True), title="FIREBALL")
            start = time.perf_counter()
            first = messages[0]["created_at"]
            queued = 0
            for m in messages:
                due = start + (m["created_at"] - first) / speed
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                intake = await game.handle_message(IncomingMessage(
                    1, 55, int(m["author_id"]) % 2**62, m["author_name"], m["content"], m["message_id"],
                    author_is_bot=m["author_bot"], created_at=m["created_at"]))
                queued += intake.status == "queued"
            waited_until = time.perf_counter() + 120  # a table that went to rounds would wait hours: say so
            while any(live.state.pending or live.state.busy for live in game.registry.sessions.values()):
                if time.perf_counter() > waited_until:
                    paces = [live.state.pace.mode() for live in game.registry.sessions.values()]
                    raise RuntimeError(f"replay: actions pending 2 minutes after the last message (pace {paces})")
                await asyncio.sleep(0.05)
            wall = time.perf_counter() - start
            modes = sorted({live.state.pace.mode() for live in game.registry.sessions.values()})
            prompt_tokens = sum(count_message_tokens(p) for p in llm.prompts)
    return {"messages": len(messages), "in_character": queued, "turns": narrator.delivered,
            "model_calls": llm.calls, "prompt_tokens": prompt_tokens, "wall_seconds": round(wall, 2),
            "time_compression": speed, "pace_at_end": modes}


# --- main ------------------------------------------------------------------------------------------
async def run_all(quick: bool, only: str | None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    stored = 500 if quick else 5000
    if only in (None, "cold"):  # first, on a quiet machine: the later runs leave servers and pages behind
        results["cold_start"] = bench_cold_start(runs=2 if quick else 5)
    if only in (None, "stream"):  # early too: it measures latency (about 70 s)
        results["stream"] = await stream_bench.bench_stream(turns=3 if quick else 10, whole_turns=2 if quick else 5)
    if only in (None, "overhead"):
        with model_server(latency=1.0) as slow_url:
            results["overhead"] = await bench_overhead(slow_url, channels=200, stored=stored,
                                                       turns=3 if quick else 10, think_s=(1.0, 4.0))
    if only in (None, "throughput"):
        results["throughput_core"] = await bench_throughput(None, channels=200, stored=stored,
                                                            turns=3 if quick else 10)
        # where the time goes: a separate, profiled run (cProfile slows what it measures)
        profiled = await bench_throughput(None, channels=200, stored=stored, turns=2, profile=True)
        results["throughput_core"]["profile_top_own_seconds"] = profiled["profile_top_own_seconds"]
        with model_server() as url:
            results["throughput_http"] = await bench_throughput(url, channels=200, stored=stored,
                                                                turns=3 if quick else 5)
    with model_server() as url:
        if only in (None, "prompt"):
            results["prompt_growth"] = await bench_prompt_growth(url, turns=200 if quick else 2000)
        if only in (None, "memory"):
            results["memory"] = await bench_memory(url, channels=1000 if quick else 10_000)
        if only in (None, "replay"):
            results["replay"] = await bench_replay(url, speed=600.0 if quick else 60.0)
    if only in (None, "pace"):  # FIREBALL at its recorded pace on a simulated clock (a few seconds)
        results["pace"] = await pace_bench.bench_pace()
    if only in (None, "combat"):
        results["combat"] = await combat_bench.bench_combat(20 if quick else 200, 3 if quick else 20)
    if only in (None, "guard"):
        results["guard"] = guard_bench.bench_guard(100 if quick else 300)
    if only in (None, "search"):
        results["search"] = await world_memory.bench_search(10_000 if quick else 100_000)
    if only in (None, "lore"):
        results["lore"] = world_memory.bench_lore_choice(1000, turns=100 if quick else 500)
    if only in (None, "journal"):
        results["journal"] = await journal_bench.bench_pages(10_000 if quick else 100_000, 10 if quick else 40)
        results["journal_load"] = await journal_bench.bench_overhead_with_reloads(
            1.0, stored=stored, turns=3 if quick else 10)
    if only in (None, "pg"):  # PostgreSQL beside SQLite (bench/pg_bench.py; about 3 minutes)
        results.update(await pg_bench.bench_postgres(quick))
    if only in (None, "recall"):
        size = (300, 30, 20) if quick else (2000, 200, 100)
        results["recall"] = await world_memory.bench_recall(*size, tools=True)
        results["recall_without_tools"] = await world_memory.bench_recall(*size, tools=False)
    return results


MARKS = [
    ("overhead", "overhead_ms_median", "<=", 5.0, "bot overhead per turn, median ms (200 channels)"),
    ("overhead", "overhead_ms_p99", "<=", 25.0, "bot overhead per turn, p99 ms (200 channels)"),
    ("throughput_core", "turns_per_second", ">=", 300.0, "turns/s, 200 channels, core + SQLite"),
    ("throughput_http", "turns_per_second", ">=", 300.0, "turns/s, 200 channels, + openai SDK over HTTP"),
    ("prompt_growth", "turn_max_vs_turn_100_mean20", "<=", 1.10, "prompt at last turn / turn 100 (20-turn means)"),
    ("prompt_growth", "turn_max_vs_turn_100", "<=", 1.10, "prompt at last turn / turn 100 (single turns)"),
    ("prompt_growth", "prefix_share_median", ">=", 0.80, "byte-identical prefix share, median"),
    ("memory", "kib_per_session", "<=", 64.0, "resident KiB per loaded session"),
    ("cold_start", "seconds_median", "<=", 2.0, "cold start to ready, seconds"),
    ("combat", "overhead_ms_median", "<=", 5.0, "combat: bot overhead per turn, median ms (200 fights of 10)"),
    ("combat", "overhead_ms_p99", "<=", 25.0, "combat: bot overhead per turn, p99 ms (200 fights of 10)"),
    ("combat", "tracker_updates_per_turn_max", "<=", 1.0, "combat: tracker updates per turn, most"),
    ("stream", "first_text_ms_median", "<=", 300.0, "streamed: model's first token -> first text shown, median ms"),
    ("stream", "edits_over_bound", "<=", 0, "streamed: replies with more edits than ceil(stream seconds) + 1"),
    ("stream", "rate_limited_429", "<=", 0, "streamed: 429s from the Discord stand-in (per-channel limits on)"),
    ("stream", "replies_not_finished", "<=", 0, "streamed: replies that never showed in full"),
    ("guard", "clean_ms_p99", "<=", 1.0, "output guard on a 700-token reply, p99 ms"),
    ("journal", "campaign_page_ms_median", "<=", 50.0,
     "journal: campaign page of a 100,000-message campaign, median ms"),
    ("journal", "transcript_page_ms_median", "<=", 50.0, "journal: a transcript page mid-story, median ms"),
    ("journal_load", "overhead_ms_median_with_reloads", "<=", 5.0,
     "bot overhead per turn while the journal reloads every 100 ms, median ms"),
    ("journal_load", "overhead_ms_p99_with_reloads", "<=", 25.0,
     "bot overhead per turn while the journal reloads every 100 ms, p99 ms"),
    ("pace", "rounds_max_turns_per_round", "<=", 1,
     "pace: FIREBALL under rounds, most DM turns in one round of the party's posts (out of combat)"),
    ("pace", "rounds_longest_wait_over_deadline_s", "<=", 0,
     "pace: FIREBALL under rounds, longest wait of an action past its round's deadline, s"),
    ("pace", "actions_unanswered", "<=", 0, "pace: FIREBALL actions not answered exactly once (all four replays)"),
    ("search", "search_ms_median", "<=", 20.0, "search over a 100,000-message campaign, median ms"),
    ("lore", "choose_ms_median", "<=", 0.5, "choosing a turn's lore among 1,000 entries, median ms"),
    ("lore", "choose_ms_p99", "<=", 2.0, "choosing a turn's lore among 1,000 entries, p99 ms"),
    *pg_bench.MARKS,
    ("recall", "recall_share", ">=", 1.0, "recall of entries named 500+ turns later (model records lore)"),
    ("recall", "ratio", "<=", 1.10, "prompt at turn 2,000 / turn 100 with 200 lore entries (20-turn means)"),
]


def table(results: dict[str, Any]) -> str:
    lines = ["| figure | measured | mark | met |", "|---|---|---|---|"]
    for section, key, op, mark, label in MARKS:
        value = results.get(section, {}).get(key)
        if value is None:
            continue
        met = value <= mark if op == "<=" else value >= mark
        lines.append(f"| {label} | {value} | {op} {mark} | {'yes' if met else 'NO'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=["overhead", "throughput", "prompt", "memory", "replay", "cold", "combat",
                                           "guard", "search", "lore", "recall", "stream", "journal", "pg",
                                           "pace"])
    args = parser.parse_args()
    results = asyncio.run(run_all(args.quick, args.only))
    results["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "platform": platform.platform(), "quick": args.quick,
                          "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print()
    print(table(results))


if __name__ == "__main__":
    main()
