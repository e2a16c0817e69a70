"""The SQLite store keeps its promises: pragmas, ordered migrations, isolated transactions, no loss."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot.models import RollRecord
from bot.store import Database, IntegrityError, MigrationError, Store
from bot.store.db import load_migrations
from tests.support.checks import present


async def test_pragmas_and_migrations(tmp_path: Path) -> None:
    path = tmp_path / "data" / "db.sqlite3"
    async with Database.open(path) as db:
        assert await db.schema_version() == 0
        version = await db.migrate()
        assert version == max(v for v, _, _ in load_migrations())
        assert await db.migrate() == version  # idempotent
        assert present(await db.fetchone("PRAGMA journal_mode"))[0] == "wal"
        assert present(await db.fetchone("PRAGMA synchronous"))[0] == 1  # NORMAL
        assert present(await db.fetchone("PRAGMA foreign_keys"))[0] == 1
        assert present(await db.fetchone("PRAGMA busy_timeout"))[0] == 5000
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


async def test_action_is_committed_and_idempotent_and_turn_is_atomic(store: Store, database_url: str) -> None:
    c = await store.campaigns.create(guild_id=1, channel_id=2, title="T", setting="", tone="", created_by=3)
    a, new = await store.story.add_action(campaign_id=c.id, turn=1, author_id=3, author_name="bob",
                                         character_name=None, content="I look", token_count=3,
                                         platform_message_id=77)
    again, new_again = await store.story.add_action(campaign_id=c.id, turn=1, author_id=3,
                                                     author_name="bob", character_name=None,
                                                     content="I look", token_count=3, platform_message_id=77)
    assert new and not new_again and again.id == a.id
    # visible to a second, independent connection right away: committed before returning
    async with Database.open(database_url) as other:
        row = await other.fetchone("SELECT state FROM story_messages WHERE id = ?", (a.id,))
        assert row is not None and tuple(row) == ("pending",)
        roll = RollRecord(None, c.id, 1, None, "DM", None, "1d20", "x", 11, "1d20 (11) = `11`", 0.0, True)
        await store.story.complete_turn(campaign_id=c.id, turn=1, action_ids=[a.id], dm_content="You see a door.",
                                        dm_token_count=5, rolls=[roll], notes=[("Dice rolled: 1d20 = 11", 8)])
        states = [tuple(r) for r in await other.fetchall("SELECT role, state FROM story_messages ORDER BY id")]
        assert states == [("player", "answered"), ("system", "answered"), ("dm", "answered")]
        assert [tuple(r) for r in await other.fetchall("SELECT turn FROM campaigns")] == [(1,)]
        assert [tuple(r) for r in await other.fetchall("SELECT COUNT(*) FROM dice_rolls")] == [(1,)]
    assert await store.campaigns.with_pending_actions() == []
    assert await store.story.undo_turn(c.id, 1) == 3
    assert present(await store.campaigns.get(c.id)).turn == 0


async def test_one_live_campaign_per_channel(store: Store) -> None:
    from bot.store.errors import CampaignExists

    c = await store.campaigns.create(guild_id=1, channel_id=2, title="A", setting="", tone="", created_by=3)
    with pytest.raises(CampaignExists) as raised:
        await store.campaigns.create(guild_id=1, channel_id=2, title="B", setting="", tone="", created_by=3)
    assert raised.value.channel_id == 2
    await store.campaigns.set_status(c.id, "ended")
    await store.campaigns.create(guild_id=1, channel_id=2, title="B", setting="", tone="", created_by=3)


async def test_party_conflicts_are_domain_errors_with_their_values(store: Store) -> None:
    from bot.store.errors import AlreadyInParty, NameTaken

    c = await store.campaigns.create(guild_id=1, channel_id=2, title="A", setting="", tone="", created_by=3)
    sheet: dict[str, Any] = dict(campaign_id=c.id, char_class="Rogue", ancestry="Elf")
    aria = await store.characters.create(player_id=10, player_name="ann", name="Aria", **sheet)
    with pytest.raises(AlreadyInParty) as twice:
        await store.characters.create(player_id=10, player_name="ann", name="Other", **sheet)
    assert twice.value.character_name == "Aria"
    with pytest.raises(NameTaken) as taken:
        await store.characters.create(player_id=11, player_name="bob", name="ARIA", **sheet)
    assert taken.value.name == "ARIA"
    borin = await store.characters.create(player_id=11, player_name="bob", name="Borin", **sheet)
    with pytest.raises(NameTaken):
        await store.characters.update(borin.id, name="aria")
    assert present(await store.characters.get(aria.id)).name == "Aria"


async def test_complete_turn_is_all_or_nothing(store: Store) -> None:
    c = await store.campaigns.create(guild_id=1, channel_id=2, title="T", setting="", tone="", created_by=3)
    a, _ = await store.story.add_action(campaign_id=c.id, turn=1, author_id=3, author_name="bob",
                                       character_name=None, content="I look", token_count=3)
    broken = RollRecord(None, c.id, 1, None, "DM", None, "1d20", "x", None, "?", 0.0, True)  # type: ignore[arg-type]  # total=None on purpose: violates NOT NULL
    with pytest.raises(IntegrityError):  # the roll fails after the reply was inserted...
        await store.story.complete_turn(campaign_id=c.id, turn=1, action_ids=[a.id], dm_content="A door.",
                                        dm_token_count=2, rolls=[broken], notes=[("Dice rolled: ?", 3)])
    # ...so nothing of the turn remains: the action is still pending, no reply, no note, no new turn
    assert [(m.role, m.state) for m in await store.story.transcript(c.id)] == [("player", "pending")]
    assert present(await store.campaigns.get(c.id)).turn == 0
    assert [x.id for x in await store.campaigns.with_pending_actions()] == [c.id]


async def test_retry_replaces_the_reply_and_its_notes_in_one_transaction(store: Store) -> None:
    c = await store.campaigns.create(guild_id=1, channel_id=2, title="T", setting="", tone="", created_by=3)
    a, _ = await store.story.add_action(campaign_id=c.id, turn=1, author_id=3, author_name="bob",
                                       character_name=None, content="I look", token_count=3)
    notes, dm = await store.story.complete_turn(campaign_id=c.id, turn=1, action_ids=[a.id], dm_content="Old.",
                                                dm_token_count=1, notes=[("Dice rolled: 1d20 = 3", 5)])
    new_notes, new_dm = await store.story.complete_turn(
        campaign_id=c.id, turn=1, action_ids=[], dm_content="New.", dm_token_count=1,
        notes=[("Dice rolled: 1d20 = 17", 5)], replaces_dm_message_id=dm.id,
        replaces_message_ids=[n.id for n in notes])
    live = [(m.role, m.content) for m in await store.story.transcript(c.id)]
    assert live == [("player", "I look"), ("system", "Dice rolled: 1d20 = 17"), ("dm", "New.")]
    assert present(await store.campaigns.get(c.id)).turn == 1
    assert await store.story.undo_turn(c.id, 1) == 3  # the replaced ones were already undone


async def test_a_writer_in_another_process_makes_us_wait_not_fail(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "db.sqlite3"
    async with Database.open(path, migrate=True) as db:
        store = Store(db)
        c = await store.campaigns.create(guild_id=1, channel_id=2, title="T", setting="", tone="", created_by=3)
        other = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # e.g. `python -m bot migrate` or a backup holding the write lock
        other.execute("UPDATE campaigns SET title = 'held' WHERE id = ?", (c.id,))
        threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        stored, new = await store.story.add_action(campaign_id=c.id, turn=1, author_id=3, author_name="bob",
                                                  character_name=None, content="I wait", token_count=2)
        assert new and loop.time() - started >= 0.25  # waited for the lock (busy timeout), then wrote
        assert present(await store.campaigns.get(c.id)).title == "held"
        other.close()


async def test_a_schema_1_database_upgrades_without_losing_its_story(tmp_path: Path) -> None:
    """A database made by the first release (migration 0001 only, with a summarised story) keeps
    every message and its summary through 0002 (drops ``summarized``) and 0003 (world memory), and
    its old story is searchable."""
    import shutil

    first_only = tmp_path / "first"
    first_only.mkdir()
    shutil.copy(Path(__file__).resolve().parents[2] / "migrations" / "0001_initial.sql", first_only)
    path = tmp_path / "db.sqlite3"
    async with Database.open(path) as db:
        assert await db.migrate(first_only) == 1
        await db.execute("INSERT INTO campaigns (id, guild_id, channel_id, title, status, created_by, created_at)"
                         " VALUES (1, 7, 70, 'Old', 'active', 1, 0)")
        await db.execute("INSERT INTO story_messages (campaign_id, turn, role, author_name, content, token_count,"
                         " state, created_at, summarized) VALUES (1, 1, 'dm', 'DM', 'The old tale of Marta.', 5,"
                         " 'answered', 0, 1)")
        await db.execute("INSERT INTO summaries (campaign_id, content, token_count, through_message_id, updated_at)"
                         " VALUES (1, 'Long ago, Marta.', 4, 1, 0)")
    async with Database.open(path, migrate=True) as db:
        assert await db.schema_version() == 14
        story = await Store(db).story.transcript(1)
        assert [(m.role, m.content, m.token_count) for m in story] == [("dm", "The old tale of Marta.", 5)]
        summary = await Store(db).summaries.get(1)
        assert summary is not None and (summary.content, summary.through_message_id) == ("Long ago, Marta.", 1)
        hits = await Store(db).search.search(1, "marta")  # the old story is in the new full-text index
        assert [(h.source, h.ref_id) for h in hits] == [("story", 1)]
        columns = [r["name"] for r in await db.fetchall("PRAGMA table_info(story_messages)")]
        assert "summarized" not in columns


def test_store_errors_that_escape_the_core_show_players_no_internals() -> None:
    from bot.store.errors import TRY_AGAIN, NameTaken, RecordMissing

    assert RecordMissing("no character 5").player_message == TRY_AGAIN
    assert NameTaken("Aria").player_message == TRY_AGAIN
    assert str(RecordMissing("no character 5")) == "no character 5"  # the log keeps the detail


async def test_both_backends_migrate_to_the_same_logical_schema(tmp_path: Path, postgres_server: Any) -> None:
    async with Database.open(tmp_path / "db.sqlite3", migrate=True) as lite, \
            Database.open(await postgres_server.fresh_database(), migrate=True) as pg:
        assert await lite.schema_version() == await pg.schema_version() == 14
        sqlite_schema, postgres_schema = await lite.describe(), await pg.describe()
    assert sorted(sqlite_schema) == sorted(postgres_schema)
    for table, info in sqlite_schema.items():
        assert info.columns == postgres_schema[table].columns, table
        assert info.indexes == postgres_schema[table].indexes, table
        assert info.foreign_keys == postgres_schema[table].foreign_keys, table
    assert sqlite_schema["lore_entries"].indexes["lore_entries_unique_name"].columns == ("campaign_id", "lower(name)")


async def test_a_campaign_lease_has_one_holder_at_a_time(store: Store) -> None:
    c = await store.campaigns.create(guild_id=1, channel_id=2, title="T", setting="", tone="", created_by=3)
    assert await store.leases.acquire(c.id, "a", 15, now=1000)
    assert not await store.leases.acquire(c.id, "b", 15, now=1010)  # a's runs until 1015
    assert await store.leases.acquire(c.id, "a", 15, now=1010)  # renewed until 1025
    assert not await store.leases.acquire(c.id, "b", 15, now=1020)
    assert await store.leases.acquire(c.id, "b", 15, now=1026)  # a's expired: b takes it
    assert await store.leases.holder(c.id, now=1030) == "b"
    await store.leases.release(c.id, "a")  # not a's any more: nothing happens
    assert await store.leases.holder(c.id, now=1030) == "b"
    assert not await store.leases.take_over(c.id, "a", "c", 15, now=1031)  # only from the holder named
    assert await store.leases.take_over(c.id, "b", "c", 15, now=1031)
    await store.leases.release(c.id, "c")
    assert await store.leases.holder(c.id, now=1032) is None
    # racing for a free lease: exactly one of many wins
    wins = await asyncio.gather(*(store.leases.acquire(c.id, f"p{i}", 15, now=2000) for i in range(8)))
    assert sum(wins) == 1


async def test_a_daily_budget_is_one_budget_across_processes(store: Store, database_url: str) -> None:
    from dataclasses import replace

    from bot.config import load_settings
    from bot.game.configs import ServerConfigs
    from bot.game.errors import BudgetExhausted
    from bot.game.ledger import UsageLedger
    from bot.llm.types import ChatResult, Usage
    from bot.store import default_guild_config

    defaults = replace(default_guild_config(load_settings(None)), guild_daily_token_budget=1000)
    c = await store.campaigns.create(guild_id=5, channel_id=6, title="T", setting="", tone="", created_by=3)
    call = ChatResult("ok", usage=Usage(400, 100), model="gpt-4o-mini")
    async with Database.open(database_url) as elsewhere:  # a second process's own connection(s)
        here = UsageLedger(store, ServerConfigs(store, defaults))
        there = UsageLedger(Store(elsewhere), ServerConfigs(Store(elsewhere), defaults))
        await here.record(c, [7], "turn", [call])
        await there.check_budget(5, [7])  # 500 of 1,000 spent: both may go on
        await there.record(c, [8], "turn", [call])
        with pytest.raises(BudgetExhausted):
            await here.check_budget(5, [7])  # the other process's 500 count here too
