"""The SQLite backend: one aiosqlite connection, pragmas, and transactions that never interleave.

One ``SqliteDatabase`` wraps one aiosqlite connection for the whole process. aiosqlite runs every
call on one worker thread in order, but it does not keep *transactions* apart: two coroutines each
doing ``BEGIN ... several statements ... COMMIT`` on the same connection would interleave their
statements inside one another's transaction. ``transaction()`` therefore holds an asyncio lock for
the whole transaction, and single statements outside a transaction take the same lock, so nothing
ever runs inside someone else's open transaction.

Pragmas:
- ``journal_mode=WAL``: readers do not block the writer; a crash never corrupts the file.
- ``synchronous=NORMAL``: with WAL this means a committed transaction survives a crash or kill of the
  bot process (the OS still has the write), but the last transactions may be lost on a power cut or
  OS crash, because the WAL is not fsynced on every commit. That is the trade the bot makes for speed.
- ``foreign_keys=ON``; ``busy_timeout=5000`` ms, so another process (a backup, ``python -m bot
  migrate``, a second bot process) holding the lock briefly makes us wait instead of failing.

Dialect: the store's ``GREATEST(a, b)`` is SQLite's two-argument ``MAX(a, b)``; everything else it
writes SQLite reads as is (3.39+: ``IS NOT DISTINCT FROM``, ``RETURNING``, upserts).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from bot.store.db import (
    ColumnInfo,
    Database,
    DatabaseUnavailable,
    IndexInfo,
    IntegrityError,
    Row,
    TableInfo,
    index_columns,
    logical_type,
)

BUSY_TIMEOUT_MS = 5000
_GREATEST = re.compile(r"\bGREATEST\(", re.IGNORECASE)
_FULL_TEXT = re.compile(r"_fts(_|$)")


def sqlite_sql(sql: str) -> str:
    """The store's SQL in SQLite's words (``GREATEST(`` -> ``MAX(``)."""
    return _GREATEST.sub("MAX(", sql)


class SqliteTx:
    """The statements of one SQLite transaction (``bot.store.db.Tx``)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the rows it changed. Raises ``IntegrityError`` for a constraint."""
        try:
            cursor = await self.conn.execute(sqlite_sql(sql), params)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        count = cursor.rowcount
        await cursor.close()
        return int(count or 0)

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int | None:
        """Run one INSERT; the new row's id or None (nothing inserted)."""
        rows = await self.fetchall(f"{sql} RETURNING id", params)
        return int(rows[0][0]) if rows else None

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row of a query, or None."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """All rows of a query (one round trip to the database thread)."""
        try:
            return list(await self.conn.execute_fetchall(sqlite_sql(sql), params))
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """One statement for many parameter rows."""
        try:
            await self.conn.executemany(sqlite_sql(sql), rows)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc


class SqliteDatabase(Database):
    """One aiosqlite connection with a transaction lock (see the module docstring)."""

    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.target = str(path)
        self._lock = asyncio.Lock()
        self._tx = SqliteTx(conn)

    @classmethod
    async def connect_path(cls, path: Path | str, *, read_only: bool = False) -> SqliteDatabase:
        """Open ``path`` (creating its folders; ``":memory:"`` for a database in memory); with
        ``read_only``, a second connection to an existing file that can only read (WAL: it reads
        while another connection writes).

        Raises:
            DatabaseUnavailable: the file cannot be opened or is not a database.
        """
        p = Path(path)
        try:
            if read_only:
                conn = await aiosqlite.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
                conn.row_factory = aiosqlite.Row
                await conn.execute("PRAGMA query_only=ON")
                await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                return cls(conn, p)
            if str(path) != ":memory:":
                p.parent.mkdir(parents=True, exist_ok=True)
            conn = await aiosqlite.connect(str(path), isolation_level=None)  # autocommit; we BEGIN ourselves
            conn.row_factory = aiosqlite.Row
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        except (sqlite3.Error, OSError) as exc:
            raise DatabaseUnavailable(f"SQLite database {path}: {exc}") from exc
        return cls(conn, p)

    async def close(self) -> None:
        """Close the connection (waits for a running transaction to finish)."""
        async with self._lock:
            await self.conn.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteTx]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` under the lock; an exception rolls back and propagates."""
        async with self._lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._tx
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            else:
                await self.conn.execute("COMMIT")

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement, committed (autocommit: no BEGIN for a single statement)."""
        async with self._lock:
            return await self._tx.execute(sql, params)

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int | None:
        """One INSERT, committed; the new row's id or None."""
        async with self._lock:
            return await self._tx.insert(sql, params)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """First row of a query, or None."""
        async with self._lock:
            return await self._tx.fetchone(sql, params)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """All rows of a query."""
        async with self._lock:
            return await self._tx.fetchall(sql, params)

    async def server_version(self) -> str:
        """``SQLite <version>``."""
        row = await self.fetchone("SELECT sqlite_version()")
        return f"SQLite {row[0] if row else sqlite3.sqlite_version}"

    async def check_writable(self) -> None:
        """``BEGIN IMMEDIATE`` and roll back. Raises ``DatabaseUnavailable`` (read-only, locked)."""
        async with self._lock:
            try:
                await self.conn.execute("BEGIN IMMEDIATE")
                await self.conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                raise DatabaseUnavailable(f"SQLite database {self.path}: {exc}") from exc

    async def describe(self) -> dict[str, TableInfo]:
        """Tables, columns, indexes and foreign keys from SQLite's catalogue (FTS5 tables left out)."""
        tables = [r[0] for r in await self.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        out: dict[str, TableInfo] = {}
        for table in tables:
            if _FULL_TEXT.search(table):
                continue
            columns = {r["name"]: ColumnInfo(logical_type(r["type"]), bool(r["notnull"]) or bool(r["pk"]),
                                             bool(r["pk"]))
                       for r in await self.fetchall(f"PRAGMA table_info({table})")}
            indexes: dict[str, IndexInfo] = {}
            for ix in await self.fetchall(f"PRAGMA index_list({table})"):
                if ix["origin"] == "pk":
                    continue
                sql_row = await self.fetchone("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?",
                                              (ix["name"],))
                cols = tuple(_index_columns(sql_row[0])) if sql_row and sql_row[0] else tuple(
                    r["name"] for r in await self.fetchall(f"PRAGMA index_info({ix['name']})"))
                name = ix["name"] if sql_row and sql_row[0] else f"{table}_unique_{'_'.join(cols)}"
                indexes[name] = IndexInfo(bool(ix["unique"]), cols, bool(ix["partial"]))
            fks = frozenset((r["from"], r["table"], r["to"] or "id")
                            for r in await self.fetchall(f"PRAGMA foreign_key_list({table})"))
            out[table] = TableInfo(columns, indexes, fks)
        return out


def _index_columns(create_sql: str) -> list[str]:
    """The column list of a ``CREATE INDEX`` statement, normalised: ``name COLLATE NOCASE`` is
    ``lower(name)`` (how PostgreSQL's index spells the same rule)."""
    out = []
    for col in index_columns(create_sql[create_sql.index("(") + 1:]):
        nocase = re.match(r"^(\w+)\s+COLLATE\s+NOCASE$", col, re.IGNORECASE)
        out.append(f"lower({nocase.group(1)})" if nocase else col)
    return out
