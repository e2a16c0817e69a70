"""PostgreSQL beside SQLite: what a turn costs on each, two bot processes on one database, and
copying a history across (``python -m bench.pg_bench``; about 4 minutes on 2 cores).

Everything runs on this machine. PostgreSQL is a real server (``tests/support/postgres.py``: the
machine's PostgreSQL binaries, 127.0.0.1, fsync off as for the tests, ``synchronous_commit`` on) reached
over loopback TCP through the bot's own ``PostgresDatabase`` (asyncpg pool, ``DATABASE_POOL_SIZE`` 10
per process); SQLite is a real file (WAL, ``synchronous=NORMAL``). Every game run is a fresh child
process (``bench/_pg_child.py``) that builds the game core as the bot does, on a fresh copy of one
seeded database (200 campaigns, three players each, 5,000 answered story messages each, one guild
per campaign with ids that Discord's ``(guild_id >> 22) % 2`` splits evenly between shards 0 and 1),
so the SQLite, PostgreSQL and two-process runs start from identical data and the same code.

1. Overhead per turn (``TurnTiming.overhead_s``: window closed -> reply handed to the adapter, minus
   the model's own time), as ``python -m bench``'s overhead bench: 200 channels at a table's pace
   (players think 1-4 s, 8 turns each), the scripted model server (tests/support/fake_openai.py's
   ``FakeOpenAI`` in its own process, answering a fixed narration after 1 s: its command line's
   default reply echoes the turn's message, which the output guard cuts) over HTTP through the real
   ``LLMClient``. On SQLite, on PostgreSQL, and on PostgreSQL with two processes of 100 channels each
   (one model server for both: it mostly sleeps).
2. Turns per second, 200 channels playing back to back for a fixed window, with the in-process
   zero-latency model (``InstantModel``, as ``python -m bench``'s core throughput bench). Not the HTTP
   server: on 2 cores a third, shared Python process serving both bots would take CPU from them and
   become what is measured; the in-process model costs each process the same per turn whether one
   or two run, like a remote model whose CPU is elsewhere. On SQLite, PostgreSQL, and PostgreSQL
   with two processes (``DISCORD_SHARD_COUNT=2``, ``DISCORD_SHARD_IDS=0`` / ``1``, each playing its
   shard's 100 channels, started at the same instant) against one process with all 200 (the same
   child, the same model, the same window). CPU during the window is reported too (the bot
   processes', PostgreSQL's, anything else's), and with it the most two processes could gain on
   this machine's cores: a mark the machine cannot meet is said so under the table.
3. Copying a 100,000-message campaign (plus its 25,000 model-usage rows) from SQLite with
   ``bot.store.copy.copy_database``: into PostgreSQL, and into a new SQLite file for comparison;
   the report's row counts are checked against what was written.

    python -m bench.pg_bench               # everything
    python -m bench.pg_bench --quick       # smaller sizes, for a smoke run
    python -m bench.pg_bench --only copy   # one part: overhead | throughput | copy
    python -m bench.pg_bench --profile     # also a cProfile'd PostgreSQL throughput run (top own time)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHANNELS = 200
SHARDS = 2
SEED_NAME = "bench_seed"


# --- plumbing --------------------------------------------------------------------------------------
def guild_of(campaign: int) -> int:
    """A snowflake-like guild id per campaign whose shard ``(id >> 22) % 2`` is ``campaign % 2``."""
    return (1_000_000 + campaign) << 22


def channel_of(campaign: int) -> int:
    return 10_000 + campaign


def shard_of(guild_id: int) -> int:
    return (guild_id >> 22) % SHARDS  # Discord's formula, as Settings.owns_guild


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "DISCORD_SHARD_COUNT", "DISCORD_SHARD_IDS", "DATABASE_POOL_SIZE")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


@contextlib.contextmanager
def model_server(latency: float) -> Iterator[str]:
    """The scripted model server with a reply the output guard lets through
    (``bench._pg_child.serve_model``) in its own process; yields its base URL."""
    from bench.__main__ import model_server as start

    with start(latency, argv=["-m", "bench._pg_child", "--model-server", str(latency)], env=child_env()) as url:
        yield url


def postmaster_pid(server: Any) -> int:
    """The pid of ``server``'s postmaster (first line of its ``postmaster.pid``)."""
    return int((server.data / "postmaster.pid").read_text().split()[0])


