"""The database behind the store: one API, two backends, numbered migrations for each.

``Database.open(target)`` picks the backend from ``target``: a file path (or ``sqlite:///path``)
opens SQLite (``bot.store.sqlite``, the embedded default); ``postgresql://user:pass@host:port/db``
opens PostgreSQL on an asyncpg pool (``bot.store.postgres``). The store's modules write their SQL
once, in the dialect both accept (``?`` placeholders, ``IS NOT DISTINCT FROM``, ``ON CONFLICT``,
``RETURNING``, ``GREATEST``), which each backend adapts; only full-text search differs
(``bot.store.search``: FTS5 and bm25 in SQLite, ``tsvector`` with GIN indexes in PostgreSQL).

Both backends give the same guarantees: every ``execute`` outside a transaction commits before it
returns; ``transaction()`` is one atomic unit (all or nothing, rolled back on any exception);
a unique or foreign-key violation raises ``IntegrityError``; an unreachable server raises
``DatabaseUnavailable`` naming ``DATABASE_URL`` but never its password.

Migrations: ``migrations/NNNN_name.sql`` for SQLite and ``migrations/postgres/NNNN_name.sql`` for
PostgreSQL, the same numbers giving the same logical schema (tables, columns, indexes, constraints:
``Database.describe``; a test compares them). Each is applied once, in its own transaction, and
recorded in ``schema_migrations``.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
Dialect = Literal["sqlite", "postgresql"]
Row = Any  # a row of either backend: ``row[0]`` and ``row["name"]`` both work (sqlite3.Row, asyncpg.Record)


class MigrationError(RuntimeError):
    """A migration file is misnamed, duplicated, or failed to apply (its transaction was rolled back)."""


class IntegrityError(Exception):
    """A write broke a unique, foreign-key or check constraint (the backend's own error is chained)."""


class DatabaseUnavailable(Exception):
    """The database cannot be opened: a bad ``DATABASE_URL``, a refused connection, a wrong password,
    an unreadable file. The message says what and where, never a password."""


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs)."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^:/@]*):[^@]*@", r"\1:***@", url, flags=re.IGNORECASE)


def parse_target(target: str | Path) -> tuple[Dialect, str]:
    """Which backend a database target names: ``("sqlite", path)`` for a path or ``sqlite:///path``
    (``sqlite:///:memory:`` too), ``("postgresql", url)`` for ``postgresql://`` or ``postgres://``.

    Raises:
        DatabaseUnavailable: any other URL scheme (named, with the accepted ones).
    """
    text = str(target)
    scheme = re.match(r"^([a-z][a-z0-9+.-]*)://", text, flags=re.IGNORECASE)
    if scheme is None:
        return "sqlite", text
    name = scheme.group(1).lower()
    if name == "sqlite":
        return "sqlite", text[len("sqlite:///"):] if text.lower().startswith("sqlite:///") else text[len("sqlite://"):]
    if name in ("postgresql", "postgres"):
        return "postgresql", text
    raise DatabaseUnavailable(f"DATABASE_URL has the scheme {name!r}; use postgresql://user:password@host:port/db,"
                              " or leave it unset for SQLite in DATA_DIR")


