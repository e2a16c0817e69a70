"""A real PostgreSQL server for the tests, started by the test session itself on 127.0.0.1.

``PostgresServer.start()`` runs the machine's own binaries (``initdb`` and ``pg_ctl`` from
``POSTGRES_BIN``, default the newest ``/usr/lib/postgresql/*/bin``) in a temporary directory on a free
loopback port, with trust authentication for the local test user and a password for ``bot``
(``PASSWORD``), fsync off (a test server: durability across power cuts is not what these tests
prove; kill -9 of the *bot* is, and that needs no fsync). PostgreSQL refuses to run as root, so
when the tests run as root the server runs as the ``postgres`` system user (``runuser``), which the
distribution's package creates; ``scripts/test.sh`` installs that package when it is missing.

``fresh_database()`` creates an empty database (from ``template0``) and returns its URL; tests get
one each, so they never see each other's rows. ``stop()`` stops the server and removes its files.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import asyncpg

PASSWORD = "bot-test-password"
USER = "bot"


def _bin_dir() -> Path:
    configured = os.environ.get("POSTGRES_BIN")
    if configured:
        return Path(configured)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if not found:
        raise RuntimeError("PostgreSQL's server binaries are not installed: run scripts/test.sh (it installs "
                           "the distribution's postgresql package) or set POSTGRES_BIN")
    return Path(found[-1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory (see the module docstring)."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="bot-pg-"))
        self.data = self.root / "data"
        self.as_user = "postgres" if os.geteuid() == 0 else None
        self._names = itertools.count(1)

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.as_user:
            cmd = ["runuser", "-u", self.as_user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    @property
    def admin_url(self) -> str:
        """The superuser's URL (trust authentication on 127.0.0.1)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str, *, password: str = PASSWORD, user: str = USER) -> str:
        """The bot user's URL for ``database``."""
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgresServer:
        """initdb, configure, start; returns self once it accepts connections.

        Raises:
            subprocess.CalledProcessError / RuntimeError: it would not start (its log is in the message).
        """
        if self.as_user:
            shutil.chown(self.root, self.as_user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
                  "-E", "UTF8", "--locale=C.UTF-8")
        with open(self.data / "pg_hba.conf", "w") as hba:
            hba.write("local all all trust\nhost all postgres 127.0.0.1/32 trust\n"
                      "host all all 127.0.0.1/32 scram-sha-256\n")
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=on -c full_page_writes=off -c max_connections=300")
        try:
            self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")
        except subprocess.CalledProcessError as exc:
            log = (self.root / "log").read_text() if (self.root / "log").exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {exc.stderr!r}\n{log[-2000:]}") from exc
        return self

    async def setup(self) -> None:
        """Create the bot's login role (password ``PASSWORD``) once the server runs."""
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}' CREATEDB")
        finally:
            await conn.close()

    async def fresh_database(self) -> str:
        """A new empty database owned by the bot user; its URL."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f"CREATE DATABASE {name} OWNER {USER} TEMPLATE template0")
        finally:
            await conn.close()
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (immediately) and delete its directory."""
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except (subprocess.CalledProcessError, FileNotFoundError):
            pass
        shutil.rmtree(self.root, ignore_errors=True)
