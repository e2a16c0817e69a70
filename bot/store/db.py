"""The SQLite connection: pragmas, numbered migrations, and transactions that never interleave.

One ``Database`` wraps one aiosqlite connection for the whole process. aiosqlite runs every call on
one worker thread in order, but it does not keep *transactions* apart: two coroutines each doing
``BEGIN ... several statements ... COMMIT`` on the same connection would interleave their statements
inside one another's transaction. ``Database.transaction()`` therefore holds an asyncio lock for the
whole transaction, and single statements outside a transaction (``execute``/``fetch*``) take the
same lock, so nothing ever runs inside someone else's open transaction.

Pragmas:
- ``journal_mode=WAL``: readers do not block the writer; a crash never corrupts the file.
- ``synchronous=NORMAL``: with WAL this means a committed transaction survives a crash or kill of the
  bot process (the OS still has the write), but the last transactions may be lost on a power cut or
  OS crash, because the WAL is not fsynced on every commit. That is the trade the bot makes for speed.
- ``foreign_keys=ON``; ``busy_timeout=5000`` ms, so another process (a backup, ``python -m bot
  migrate``) holding the lock briefly makes us wait instead of failing.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

log = logging.getLogger(__name__)

MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
BUSY_TIMEOUT_MS = 5000


class MigrationError(RuntimeError):
    """A migration file is misnamed, duplicated, or failed to apply (its transaction was rolled back)."""


def load_migrations(folder: Path | None = None) -> list[tuple[int, str, str]]:
    """Read ``NNNN_name.sql`` files in version order: ``[(version, filename, sql), ...]``.

    ``folder`` defaults to the ``migrations`` package shipped with the bot.

    Raises:
        MigrationError: a file that does not match ``NNNN_name.sql``, or two files with one number.
    """
    if folder is None:
        root = resources.files("migrations")
        entries = [(p.name, p.read_text(encoding="utf-8")) for p in root.iterdir()
                   if p.name.endswith(".sql")]
    else:
        entries = [(p.name, p.read_text(encoding="utf-8")) for p in folder.glob("*.sql")]
    out: dict[int, tuple[int, str, str]] = {}
    for name, sql in entries:
        match = MIGRATION_NAME.match(name)
        if not match:
            raise MigrationError(f"migration file {name!r} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in out:
            raise MigrationError(f"two migrations numbered {version:04d}: {out[version][1]}, {name}")
        out[version] = (version, name, sql)
    return [out[v] for v in sorted(out)]


def split_statements(sql: str) -> list[str]:
    """Split a migration script into complete statements (uses ``sqlite3.complete_statement``)."""
    statements: list[str] = []
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            stmt = buffer.strip()
            if stmt and not all(ln.strip().startswith("--") or not ln.strip() for ln in stmt.splitlines()):
                statements.append(stmt)
            buffer = ""
    if buffer.strip() and not all(ln.strip().startswith("--") or not ln.strip()
                                  for ln in buffer.splitlines()):
        raise MigrationError("migration ends with an incomplete statement")
    return statements


class Database:
    """One aiosqlite connection with a transaction lock. Open it with ``Database.open(path)``."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self._lock = asyncio.Lock()
        self._in_tx = False

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path | str, *, migrate: bool = False) -> AsyncIterator[Database]:
        """Open (creating folders and file as needed) and close on exit.

        Args:
            path: the SQLite file, or ``":memory:"``.
            migrate: apply pending migrations before yielding.
        Raises:
            sqlite3.Error: the file cannot be opened or is not a database.
            MigrationError: a migration failed.
        """
        db = await cls.connect(path)
        try:
            if migrate:
                await db.migrate()
            yield db
        finally:
            await db.close()

    @classmethod
    async def connect(cls, path: Path | str) -> Database:
        """Open without a context manager; the caller must ``await db.close()``."""
        p = Path(path)
        if str(path) != ":memory:":
            p.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(str(path), isolation_level=None)  # autocommit; we BEGIN ourselves
        conn.row_factory = aiosqlite.Row
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return cls(conn, p)

    async def close(self) -> None:
        """Close the connection (waits for a running transaction to finish)."""
        async with self._lock:
            await self.conn.close()

    # --- transactions ----------------------------------------------------------------------------
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """``async with db.transaction() as conn:`` runs the block as one ``BEGIN IMMEDIATE`` ...
        ``COMMIT``; an exception rolls it back and propagates. No other coroutine's statement runs
        on this connection until it ends. Not re-entrant: do not nest."""
        async with self._lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            self._in_tx = True
            try:
                yield self.conn
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            else:
                await self.conn.execute("COMMIT")
            finally:
                self._in_tx = False

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run one statement in its own transaction; returns ``lastrowid`` (for INSERT) or rowcount."""
        async with self._lock:
            if sql.lstrip()[:6].upper() == "INSERT":  # one round trip to the database thread
                row = await self.conn.execute_insert(sql, params)
                return int(row[0]) if row and row[0] is not None else 0
            cursor = await self.conn.execute(sql, params)
            result = cursor.rowcount
            await cursor.close()
            return int(result or 0)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for many parameter rows, as one transaction."""
        async with self.transaction() as conn:
            await conn.executemany(sql, rows)

    async def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> aiosqlite.Row | None:
        """First row of a query, or None."""
        async with self._lock:  # execute_fetchall: one round trip to the database thread, not three
            rows = list(await self.conn.execute_fetchall(sql, params))
            return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[aiosqlite.Row]:
        """All rows of a query."""
        async with self._lock:
            rows = await self.conn.execute_fetchall(sql, params)
            return list(rows)

    # --- migrations ------------------------------------------------------------------------------
    async def schema_version(self) -> int:
        """The highest applied migration number (0 for a new database)."""
        async with self._lock:
            await self.conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")
            cursor = await self.conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            row = await cursor.fetchone()
            await cursor.close()
        return int(row[0]) if row else 0

    async def migrate(self, folder: Path | None = None) -> int:
        """Apply every migration newer than the recorded version, each in its own transaction, and
        record it. Returns the schema version afterwards.

        Raises:
            MigrationError: a migration failed; it was rolled back and later ones were not tried.
        """
        current = await self.schema_version()
        for version, name, sql in load_migrations(folder):
            if version <= current:
                continue
            try:
                async with self.transaction() as conn:
                    for statement in split_statements(sql):
                        await conn.execute(statement)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                        (version, name, time.time()))
            except sqlite3.Error as exc:
                raise MigrationError(f"migration {name} failed: {exc}") from exc
            log.info("applied migration %s", name)
            current = version
        return current
