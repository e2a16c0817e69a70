"""Fixtures shared by the test modules: sample credentials, environments without the host's bot
settings, settings for a temporary data folder, a migrated database, and a port nothing listens on.

Each fixture is small and independent; a test asks for the ones it uses by name.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # imported where used, so a broken bot module fails only the tests that need it
    from bot.config import Settings
    from bot.store import Database, Store
    from tests.support.postgres import PostgresServer

# Shaped like a real bot token (base64 of a user id, a timestamp part, an HMAC part), valid for nothing.
SAMPLE_BOT_TOKEN = "MTA0NTgxNTEyNTkwNDQ3NDIyNA.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"
SAMPLE_BOT_USER_ID = 1045815125904474224  # the id its first part encodes


def setting_variables() -> frozenset[str]:
    """The environment variable of every ``bot.config.Settings`` field."""
    from bot.config import Settings

    return frozenset(name.upper() for name in Settings.model_fields)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's root folder (where pyproject.toml is)."""
    return Path(__file__).resolve().parents[1]


@pytest.fixture
def bot_token() -> str:
    """A well-formed Discord bot token that works nowhere; its user id is ``SAMPLE_BOT_USER_ID``."""
    return SAMPLE_BOT_TOKEN


@pytest.fixture
def bot_user_id() -> int:
    """The Discord user id that ``bot_token``'s first part encodes."""
    return SAMPLE_BOT_USER_ID


@pytest.fixture
def subprocess_environ() -> dict[str, str]:
    """A copy of this process's environment without any bot setting (every ``Settings`` field's
    variable), for a child process whose settings the test gives explicitly."""
    settings = setting_variables()
    return {k: v for k, v in os.environ.items() if k.upper() not in settings}


@pytest.fixture
def no_settings_in_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every bot setting from ``os.environ`` for the test, so only the test's own values count."""
    settings = setting_variables()
    for name in list(os.environ):
        if name.upper() in settings:
            monkeypatch.delenv(name)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """``make_settings(**overrides)``: settings with data in ``tmp_path`` and a dummy key, no ``.env``
    file; keyword overrides (field names) win."""
    from bot.config import load_settings

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"data_dir": str(tmp_path), "openai_api_key": "sk-test"}
        values.update(overrides)
        return load_settings(None, **values)

    return make


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole test session (``tests/support/postgres.py``), on a
    loopback port, stopped at the end."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from tests.support.postgres import PostgresServer

    server = PostgresServer().start()
    try:
        with ThreadPoolExecutor(1) as pool:  # first asked for inside a test's running event loop
            pool.submit(asyncio.run, server.setup()).result(timeout=60)
        yield server
    finally:
        server.stop()


BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's database is, once per backend: a SQLite file in ``tmp_path``, then a fresh
    database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "db.sqlite3")
    server = request.getfixturevalue("postgres_server")
    return str(await server.fresh_database())


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A migrated database on each backend (``database_url``), closed after the test."""
    from bot.store import Database

    async with Database.open(database_url, migrate=True) as db:
        yield db


@pytest.fixture
def use_backend(database_url: str) -> Iterator[str]:
    """For game suites: ``tests.support.game_helpers.fast_settings`` points its settings at
    ``database_url`` (each backend in turn) while the test runs."""
    from tests.support import game_helpers

    game_helpers.DATABASE_URL = None if database_url.endswith(".sqlite3") else database_url
    try:
        yield database_url
    finally:
        game_helpers.DATABASE_URL = None


@pytest.fixture
def store(database: Database) -> Store:
    """The repositories over the ``database`` fixture."""
    from bot.store import Store

    return Store(database)


@pytest.fixture
def closed_port_url() -> str:
    """An OpenAI-style base URL on a 127.0.0.1 port that was just free, so connecting is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/v1"
