"""``python -m bot db copy``: a FIREBALL-replayed SQLite database moved into PostgreSQL, verified;
refusing a destination that is not empty; the copy plays on (new ids after the copied ones, search);
and a bad ``DATABASE_URL`` gets a clear sentence from ``check`` and at start-up, never the password."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from bot.store import Database, Store
from bot.store.copy import TABLES
from tests.integration.test_game_fireball_replay import test_fireball_session_replay as replay_fireball

ROOT = Path(__file__).resolve().parents[2]


async def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "--env-file", "/nonexistent.env", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    return int(proc.returncode or 0), out.decode()


async def test_a_replayed_sqlite_campaign_is_copied_into_postgresql_and_verified(
        tmp_path: Path, postgres_server: Any) -> None:
    await replay_fireball(tmp_path)  # leaves the replay's database in tmp_path
    source = tmp_path / "dungeon_master.sqlite3"
    lite = sqlite3.connect(source)
    counts = {table: lite.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table, _ in TABLES}
    max_story_id = lite.execute("SELECT MAX(id) FROM story_messages").fetchone()[0]
    lite.close()
    assert counts["story_messages"] == 79 and counts["characters"] == 5  # 45 actions, 29 replies, 5 joins
    target = await postgres_server.fresh_database()

    code, out = await run_cli("db", "copy", "--from", f"sqlite:///{source}", "--to", target)
    assert code == 0, out
    lines = {line.split()[0]: line for line in out.splitlines() if line.endswith("verified")}
    assert sorted(lines) == sorted(t for t, _ in TABLES)
    for table, count in counts.items():
        assert lines[table].split()[1] == str(count), lines[table]
    assert f"copied {sum(counts.values())} rows" in out and "bot-test-password" not in out

    again, refused = await run_cli("db", "copy", "--from", f"sqlite:///{source}", "--to", target)
    assert again == 1 and "the destination is not empty" in refused

    async with Database.open(target, migrate=True) as pg:
        store = Store(pg)
        campaign = await store.campaigns.live_in_channel(55)
        assert campaign is not None and campaign.title == "FIREBALL replay"
        message, new = await store.story.add_action(campaign_id=campaign.id, turn=campaign.turn + 1, author_id=1,
                                                    author_name="gm", character_name=None, content="After the move",
                                                    token_count=3)
        assert new and message.id == max_story_id + 1  # the identity counter moved past the copied ids
        hits = await store.search.search(campaign.id, "answers 2 actions")  # PostgreSQL's own search
        assert hits and {h.source for h in hits} == {"story"}
        assert all("**answers**" in h.snippet and h.label == "DM" for h in hits)


async def test_a_bad_database_url_is_named_in_check_and_at_start_without_its_password(
        postgres_server: Any, closed_port_url: str) -> None:
    port = closed_port_url.split(":")[2].split("/")[0]
    cases = {
        "mysql://bot:hunter2-secret@127.0.0.1/db": "DATABASE_URL has the scheme 'mysql'",
        f"postgresql://bot:hunter2-secret@127.0.0.1:{port}/db": "cannot connect",
        f"postgresql://bot:hunter2-secret@127.0.0.1:{postgres_server.port}/postgres":
            "refused the user name or password",
    }
    for url, sentence in cases.items():
        code, out = await run_cli("check", env={"DATABASE_URL": url, "OPENAI_API_KEY": "sk-test",
                                               "OPENAI_BASE_URL": closed_port_url, "DISCORD_TOKEN": ""})
        assert code == 1, out
        line = next(ln for ln in out.splitlines() if "database" in ln and "FAIL" in ln)
        assert sentence in line and "DATABASE_URL" in line and "hunter2-secret" not in out, out
        code, out = await run_cli("run", env={"DATABASE_URL": url, "DISCORD_TOKEN": "x.y.z",
                                             "OPENAI_API_KEY": "sk-test"})
        assert code == 1 and sentence in out and "DATABASE_URL" in out and "hunter2-secret" not in out, out


async def test_migrate_and_check_on_postgresql_report_the_backend_and_its_schema(
        postgres_server: Any, closed_port_url: str) -> None:
    url = await postgres_server.fresh_database()
    env = {"DATABASE_URL": url, "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": closed_port_url}
    code, out = await run_cli("check", env=env)
    line = next(ln for ln in out.splitlines() if "database" in ln and "PostgreSQL" in ln)
    assert "new database, 14 migration(s) to apply" in line and "bot-test-password" not in out
    code, out = await run_cli("migrate", env=env)
    assert code == 0 and "schema version 14" in out and "bot-test-password" not in out, out
    code, out = await run_cli("check", env=env)
    line = next(ln for ln in out.splitlines() if "database" in ln and "PostgreSQL" in ln)
    assert line.startswith("[ ok ]") and "is writable, schema 14 (up to date)" in line, line
    assert f"postgresql://bot:***@127.0.0.1:{postgres_server.port}/" in line
