"""The PostgreSQL backend: an asyncpg pool behind the store's one API (``bot.store.db``).

For deployments beyond one machine: several bot processes (shards) share one PostgreSQL database,
with the backups, replicas and point-in-time recovery operators already run. Each statement outside
a transaction takes a pooled connection and commits; ``transaction()`` holds one connection for the
block (READ COMMITTED, PostgreSQL's default: every statement sees what other processes committed
before it, so a daily budget summed from ``model_usage`` is one budget across processes).

Dialect: the store writes ``?`` placeholders, which become ``$1, $2, ...`` here (outside quoted
literals); everything else it writes PostgreSQL reads as is. Full-text search has its own SQL
(``bot.store.search``). Durability: a committed transaction is on disk (``synchronous_commit`` is
PostgreSQL's default, on), so a player's action survives ``kill -9`` of the bot and of the server.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import asyncpg

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
    redact,
)

CONNECT_TIMEOUT_S = 10.0
_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\?")


@lru_cache(maxsize=2048)
def postgres_sql(sql: str) -> str:
    """The store's SQL in PostgreSQL's words: each ``?`` outside a quoted literal becomes ``$n``."""
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if match.group(0) != "?":
            return match.group(0)
        count += 1
        return f"${count}"

    return _PLACEHOLDER.sub(number, sql)


async def _no_reset(conn: Any) -> None:
    """What a connection needs when it goes back to the pool: nothing. asyncpg's default reset
    (unlock advisory locks, close cursors, UNLISTEN, RESET ALL) costs a round trip per statement, and
    the store keeps no session state (no advisory locks, cursors, listeners or SET)."""


def _integrity(exc: asyncpg.PostgresError) -> IntegrityError | None:
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(str(exc))
    return None


class PostgresTx:
    """The statements of one PostgreSQL transaction (``bot.store.db.Tx``) on one connection."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the rows it changed (from the command tag, e.g. ``UPDATE 3``)."""
        try:
            status = await self.conn.execute(postgres_sql(sql), *params)
        except asyncpg.PostgresError as exc:
            raise (_integrity(exc) or exc) from exc
        last = str(status).rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int | None:
        """Run one INSERT ... RETURNING id; the new id, or None when nothing was inserted."""
        row = await self.fetchone(f"{sql} RETURNING id", params)
        return int(row[0]) if row is not None else None

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row of a query, or None."""
        try:
            return await self.conn.fetchrow(postgres_sql(sql), *params)
        except asyncpg.PostgresError as exc:
            raise (_integrity(exc) or exc) from exc

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """All rows of a query."""
        try:
            return list(await self.conn.fetch(postgres_sql(sql), *params))
        except asyncpg.PostgresError as exc:
            raise (_integrity(exc) or exc) from exc

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """One statement for many parameter rows (asyncpg pipelines them)."""
        batch = [tuple(r) for r in rows]
        if not batch:
            return
        try:
            await self.conn.executemany(postgres_sql(sql), batch)
        except asyncpg.PostgresError as exc:
            raise (_integrity(exc) or exc) from exc


class PostgresDatabase(Database):
    """An asyncpg pool (see the module docstring). Open with ``Database.open("postgresql://...")``."""

    dialect = "postgresql"

    def __init__(self, pool: Any, url: str) -> None:
        self.pool = pool
        self.target = redact(url)

    @classmethod
    async def connect_url(cls, url: str, *, pool_size: int = 10) -> PostgresDatabase:
        """Create the pool (``pool_size`` connections at most, at least one open at once).

        Raises:
            DatabaseUnavailable: the server refused or is unreachable, the password is wrong, the
                database does not exist; the message names ``DATABASE_URL`` and never the password.
        """
        where = redact(url)
        try:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=max(1, pool_size),
                                             timeout=CONNECT_TIMEOUT_S, command_timeout=60, reset=_no_reset)
        except asyncpg.InvalidPasswordError:
            raise DatabaseUnavailable(f"DATABASE_URL {where}: the server refused the user name or password") from None
        except asyncpg.InvalidCatalogNameError:
            raise DatabaseUnavailable(f"DATABASE_URL {where}: that database does not exist on the server") from None
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            reason = "no answer in time" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
            raise DatabaseUnavailable(f"DATABASE_URL {where}: cannot connect ({reason})") from None
        except (asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            text = redact(str(exc)).replace(url, where)
            raise DatabaseUnavailable(f"DATABASE_URL {where}: {type(exc).__name__}: {text}") from None
        if pool is None:  # pragma: no cover - create_pool returns a pool or raises
            raise DatabaseUnavailable(f"DATABASE_URL {where}: no connection pool")
        return cls(pool, url)

    async def close(self) -> None:
        """Close the pool (waits for connections in use to be released)."""
        await self.pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTx]:
        """One connection, ``BEGIN`` ... ``COMMIT``; an exception rolls back and propagates."""
        async with self.pool.acquire() as conn, conn.transaction():
            yield PostgresTx(conn)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement on a pooled connection, committed."""
        async with self.pool.acquire() as conn:
            return await PostgresTx(conn).execute(sql, params)

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int | None:
        """One INSERT, committed; the new row's id or None."""
        async with self.pool.acquire() as conn:
            return await PostgresTx(conn).insert(sql, params)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """First row of a query, or None."""
        async with self.pool.acquire() as conn:
            return await PostgresTx(conn).fetchone(sql, params)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """All rows of a query."""
        async with self.pool.acquire() as conn:
            return await PostgresTx(conn).fetchall(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """One statement for many rows on a pooled connection: asyncpg's ``executemany`` is atomic
        by itself, so no BEGIN/COMMIT round trips."""
        async with self.pool.acquire() as conn:
            await PostgresTx(conn).executemany(sql, rows)

    async def run_script(self, tx: Any, sql: str) -> None:
        """A migration script as one multi-statement execute (PostgreSQL parses its own dialect)."""
        await tx.conn.execute(sql)

    async def server_version(self) -> str:
        """``PostgreSQL <version>`` (``server_version``)."""
        row = await self.fetchone("SHOW server_version")
        return f"PostgreSQL {row[0] if row else '?'}"

    async def check_writable(self) -> None:
        """Start a read-write transaction and roll it back. Raises ``DatabaseUnavailable`` (a read-only
        replica, a refused connection)."""
        try:
            async with self.pool.acquire() as conn:
                readonly = await conn.fetchval("SHOW transaction_read_only")
        except (asyncpg.PostgresError, OSError) as exc:
            raise DatabaseUnavailable(f"DATABASE_URL {self.target}: {exc}") from None
        if readonly == "on":
            raise DatabaseUnavailable(f"DATABASE_URL {self.target}: the server is read-only (a replica?)")

    async def describe(self) -> dict[str, TableInfo]:
        """Tables, columns, indexes and foreign keys of the ``public`` schema from PostgreSQL's
        catalogue (the full-text GIN indexes left out)."""
        out: dict[str, TableInfo] = {}
        tables = [r[0] for r in await self.fetchall(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            " AND table_type = 'BASE TABLE' ORDER BY table_name")]
        for table in tables:
            pk = {r[0] for r in await self.fetchall(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
                " AND a.attnum = ANY(i.indkey) WHERE i.indrelid = ?::regclass AND i.indisprimary", (table,))}
            columns = {r[0]: ColumnInfo(logical_type(r[1]), r[2] == "NO", r[0] in pk) for r in await self.fetchall(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name = ? ORDER BY ordinal_position", (table,))}
            indexes: dict[str, IndexInfo] = {}
            for name, unique, partial, definition in await self.fetchall(
                    "SELECT c.relname, i.indisunique, i.indpred IS NOT NULL, pg_get_indexdef(i.indexrelid)"
                    " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                    " WHERE i.indrelid = ?::regclass AND NOT i.indisprimary", (table,)):
                if " USING gin " in definition:
                    continue  # full-text search: each backend's own
                cols = _index_columns(definition)
                if not name.endswith("_key"):
                    indexes[name] = IndexInfo(bool(unique), cols, bool(partial))
                else:  # a UNIQUE (...) table constraint: named as SQLite's autoindex is described
                    indexes[f"{table}_unique_{'_'.join(cols)}"] = IndexInfo(True, cols, False)
            fks = frozenset((r[0], r[1], r[2]) for r in await self.fetchall(
                "SELECT kcu.column_name, ccu.table_name, ccu.column_name FROM information_schema.table_constraints tc"
                " JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name"
                " JOIN information_schema.constraint_column_usage ccu ON ccu.constraint_name = tc.constraint_name"
                " WHERE tc.table_name = ? AND tc.constraint_type = 'FOREIGN KEY'", (table,)))
            out[table] = TableInfo(columns, indexes, fks)
        return out


def _index_columns(definition: str) -> tuple[str, ...]:
    """The column list of ``pg_get_indexdef``'s ``CREATE INDEX ... USING btree (a, lower(b)) WHERE ...``."""
    cols = index_columns(definition[definition.index("USING btree (") + len("USING btree ("):])
    return tuple(re.sub(r"\(\((\w+)\)::text\)", r"(\1)", c) for c in cols)