def cpu_snapshot(postmaster: int | None) -> tuple[float, float]:
    """(machine busy CPU-seconds, CPU-seconds of the PostgreSQL server whose postmaster is
    ``postmaster`` and its backends) so far."""
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    busy = (sum(fields[:8]) - fields[3] - fields[4]) / tick  # all but idle and iowait
    pg = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2:].split()  # state, ppid, ...
        if postmaster is not None and postmaster in (int(entry.name), int(rest[1])):
            pg += int(rest[11]) + int(rest[12])  # utime, stime
    return busy, pg / tick


class Child:
    """One bot process (``bench/_pg_child.py``)."""

    def __init__(self, cfg: dict[str, Any], env: dict[str, str], err: Any) -> None:
        self.err = err  # its stderr, shown when it fails
        self.proc = subprocess.Popen([sys.executable, "-m", "bench._pg_child", json.dumps(cfg)], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True,
                                     env=env)

    def read(self, key: str) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        try:
            return json.loads(line)[key]
        except (ValueError, KeyError):
            self.proc.kill()
            self.err.seek(0)
            raise RuntimeError(f"bench child failed ({line!r}):\n{self.err.read()[-3000:]}") from None

    def go(self, start: float) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"go {start!r}\n")
        self.proc.stdin.flush()

    def finish(self) -> None:
        self.proc.wait(60)


def run_children(cfgs: list[tuple[dict[str, Any], dict[str, str]]], window_s: float | None = None,
                 postmaster: int | None = None) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Start the children, wait until each is warm, start them at one instant, collect their results.
    With ``window_s``, the machine's and PostgreSQL's CPU over the window (in cores)."""
    with contextlib.ExitStack() as files:
        children = [Child(cfg, env, files.enter_context(tempfile.TemporaryFile(mode="w+"))) for cfg, env in cfgs]
        return _run(children, window_s, postmaster)


def _run(children: list[Child], window_s: float | None, postmaster: int | None
         ) -> tuple[list[dict[str, Any]], dict[str, float]]:
    try:
        for child in children:
            child.read("ready")
        start = time.perf_counter() + 0.3
        for child in children:
            child.go(start)
        cpu: dict[str, float] = {}
        if window_s is not None:
            time.sleep(max(0.0, start - time.perf_counter()))
            busy0, pg0 = cpu_snapshot(postmaster)
            time.sleep(max(0.0, start + window_s - time.perf_counter()))
            busy1, pg1 = cpu_snapshot(postmaster)
            cpu = {"machine_busy_cores": round((busy1 - busy0) / window_s, 2),
                   "postgres_cores": round((pg1 - pg0) / window_s, 2)}
        results = [child.read("result") for child in children]
        for child in children:
            child.finish()
    finally:
        for child in children:
            if child.proc.poll() is None:
                child.proc.kill()
                child.proc.wait()
    return results, cpu


# --- seeding ---------------------------------------------------------------------------------------
CAMPAIGN_COLUMNS = ("id", "guild_id", "channel_id", "title", "setting", "tone", "status", "created_by",
                    "created_at", "turn")
CHARACTER_COLUMNS = ("campaign_id", "player_id", "player_name", "name", "char_class", "ancestry", "created_at")
MESSAGE_COLUMNS = ("id", "campaign_id", "turn", "role", "author_id", "author_name", "character_name", "content",
                   "token_count", "state", "created_at", "platform_message_id")
SUMMARY_COLUMNS = ("campaign_id", "content", "token_count", "through_message_id", "updated_at")
USAGE_COLUMNS = ("call_id", "guild_id", "campaign_id", "player_id", "purpose", "model", "prompt_tokens",
                 "completion_tokens", "cost_usd", "day", "created_at")


def seed_rows(campaigns: list[int], stored: int, usage: bool = False) -> dict[str, list[tuple[Any, ...]]]:
    """``python -m bench``'s seed: per campaign three players and ``stored`` answered story messages,
    the oldest folded into a summary; with ``usage``, a model-usage row per DM reply."""
    now = time.time()
    rows: dict[str, list[tuple[Any, ...]]] = {"campaigns": [], "characters": [], "story_messages": [],
                                              "summaries": [], "model_usage": []}
    mid = 0
    for c in campaigns:
        rows["campaigns"].append((c, guild_of(c), channel_of(c), f"Campaign {c}", "A drowned temple", "grim",
                                  "active", 1, now, stored // 4))
        for p in range(3):
            rows["characters"].append((c, 100 + p, f"player{p}", f"Hero{p}", "Fighter", "Human", now))
        for i in range(stored):
            mid += 1
            role = "dm" if i % 4 == 3 else "player"
            text = ("The DM describes the flooded hall, the dripping stone and the hag's lair." if role == "dm"
                    else f"Hero{i % 3} searches the room carefully, step {i}.")
            rows["story_messages"].append((
                mid, c, i // 4 + 1, role, 100 + i % 3 if role == "player" else None,
                f"player{i % 3}" if role == "player" else "DM", f"Hero{i % 3}" if role == "player" else None,
                text, 18, "answered", now, None))
            if usage and role == "dm":
                rows["model_usage"].append((f"call-{mid}", guild_of(c), c, 100 + (i - 1) % 3, "turn", "gpt-4o-mini",
                                            1500, 60, 0.0003, time.strftime("%Y-%m-%d", time.gmtime(now)), now))
        rows["summaries"].append((c, "Long ago the party entered the crypt. " * 20, 160, mid - 120, now))
    return rows


COLUMNS = {"campaigns": CAMPAIGN_COLUMNS, "characters": CHARACTER_COLUMNS, "story_messages": MESSAGE_COLUMNS,
           "summaries": SUMMARY_COLUMNS, "model_usage": USAGE_COLUMNS}


async def write_rows(db: Any, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    """Insert through the store's own ``executemany`` (one transaction)."""
    async with db.transaction() as tx:
        for table, batch in rows.items():
            if batch:
                cols = COLUMNS[table]
                await tx.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                                     batch)