class Tx(Protocol):
    """The statements of one open transaction (``Database.transaction``). SQL as the module docstring
    says; ``params`` a sequence for the ``?`` placeholders."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the rows it changed."""
        ...

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int | None:
        """Run one INSERT into a table with an ``id``; returns the new row's id, None when ``ON
        CONFLICT DO NOTHING`` inserted nothing."""
        ...

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row of a query, or None."""
        ...

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """All rows of a query."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """One statement for many parameter rows."""
        ...


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    """A column as the store sees it: its logical type ("integer", "real", "text"), whether it may
    be NULL, and whether it is (part of) the primary key."""

    type: str
    notnull: bool
    primary_key: bool


@dataclass(frozen=True, slots=True)
class IndexInfo:
    """An index: unique or not, its columns (expressions like ``lower(name)`` as written), and
    whether it is partial (has a WHERE clause)."""

    unique: bool
    columns: tuple[str, ...]
    partial: bool


@dataclass(frozen=True, slots=True)
class TableInfo:
    """A table's columns, indexes (by name; full-text machinery left out) and foreign keys
    ``(column, referenced table, referenced column)``."""

    columns: dict[str, ColumnInfo]
    indexes: dict[str, IndexInfo]
    foreign_keys: frozenset[tuple[str, str, str]]


def index_columns(after_paren: str) -> list[str]:
    """The comma-separated items of an index's column list, given the text just after its opening
    parenthesis (up to the matching closing one; nested parentheses kept), each stripped."""
    depth, cols, current = 0, [], ""
    for ch in after_paren:
        if ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                break
            depth -= 1
        if ch == "," and depth == 0:
            cols.append(current.strip())
            current = ""
            continue
        current += ch
    cols.append(current.strip())
    return cols


def logical_type(declared: str) -> str:
    """The logical type of a declared column type: "integer", "real" or "text"."""
    t = declared.lower()
    if "int" in t:
        return "integer"
    if any(k in t for k in ("real", "double", "float", "numeric")):
        return "real"
    return "text"


class Database:
    """The store's database (see the module docstring). Open one with ``Database.open``; the
    backends subclass it (``SqliteDatabase``, ``PostgresDatabase``)."""

    dialect: Dialect = "sqlite"
    target: str = ""

    @classmethod
    @asynccontextmanager
    async def open(cls, target: str | Path, *, migrate: bool = False, pool_size: int = 10
                   ) -> AsyncIterator[Database]:
        """Open ``target`` (see ``parse_target``), optionally apply pending migrations, close on exit.

        Args:
            target: a SQLite file path (created with its folders), ``sqlite:///path``, ``":memory:"``,
                or a ``postgresql://`` URL.
            migrate: apply pending migrations before yielding.
            pool_size: PostgreSQL connections at most (``DATABASE_POOL_SIZE``).
        Raises:
            DatabaseUnavailable: the database cannot be reached or opened.
            MigrationError: a migration failed.
        """
        db = await cls.connect(target, pool_size=pool_size)
        try:
            if migrate:
                await db.migrate()
            yield db
        finally:
            await db.close()

    @classmethod
    async def connect(cls, target: str | Path, *, pool_size: int = 10) -> Database:
        """Open without a context manager; the caller must ``await db.close()``. Raises as ``open``."""
        dialect, where = parse_target(target)
        if dialect == "postgresql":
            from bot.store.postgres import PostgresDatabase

            return await PostgresDatabase.connect_url(where, pool_size=pool_size)
        from bot.store.sqlite import SqliteDatabase

        return await SqliteDatabase.connect_path(where)

    # --- the API every backend gives ----------------------------------------------------------------
    async def close(self) -> None:
        """Close the connections (waits for running transactions)."""
        raise NotImplementedError

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """``async with db.transaction() as tx:``: the block as one atomic transaction; an exception
        rolls it back and propagates. Not re-entrant: do not nest."""
        raise NotImplementedError

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement in its own transaction; returns the rows it changed."""
        async with self.transaction() as tx:
            return await tx.execute(sql, params)

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int | None:
        """Run one INSERT in its own transaction; the new row's id (see ``Tx.insert``)."""
        async with self.transaction() as tx:
            return await tx.insert(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for many parameter rows, as one transaction."""
        async with self.transaction() as tx:
            await tx.executemany(sql, rows)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """First row of a query, or None."""
        raise NotImplementedError

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """All rows of a query."""
        raise NotImplementedError

    async def server_version(self) -> str:
        """The backend and its version, e.g. "SQLite 3.40.1" or "PostgreSQL 15.18"."""
        raise NotImplementedError

    async def describe(self) -> dict[str, TableInfo]:
        """The logical schema: every table of the bot (``schema_migrations`` included, full-text
        tables and indexes left out) as ``TableInfo``."""
        raise NotImplementedError

    async def check_writable(self) -> None:
        """Prove a write transaction can start (and roll it back). Raises ``DatabaseUnavailable``."""
        raise NotImplementedError

    # --- migrations ------------------------------------------------------------------------------
    async def schema_version(self) -> int:
        """The highest applied migration number (0 for a new database)."""
        await self.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                           " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)")
        row = await self.fetchone("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        return int(row[0]) if row else 0

    async def migrate(self, folder: Path | None = None) -> int:
        """Apply every migration newer than the recorded version, each in its own transaction, and
        record it. Returns the schema version afterwards.

        Raises:
            MigrationError: a migration failed; it was rolled back and later ones were not tried.
        """
        current = await self.schema_version()
        for version, name, sql in load_migrations(folder, self.dialect):
            if version <= current:
                continue
            try:
                async with self.transaction() as tx:
                    await self.run_script(tx, sql)
                    await tx.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                                     (version, name, time.time()))
            except (IntegrityError, DatabaseUnavailable) as exc:
                raise MigrationError(f"migration {name} failed: {exc}") from exc
            except Exception as exc:
                if isinstance(exc, MigrationError):
                    raise
                raise MigrationError(f"migration {name} failed: {exc}") from exc
            log.info("applied migration %s", name)
            current = version
        return current

    async def run_script(self, tx: Tx, sql: str) -> None:
        """Run a migration script's statements inside ``tx`` (each backend splits its own dialect)."""
        for statement in split_statements(sql):
            await tx.execute(statement)


def load_migrations(folder: Path | None = None, dialect: Dialect = "sqlite") -> list[tuple[int, str, str]]:
    """Read ``NNNN_name.sql`` files in version order: ``[(version, filename, sql), ...]``.

    ``folder`` defaults to the ``migrations`` package shipped with the bot (its ``postgres`` folder
    for ``dialect="postgresql"``).

    Raises:
        MigrationError: a file that does not match ``NNNN_name.sql``, or two files with one number.
    """
    if folder is None:
        root = resources.files("migrations")
        if dialect == "postgresql":
            root = root / "postgres"
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


