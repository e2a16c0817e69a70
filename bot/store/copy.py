"""Moving a bot's whole history between databases: ``python -m bot db copy --from ... --to ...``.

Typically from the embedded SQLite file to PostgreSQL when a bot outgrows one machine (either way
works). The copy:

1. opens the source without changing it and requires its schema to be the shipped one (``migrate``
   it first otherwise);
2. migrates the destination and refuses to write into it unless every table of the bot is empty
   (``CopyRefused``), so a copy never mixes two histories;
3. copies every table in foreign-key order, rows in primary-key order, in ONE transaction on the
   destination (a failed copy leaves it empty), and moves PostgreSQL's identity counters past the
   copied ids;
4. verifies each table: the row count and a SHA-256 checksum over its rows (every column, in
   primary-key order, values in one canonical JSON form), read back from both sides.

Leases (``campaign_leases``) are the running processes' business and are not copied.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.store.db import Database, load_migrations

BATCH_ROWS = 2000
TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (  # foreign-key order, and each table's key for ORDER BY
    ("guild_config", ("guild_id",)),
    ("campaigns", ("id",)),
    ("characters", ("id",)),
    ("story_messages", ("id",)),
    ("summaries", ("campaign_id",)),
    ("dice_rolls", ("id",)),
    ("model_usage", ("id",)),
    ("chapters", ("id",)),
    ("lore_entries", ("id",)),
    ("lore_revisions", ("id",)),
    ("encounters", ("campaign_id",)),
    ("encounter_snapshots", ("id",)),
    ("refused_messages", ("id",)),
    ("guard_interventions", ("campaign_id", "rule")),
    ("campaign_safety", ("campaign_id",)),
)
IDENTITY_TABLES = tuple(t for t, key in TABLES if key == ("id",))


class CopyRefused(Exception):
    """The copy cannot start: the destination holds rows, or the source's schema is not current."""


@dataclass(frozen=True, slots=True)
class TableCopy:
    """One table's copy: rows copied, and the checksum both sides agree on (hex SHA-256)."""

    table: str
    rows: int
    checksum: str


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What ``copy_database`` did: each table, and the seconds it took (wall clock)."""

    tables: tuple[TableCopy, ...]
    seconds: float

    @property
    def rows(self) -> int:
        """Rows copied in all."""
        return sum(t.rows for t in self.tables)


def _canonical(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return repr(value)
    return value


async def table_checksum(db: Database, table: str, key: Sequence[str], columns: Sequence[str]) -> tuple[int, str]:
    """``(rows, hex SHA-256)`` of a table: its ``columns`` (sorted names) of every row in ``key``
    order, each row as canonical JSON (integers, ``repr`` of floats, strings, nulls)."""
    digest = hashlib.sha256()
    count = 0
    order = ", ".join(key)
    offset = 0
    while True:
        rows = await db.fetchall(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order} LIMIT ? OFFSET ?",
                                 (BATCH_ROWS, offset))
        for row in rows:
            digest.update(json.dumps([_canonical(v) for v in row], ensure_ascii=False).encode())
            digest.update(b"\n")
        count += len(rows)
        offset += len(rows)
        if len(rows) < BATCH_ROWS:
            return count, digest.hexdigest()


async def copy_database(source: Database, destination: Database, *,
                        progress: Callable[[str, int], None] | None = None) -> CopyReport:
    """Copy everything from ``source`` into ``destination`` (see the module docstring).

    Args:
        source: an open database at the shipped schema version (read only).
        destination: an open database; migrated here, and it must be empty.
        progress: called with ``(table, rows copied so far)`` after each batch.
    Returns:
        A ``CopyReport`` whose checksums match on both sides.
    Raises:
        CopyRefused: the destination has rows, or the source's schema is older or newer than this bot's.
        RuntimeError: the verification found a table that differs (the destination keeps the copy
            for inspection; nothing in the source changed).
    """
    started = time.perf_counter()
    latest = max(v for v, _n, _s in load_migrations(dialect=source.dialect))
    version = await source.schema_version()
    if version != latest:
        raise CopyRefused(f"the source database has schema {version}, this bot's is {latest}: run "
                          "`python -m bot migrate` on it first (or use the bot version that wrote it)")
    await destination.migrate()
    for table, _key in TABLES:
        row = await destination.fetchone(f"SELECT COUNT(*) FROM {table}")
        if row is not None and int(row[0]):
            raise CopyRefused(f"the destination is not empty ({table} has {int(row[0])} rows): copy only into a "
                              "new, empty database")
    plan = []
    source_schema, dest_schema = await source.describe(), await destination.describe()
    for table, key in TABLES:
        source_columns = sorted(source_schema[table].columns)
        dest_columns = set(dest_schema[table].columns)
        missing = [c for c in source_columns if c not in dest_columns]
        if missing:
            raise CopyRefused(f"the destination's {table} lacks columns {missing}")
        plan.append((table, key, source_columns))
    async with destination.transaction() as tx:
        for table, key, columns in plan:
            insert = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})")
            order = ", ".join(key)
            offset = copied = 0
            while True:
                rows = await source.fetchall(
                    f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order} LIMIT ? OFFSET ?",
                    (BATCH_ROWS, offset))
                if rows:
                    await tx.executemany(insert, [tuple(r) for r in rows])
                copied += len(rows)
                offset += len(rows)
                if progress is not None:
                    progress(table, copied)
                if len(rows) < BATCH_ROWS:
                    break
        if destination.dialect == "postgresql":
            for table in IDENTITY_TABLES:
                await tx.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                                 f" COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)")
    report = []
    for table, key, columns in plan:
        ours = await table_checksum(source, table, key, columns)
        theirs = await table_checksum(destination, table, key, columns)
        if ours != theirs:
            raise RuntimeError(f"verification failed for {table}: source {ours[0]} rows {ours[1][:12]},"
                               f" destination {theirs[0]} rows {theirs[1][:12]}")
        report.append(TableCopy(table, ours[0], ours[1]))
    return CopyReport(tuple(report), time.perf_counter() - started)