async def seed_sqlite(path: Path, rows: dict[str, list[tuple[Any, ...]]]) -> float:
    from bot.store import Database

    started = time.perf_counter()
    async with Database.open(path, migrate=True) as db:
        await write_rows(db, rows)
    return time.perf_counter() - started


async def seed_postgres(server: Any, rows: dict[str, list[tuple[Any, ...]]]) -> float:
    """The seed database (``COPY``: the fastest way in; not what is measured), its identity counters
    past the seeded ids, vacuumed and analysed as autovacuum leaves a running database."""
    import asyncpg

    from bot.store import Database

    started = time.perf_counter()
    admin = await asyncpg.connect(server.admin_url)
    try:
        await admin.execute(f"CREATE DATABASE {SEED_NAME} OWNER bot TEMPLATE template0")
    finally:
        await admin.close()
    async with Database.open(server.url(SEED_NAME), migrate=True) as db, \
            db.pool.acquire() as conn:  # type: ignore[attr-defined]
        for table, batch in rows.items():
            if batch:
                await conn.copy_records_to_table(table, records=batch, columns=list(COLUMNS[table]))
        for table in ("campaigns", "characters", "story_messages"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                               f" (SELECT MAX(id) FROM {table}))")
        await conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


async def clone_postgres(server: Any, name: str) -> str:
    """A fresh copy of the seed database (``CREATE DATABASE ... TEMPLATE``); its URL."""
    import asyncpg

    admin = await asyncpg.connect(server.admin_url)
    try:
        await admin.execute(f"CREATE DATABASE {name} OWNER bot TEMPLATE {SEED_NAME}")
    finally:
        await admin.close()
    return str(server.url(name))


def clone_sqlite(seed: Path, tmp: Path, name: str) -> Path:
    """A data dir holding a fresh copy of the seeded SQLite file."""
    data_dir = tmp / name
    data_dir.mkdir()
    shutil.copyfile(seed, data_dir / "dungeon_master.sqlite3")
    return data_dir


# --- the game runs ---------------------------------------------------------------------------------
def split_by_shard() -> dict[int, list[list[int]]]:
    shards: dict[int, list[list[int]]] = {s: [] for s in range(SHARDS)}
    for c in range(1, CHANNELS + 1):
        shards[shard_of(guild_of(c))].append([channel_of(c), guild_of(c)])
    return shards


