"""Command line: ``python -m bot [run|play|migrate|db|check|health]`` (also installed as ``dungeon-master``).

- ``run`` (default): connect to Discord with ``DISCORD_TOKEN`` and play.
- ``play``: play a campaign in the terminal with the same game core and database.
- ``migrate``: apply database migrations and exit.
- ``db copy --from SOURCE --to DESTINATION``: copy a bot's whole history into a new, empty database
  (e.g. ``sqlite:///data/dungeon_master.sqlite3`` to ``postgresql://...``), verified table by table
  (``bot.store.copy``); exits 1 when it refuses or fails, printing why.
- ``check``: a settings doctor; prints one line per check and exits 1 if any check failed.
- ``health``: the container health check; exits 0 when the running bot's heartbeat file
  (``DATA_DIR/heartbeat``) is fresher than ``--max-age`` seconds, 1 otherwise.

Every command reads settings from ``--env-file`` (default ``.env``) and the environment; a bad setting
stops it with exit code 2 and a message naming the setting.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from bot.config import Settings, SettingsError, load_settings

COMMANDS = ("run", "play", "migrate", "db", "check", "health")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; its sub-command names are ``COMMANDS``."""
    parser = argparse.ArgumentParser(prog="dungeon-master", description="An AI Dungeon Master for Discord.")
    parser.add_argument("--env-file", default=".env", help="settings file to read (default: .env)")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="connect to Discord and play (default)")
    play = sub.add_parser("play", help="play a campaign in the terminal")
    play.add_argument("--channel", type=int, default=1, help="terminal 'channel' id, one campaign each")
    sub.add_parser("migrate", help="apply database migrations and exit")
    db = sub.add_parser("db", help="database tools")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    copy = db_sub.add_parser("copy", help="copy everything into a new, empty database, verified")
    copy.add_argument("--from", dest="source", required=True, help="sqlite:///path, a file path or postgresql://...")
    copy.add_argument("--to", dest="destination", required=True, help="the empty database to fill")
    sub.add_parser("check", help="check settings, endpoint, database and tokenizer")
    health = sub.add_parser("health", help="exit 0 if the running bot's heartbeat is fresh (health check)")
    health.add_argument("--max-age", type=float, default=90.0, help="seconds (default 90: three missed beats)")
    return parser


async def _dispatch(command: str, settings: Settings, args: argparse.Namespace) -> int:
    from bot.logs import setup_logging

    if command == "health":  # runs every minute in the container: no log files, no network
        from bot.doctor import run_health

        return run_health(settings, args.max_age)
    setup_logging(settings, console=command != "play")
    if command == "migrate":
        from bot.store.db import Database, DatabaseUnavailable, MigrationError

        try:
            async with Database.open(settings.database_target, pool_size=1) as db:
                applied = await db.migrate()
                where = db.target
        except (DatabaseUnavailable, MigrationError) as exc:
            print(f"cannot migrate: {exc}")
            return 1
        print(f"database {where}: schema version {applied}")
        return 0
    if command == "db":
        return await _db_copy(args.source, args.destination)
    if command == "play":
        from bot.store.db import DatabaseUnavailable
        from bot.terminal import play

        try:
            return await play(settings, channel_id=args.channel)
        except DatabaseUnavailable as exc:
            print(f"Cannot open the database: {exc}")
            return 1
    if command == "check":
        from bot.doctor import run_checks

        return await run_checks(settings, env_file=args.env_file)
    from bot.app import run_bot

    return await run_bot(settings)


async def _db_copy(source: str, destination: str) -> int:
    """``db copy``: print each table's rows and checksum, or why the copy was refused; exit code."""
    from bot.store.copy import CopyRefused, copy_database
    from bot.store.db import Database, DatabaseUnavailable, MigrationError, redact

    try:
        async with Database.open(source) as src, Database.open(destination) as dst:
            if src.target == dst.target:
                print("cannot copy: --from and --to are the same database")
                return 1
            report = await copy_database(src, dst)
    except (CopyRefused, DatabaseUnavailable, MigrationError, RuntimeError) as exc:
        print(f"cannot copy: {redact(str(exc))}")
        return 1
    for table in report.tables:
        print(f"{table.table:<22} {table.rows:>9} rows  sha256 {table.checksum[:16]}  verified")
    print(f"copied {report.rows} rows from {redact(source)} to {redact(destination)} in {report.seconds:.1f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point. Returns the process exit code (0 ok, 1 failure, 2 bad settings or usage)."""
    args = build_parser().parse_args(argv)
    command = args.command or "run"
    try:
        settings = load_settings(args.env_file)
    except SettingsError as exc:
        print(f"Bad settings (from {args.env_file} and the environment):\n{exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_dispatch(command, settings, args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
