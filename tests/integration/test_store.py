"""The SQLite store keeps its promises: pragmas, ordered migrations, isolated transactions, no loss."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bot.models import RollRecord
from bot.store import Database, MigrationError, Store
from bot.store.db import load_migrations


async def test_pragmas_and_migrations(tmp_path: Path) -> None:
    path = tmp_path / "data" / "db.sqlite3"
    async with Database.open(path) as db:
        assert await db.schema_version() == 0
        version = await db.migrate()
        assert version == max(v for v, _, _ in load_migrations())
        assert await db.migrate() == version  # idempotent
        assert (await db.fetchone("PRAGMA journal_mode"))[0] == "wal"
        assert (await db.fetchone("PRAGMA synchronous"))[0] == 1  # NORMAL
        assert (await db.fetchone("PRAGMA foreign_keys"))[0] == 1
        assert (await db.fetchone("PRAGMA busy_timeout"))[0] == 5000
        rows = await db.fetchall("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [r[0] for r in rows] == [v for v, _, _ in load_migrations()]
    assert path.is_file()


async def test_failing_migration_rolls_back_and_stops(tmp_path: Path) -> None:
    folder = tmp_path / "migs"
    folder.mkdir()
    (folder / "0001_one.sql").write_text("CREATE TABLE a (x INTEGER);")
    (folder / "0002_bad.sql").write_text("CREATE TABLE b (x INTEGER);\nINSERT INTO nope VALUES (1);")
    (folder / "0003_three.sql").write_text("CREATE TABLE c (x INTEGER);")
    async with Database.open(tmp_path / "db.sqlite3") as db:
        with pytest.raises(MigrationError, match="0002_bad"):
            await db.migrate(folder)
        assert await db.schema_version() == 1
        tables = {r[0] for r in await db.fetchall("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "a" in tables and "b" not in tables and "c" not in tables


def test_misnamed_migration_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_x.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError):
        load_migrations(tmp_path)


async def test_transactions_do_not_interleave(tmp_path: Path) -> None:
    async with Database.open(tmp_path / "db.sqlite3") as db:
        await db.execute("CREATE TABLE t (k INTEGER, v INTEGER)")

        async def writer(k: int) -> None:
            async with db.transaction() as conn:
                for i in range(20):
                    await conn.execute("INSERT INTO t VALUES (?, ?)", (k, i))
                    await asyncio.sleep(0)  # give the other coroutines every chance to cut in
                if k == 2:
                    raise RuntimeError("roll me back")

        results = await asyncio.gather(*(writer(k) for k in range(4)), return_exceptions=True)
        assert isinstance(results[2], RuntimeError)
        rows = await db.fetchall("SELECT k, COUNT(*) FROM t GROUP BY k ORDER BY k")
        assert [(r[0], r[1]) for r in rows] == [(0, 20), (1, 20), (3, 20)]  # writer 2 fully rolled back


async def test_action_is_committed_and_idempotent_and_turn_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    async with Database.open(path, migrate=True) as db:
        store = Store(db)
        c = await store.campaigns.create(guild_id=1, channel_id=2, title="T", setting="", tone="", created_by=3)
        a, new = await store.story.add_action(campaign_id=c.id, turn=1, author_id=3, author_name="bob",
                                             character_name=None, content="I look", token_count=3,
                                             platform_message_id=77)
        again, new_again = await store.story.add_action(campaign_id=c.id, turn=1, author_id=3,
                                                         author_name="bob", character_name=None,
                                                         content="I look", token_count=3, platform_message_id=77)
        assert new and not new_again and again.id == a.id
        # visible to a second, independent connection right away: committed before returning
        other = sqlite3.connect(path)
        assert other.execute("SELECT state FROM story_messages WHERE id = ?", (a.id,)).fetchone() == ("pending",)
        roll = RollRecord(None, c.id, 1, None, "DM", None, "1d20", "x", 11, "1d20 (11) = `11`", 0.0, True)
        notes, dm = await store.story.complete_turn(campaign_id=c.id, turn=1, action_ids=[a.id],
                                                    dm_content="You see a door.", dm_token_count=5,
                                                    rolls=[roll], notes=[("Dice rolled: 1d20 = 11", 8)])
        states = other.execute("SELECT role, state FROM story_messages ORDER BY id").fetchall()
        assert states == [("player", "answered"), ("system", "answered"), ("dm", "answered")]
        assert other.execute("SELECT turn FROM campaigns").fetchone() == (1,)
        assert other.execute("SELECT COUNT(*) FROM dice_rolls").fetchone() == (1,)
        assert await store.campaigns.with_pending_actions() == []
        assert await store.story.undo_turn(c.id, 1) == 3
        assert (await store.campaigns.get(c.id)).turn == 0  # type: ignore[union-attr]
        other.close()


async def test_one_live_campaign_per_channel(tmp_path: Path) -> None:
    from bot.errors import UserInputError

    async with Database.open(tmp_path / "db.sqlite3", migrate=True) as db:
        store = Store(db)
        c = await store.campaigns.create(guild_id=1, channel_id=2, title="A", setting="", tone="", created_by=3)
        with pytest.raises(UserInputError):
            await store.campaigns.create(guild_id=1, channel_id=2, title="B", setting="", tone="", created_by=3)
        await store.campaigns.set_status(c.id, "ended")
        await store.campaigns.create(guild_id=1, channel_id=2, title="B", setting="", tone="", created_by=3)