async def play(kind: str, *, backend: str, processes: int, tmp: Path, sqlite_seed: Path | None, server: Any,
               mode_cfg: dict[str, Any], name: str) -> dict[str, Any]:
    """One scenario: ``processes`` bot processes (1: all 200 channels; 2: one shard each) on a fresh
    copy of the seed, in ``backend``."""
    every = [[channel_of(c), guild_of(c)] for c in range(1, CHANNELS + 1)]
    if backend == "sqlite":
        assert sqlite_seed is not None
        data_dir, url = clone_sqlite(sqlite_seed, tmp, name), None
    else:
        data_dir, url = tmp / name, await clone_postgres(server, name)
        data_dir.mkdir()
    cfgs = []
    if processes == 1:
        cfgs.append(({**mode_cfg, "data_dir": str(data_dir), "database_url": url, "campaigns": every}, child_env()))
    else:
        for shard, mine in split_by_shard().items():
            sub = data_dir / f"shard{shard}"
            sub.mkdir()
            cfgs.append(({**mode_cfg, "data_dir": str(sub), "database_url": url, "campaigns": mine,
                          "seed": 7 + shard},
                         child_env(DISCORD_SHARD_COUNT=str(SHARDS), DISCORD_SHARD_IDS=str(shard))))
    window = mode_cfg["duration"] if kind == "throughput" else None
    outs, cpu = run_children(cfgs, window, postmaster_pid(server))
    overheads = [v for o in outs for v in o["overhead_ms"]]
    model = [v for o in outs for v in o["model_ms"]]
    turns = sum(o["turns"] for o in outs)
    result: dict[str, Any] = {"backend": backend, "processes": processes,
                              "sessions_per_process": [o["sessions"] for o in outs], "turns": turns,
                              "overhead_ms_median": round(statistics.median(overheads), 3),
                              "overhead_ms_p99": round(percentile(overheads, 99), 3)}
    if kind == "throughput":
        result.update({"seconds": mode_cfg["duration"], "turns_per_second": round(turns / mode_cfg["duration"], 1),
                       "turns_per_second_per_process": [round(o["turns"] / o["wall_s"], 1) for o in outs],
                       "cpu_ms_per_turn_bot": round(sum(o["cpu_s"] for o in outs) / turns * 1000, 2), **cpu})
        if "machine_busy_cores" in cpu:
            bot_cores = sum(o["cpu_s"] for o in outs) / mode_cfg["duration"]
            result["bot_cores"] = round(bot_cores, 2)
            # anything else on the machine (another benchmark, a test run) skews every figure
            result["other_cores"] = round(max(0.0, cpu["machine_busy_cores"] - cpu["postgres_cores"] - bot_cores), 2)
            if backend == "postgresql":
                result["cpu_ms_per_turn_postgres"] = round(cpu["postgres_cores"] * mode_cfg["duration"] / turns * 1000,
                                                           2)
        profiles = [o["profile_top_own_seconds"] for o in outs if "profile_top_own_seconds" in o]
        if profiles:
            result["profile_top_own_seconds"] = profiles[0]
    else:
        result.update({"model_call_ms_median": round(statistics.median(model), 1),
                       "think_seconds": mode_cfg["think_s"]})
    return result


# --- 3: copying a campaign ---------------------------------------------------------------------------
async def bench_copy(server: Any, tmp: Path, messages: int) -> dict[str, Any]:
    from bot.store import Database
    from bot.store.copy import copy_database

    rows = seed_rows([1], messages, usage=True)
    source = tmp / "copy-source.sqlite3"
    build_s = await seed_sqlite(source, rows)
    expected = {table: len(batch) for table, batch in rows.items()}
    out: dict[str, Any] = {"messages": messages, "source_build_seconds": round(build_s, 2)}
    url = await clone_postgres_empty(server, "bench_copy")
    for label, target in (("postgres", url), ("sqlite", str(tmp / "copy-dest.sqlite3"))):
        async with Database.open(source) as src, Database.open(target) as dst:
            report = await copy_database(src, dst)
        counts = {t.table: t.rows for t in report.tables}
        ok = all(counts.get(table) == n for table, n in expected.items()) and report.rows == sum(expected.values())
        out[f"{label}_seconds"] = round(report.seconds, 2)
        out[f"{label}_rows"] = report.rows
        out[f"{label}_counts_match"] = ok
        if label == "postgres":
            out["rows_per_table"] = {t: n for t, n in counts.items() if n}
            out["postgres_rows_per_second"] = round(report.rows / report.seconds)
    out["expected_rows"] = sum(expected.values())
    return out


async def clone_postgres_empty(server: Any, name: str) -> str:
    import asyncpg

    admin = await asyncpg.connect(server.admin_url)
    try:
        await admin.execute(f"CREATE DATABASE {name} OWNER bot TEMPLATE template0")
    finally:
        await admin.close()
    return str(server.url(name))


# --- main ------------------------------------------------------------------------------------------
async def bench_postgres(quick: bool = False, only: str | None = None, profile: bool = False,
                         log: Any = print) -> dict[str, Any]:
    """Every part (or ``only`` one); the figures by section (see ``MARKS``)."""
    from tests.support.postgres import PostgresServer

    stored = 500 if quick else 5000
    turns = 3 if quick else 8
    duration = 4.0 if quick else 10.0
    results: dict[str, Any] = {}
    server = PostgresServer().start()
    try:
        await server.setup()
        with tempfile.TemporaryDirectory(prefix="pg-bench-") as tmp_name:
            tmp = Path(tmp_name)
            if only in (None, "overhead", "throughput"):
                rows = seed_rows(list(range(1, CHANNELS + 1)), stored)
                sqlite_seed = tmp / "seed.sqlite3"
                s_seed = await seed_sqlite(sqlite_seed, rows)
                p_seed = await seed_postgres(server, rows)
                del rows
                log(f"seeded {CHANNELS} x {stored} messages: SQLite {s_seed:.1f} s, PostgreSQL {p_seed:.1f} s")
                common: dict[str, Any] = dict(tmp=tmp, sqlite_seed=sqlite_seed, server=server)
                if only in (None, "overhead"):
                    # a fresh model server per run: one that served the runs before answers unevenly
                    # (it keeps every request; bench/journal_bench.py measured the effect)
                    for section, backend, procs in (("pg_overhead_sqlite", "sqlite", 1),
                                                    ("pg_overhead", "postgresql", 1),
                                                    ("pg_overhead_2proc", "postgresql", 2)):
                        with model_server(latency=1.0) as slow_url:
                            cfg = {"mode": "overhead", "model_url": slow_url, "turns": turns, "think_s": [1.0, 4.0]}
                            t = time.perf_counter()
                            results[section] = await play("overhead", backend=backend, processes=procs,
                                                          mode_cfg=cfg, name=f"o_{backend}_{procs}", **common)
                            results[section]["stored_messages_per_campaign"] = stored
                            log(f"{section}: {results[section]['overhead_ms_median']} ms median,"
                                f" {results[section]['overhead_ms_p99']} ms p99 ({time.perf_counter() - t:.0f} s)")
                if only in (None, "throughput"):
                    cfg = {"mode": "throughput", "model_url": None, "duration": duration}
                    runs = [("pg_throughput_sqlite", "sqlite", 1, False), ("pg_throughput", "postgresql", 1, False),
                            ("pg_throughput_2proc", "postgresql", 2, False)]
                    if profile:
                        runs.append(("pg_throughput_profiled", "postgresql", 1, True))
                    for section, backend, procs, prof in runs:
                        t = time.perf_counter()
                        results[section] = await play("throughput", backend=backend, processes=procs,
                                                      mode_cfg={**cfg, "profile": prof},
                                                      name=f"t_{backend}_{procs}{'_p' if prof else ''}", **common)
                        log(f"{section}: {results[section]['turns_per_second']} turns/s"
                            f" ({time.perf_counter() - t:.0f} s)")
                    two, one = results["pg_throughput_2proc"], results["pg_throughput"]
                    two["speedup_vs_one_process"] = round(two["turns_per_second"] / one["turns_per_second"], 2)
                    if "bot_cores" in one:  # what this machine allows: its cores / the cores one process's run used
                        used = one["bot_cores"] + one["postgres_cores"]
                        two["speedup_ceiling_cpu"] = round((os.cpu_count() or 1) / used, 2) if used else None
            if only in (None, "copy"):
                t = time.perf_counter()
                results["pg_copy"] = await bench_copy(server, tmp, 20_000 if quick else 100_000)
                log(f"pg_copy: {results['pg_copy']['postgres_seconds']} s ({time.perf_counter() - t:.0f} s)")
    finally:
        server.stop()
    return results


MARKS = [  # (section, key, op, mark, label): as bench/__main__.py's MARKS
    ("pg_overhead", "overhead_ms_median", "<=", 5.0, "PostgreSQL: bot overhead per turn, median ms (200 channels)"),
    ("pg_overhead", "overhead_ms_p99", "<=", 25.0, "PostgreSQL: bot overhead per turn, p99 ms (200 channels)"),
    ("pg_overhead_2proc", "overhead_ms_median", "<=", 5.0,
     "PostgreSQL, 2 processes x 100 channels: bot overhead per turn, median ms"),
    ("pg_overhead_2proc", "overhead_ms_p99", "<=", 25.0,
     "PostgreSQL, 2 processes x 100 channels: bot overhead per turn, p99 ms"),
    ("pg_throughput_2proc", "speedup_vs_one_process", ">=", 1.6,
     "PostgreSQL: turns/s of 2 processes (one shard each) / 1 process with all 200"),
    ("pg_copy", "postgres_counts_match", ">=", 1, "copy of a 100,000-message campaign to PostgreSQL: row counts"),
]
FIGURES = [  # figures without a mark, printed beside the marked ones
    ("pg_overhead_sqlite", "overhead_ms_median", "SQLite: bot overhead per turn, median ms (same scenario)"),
    ("pg_overhead_sqlite", "overhead_ms_p99", "SQLite: bot overhead per turn, p99 ms (same scenario)"),
    ("pg_throughput_sqlite", "turns_per_second", "SQLite: turns/s, 200 channels, in-process zero-latency model"),
    ("pg_throughput", "turns_per_second", "PostgreSQL: turns/s, 200 channels, 1 process"),
    ("pg_throughput_2proc", "turns_per_second", "PostgreSQL: turns/s, 200 channels, 2 processes"),
    ("pg_throughput_sqlite", "cpu_ms_per_turn_bot", "SQLite: bot CPU ms per turn"),
    ("pg_throughput", "cpu_ms_per_turn_bot", "PostgreSQL: bot CPU ms per turn (1 process)"),
    ("pg_throughput", "cpu_ms_per_turn_postgres", "PostgreSQL: server CPU ms per turn (1 process)"),
    ("pg_throughput", "machine_busy_cores", "PostgreSQL, 1 process: machine cores busy (of 2)"),
    ("pg_throughput_2proc", "machine_busy_cores", "PostgreSQL, 2 processes: machine cores busy (of 2)"),
    ("pg_throughput_2proc", "speedup_ceiling_cpu",
     "PostgreSQL: the most 2 processes could gain here (cores / cores the 1-process run used)"),
    ("pg_copy", "postgres_seconds", "copy of a 100,000-message campaign, SQLite -> PostgreSQL, seconds"),
    ("pg_copy", "sqlite_seconds", "copy of the same, SQLite -> SQLite, seconds"),
]


def table(results: dict[str, Any]) -> str:
    lines = ["| figure | measured | mark | met |", "|---|---|---|---|"]
    for section, key, op, mark, label in MARKS:
        value = results.get(section, {}).get(key)
        if value is None:
            continue
        met = value <= mark if op == "<=" else value >= mark
        lines.append(f"| {label} | {value} | {op} {mark} | {'PASS' if met else 'FAIL'} |")
    for section, key, label in FIGURES:
        value = results.get(section, {}).get(key)
        if value is not None:
            lines.append(f"| {label} | {value} | | |")
    return "\n".join(lines + notes(results))


def notes(results: dict[str, Any]) -> list[str]:
    """What a reader needs beside the table: a mark this machine cannot meet, figures skewed by
    other processes."""
    out = []
    one, two = results.get("pg_throughput", {}), results.get("pg_throughput_2proc", {})
    ceiling = two.get("speedup_ceiling_cpu")
    if ceiling is not None and ceiling < 1.6:
        used = round(one["bot_cores"] + one["postgres_cores"], 2)
        out.append(f"\nnote: one process on PostgreSQL already kept {used} of {os.cpu_count()} cores busy (bot"
                   f" {one['bot_cores']}, server {one['postgres_cores']}), so two processes on this machine can gain"
                   f" at most {ceiling}x: the 1.6x mark needs more cores (or the server on another machine)"
                   " or less CPU per turn.")
    skewed = [name for name, v in results.items() if isinstance(v, dict) and (v.get("other_cores") or 0) > 0.2]
    if skewed:
        out.append(f"\nwarning: other processes used over 0.2 cores during {', '.join(skewed)}: those figures are"
                   " skewed; run again on a quiet machine.")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=["overhead", "throughput", "copy"])
    parser.add_argument("--profile", action="store_true", help="add a cProfile'd PostgreSQL throughput run")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    started = time.perf_counter()
    results = asyncio.run(bench_postgres(args.quick, args.only, args.profile,
                                         log=lambda m: print(m, file=sys.stderr, flush=True)))
    results["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                          "quick": args.quick, "seconds": round(time.perf_counter() - started, 1)}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print()
    print(table(results))


if __name__ == "__main__":
    main()
