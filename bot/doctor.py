"""``python -m bot check``: a settings doctor, and ``python -m bot health``: the container health check.

``run_checks`` prints one line per check, ``[ ok ]``, ``[warn]`` or ``[FAIL]`` followed by what was
checked and what was found, and returns the exit code (1 if any check failed). It never prints a secret:
the Discord token and the model key are described by their shape only.

Checks, in order: where the settings came from; the Discord token (present, three dot-separated parts
whose first decodes to the bot's user id, as Discord's bot tokens do); Discord endpoint overrides and
the message-content intent; the model endpoint (key accepted by the client's own validation, then a
model listing: does it answer and take the key; is the chosen model offered; does it offer a
moderation API, for the ``moderation`` server option: one tiny moderation call); prices for the chosen
models; the data folder, database (writable, migrations applied) and log folder; the tokenizer
(loads from the package, offline).

``check_heartbeat`` reads ``DATA_DIR/heartbeat``, which the running bot touches every 30 seconds while
its gateway connection is up (``bot.app``): a heartbeat older than ``max_age`` seconds means the bot is
hung or disconnected, which is what a container health check should report.
"""

from __future__ import annotations

import base64
import binascii
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from bot.config import Settings

if TYPE_CHECKING:
    from bot.llm.client import LLMClient

Status = Literal["ok", "warn", "FAIL"]
HEARTBEAT_MAX_AGE_SECONDS = 90.0  # three missed 30-second beats


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report: ``status`` is "ok", "warn" or "FAIL"; ``name`` what was checked;
    ``detail`` what was found (never a secret)."""

    status: Status
    name: str
    detail: str

    def line(self) -> str:
        """``[ ok ] name: detail`` (the tag is padded so the names line up)."""
        tag = {"ok": "[ ok ]", "warn": "[warn]", "FAIL": "[FAIL]"}[self.status]
        return f"{tag} {self.name}: {self.detail}"


def discord_token_check(token: str | None) -> Check:
    """Check a Discord bot token's shape without contacting Discord.

    A bot token is three dot-separated base64url parts; the first decodes to the bot's user id
    (a decimal snowflake). Source: Discord's token format as produced by the Developer Portal.
    """
    if not token:
        return Check("FAIL", "Discord token", "DISCORD_TOKEN is not set (Developer Portal > your app > Bot >"
                                              " Reset Token). `python -m bot play` works without it.")
    token = token.strip()
    if token.lower().startswith("bot "):
        return Check("FAIL", "Discord token", "DISCORD_TOKEN starts with 'Bot ': paste the token alone")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        return Check("FAIL", "Discord token", f"DISCORD_TOKEN has {len(parts)} dot-separated parts, a bot token"
                                              " has 3: copy it again from the Developer Portal")
    head = parts[0]
    try:
        decoded = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = ""
    if not decoded.isdigit():
        return Check("FAIL", "Discord token", "DISCORD_TOKEN's first part is not a bot id: is it a client"
                                              " secret or a user token? Copy the Bot token.")
    return Check("ok", "Discord token", f"present, shaped like a bot token for user id {decoded}")


def check_heartbeat(path: Path, max_age: float = HEARTBEAT_MAX_AGE_SECONDS, now: float | None = None) -> Check:
    """Is the heartbeat file fresh? ``max_age`` and ``now`` are seconds (``now`` defaults to the
    wall clock; the file's mtime is wall-clock time too)."""
    now = time.time() if now is None else now
    try:
        age = now - path.stat().st_mtime
    except FileNotFoundError:
        return Check("FAIL", "heartbeat", f"{path} does not exist: the bot has not connected yet")
    if age > max_age:
        return Check("FAIL", "heartbeat", f"last beat {age:.0f} s ago (limit {max_age:.0f} s): hung or disconnected")
    return Check("ok", "heartbeat", f"last beat {age:.0f} s ago")


def _writable_dir(path: Path, what: str) -> Check:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return Check("FAIL", what, f"{path} is not writable: {exc.strerror or exc}")
    return Check("ok", what, f"{path} is writable")


async def database_check(settings: Settings) -> Check:
    """Open the database (``DATABASE_URL``, else the SQLite file in ``DATA_DIR``, created if missing),
    prove a write transaction can start, and say which backend and version it is and whether its
    schema is current with the shipped migrations. Never applies migrations (``migrate`` or the
    bot's start-up does). A bad ``DATABASE_URL`` (scheme, refused connection, password) is one FAIL
    line naming the setting, never the password."""
    from bot.store.db import Database, DatabaseUnavailable, MigrationError, load_migrations, parse_target, redact

    target = settings.database_target
    try:
        dialect, where_raw = parse_target(target)
    except DatabaseUnavailable as exc:
        return Check("FAIL", "database", str(exc))
    where = redact(where_raw) if dialect == "postgresql" else where_raw
    existed = dialect == "postgresql" or Path(where_raw).exists()
    try:
        latest = max((version for version, _name, _sql in load_migrations(dialect=dialect)), default=0)
        async with Database.open(target, pool_size=1) as db:
            version = await db.schema_version()
            await db.check_writable()
            backend = await db.server_version()
    except DatabaseUnavailable as exc:
        return Check("FAIL", "database", str(exc))
    except (sqlite3.Error, OSError, MigrationError) as exc:
        return Check("FAIL", "database", f"{where}: {exc}")
    if version < latest:
        note = "new database" if not existed or version == 0 else f"schema {version}"
        return Check("warn", "database", f"{where} ({backend}) is writable; {note}, {latest - version} migration(s)"
                                         " to apply (the bot applies them on start; or run `python -m bot migrate`)")
    if version > latest:
        return Check("FAIL", "database", f"{where} ({backend}) has schema {version}, newer than this version of the"
                                         f" bot ({latest}): upgrade the bot")
    return Check("ok", "database", f"{where} ({backend}) is writable, schema {version} (up to date)")


def tokenizer_check(model: str) -> Check:
    """Load the tokenizer for ``model`` from the package files and count a sample; offline."""
    from bot.llm.tokens import count_tokens, encoding_name_for_model

    try:
        name = encoding_name_for_model(model)
        count = count_tokens("The goblin swings its rusty scimitar.", model)
    except Exception as exc:  # a broken install: missing or corrupt package data
        return Check("FAIL", "tokenizer", f"cannot load offline: {exc}")
    return Check("ok", "tokenizer", f"{name} loads offline ({count} tokens in a sample sentence)")


def price_checks(settings: Settings) -> list[Check]:
    """Is each model the bot will call (DM model, summary model) in the price table?"""
    from bot.errors import UserInputError
    from bot.llm.pricing import PriceTable

    try:
        table = PriceTable.default().with_overrides(settings.llm_prices_json)
    except UserInputError as exc:
        return [Check("FAIL", "prices", str(exc))]
    checks = []
    for model in dict.fromkeys([settings.dm_model, settings.summary_model or settings.dm_model]):
        price = table.price_for(model)
        if price is None:
            checks.append(Check("warn", f"price of {model}", "not in the price table: costs show as unknown;"
                                                             " add it with LLM_PRICES_JSON"))
        else:
            checks.append(Check("ok", f"price of {model}", f"${price.input:g} in / ${price.output:g} out per"
                                                           " million tokens"))
    return checks


async def endpoint_checks(settings: Settings, timeout_s: float = 10.0) -> list[Check]:
    """Build the model client as the bot would, list the endpoint's models, and look for the DM model."""
    from bot.errors import UserInputError
    from bot.llm.client import LLMClient

    where = settings.openai_base_url
    try:
        client = LLMClient.from_settings(settings)
    except UserInputError as exc:
        return [Check("FAIL", "model endpoint", f"{where}: {exc.player_message}")]
    async with client:
        result = await client.check(timeout_s=timeout_s)
        if not result.ok:
            return [Check("FAIL", "model endpoint", f"{where}: {result.detail}")]
        moderation = await moderation_check(client, timeout_s=timeout_s)
    checks = [Check("ok", "model endpoint", f"{where}: {result.detail}")]
    if result.models:
        for model in dict.fromkeys([settings.dm_model, settings.summary_model or settings.dm_model]):
            if model in result.models:
                checks.append(Check("ok", f"model {model}", "offered by the endpoint"))
            else:
                sample = ", ".join(sorted(result.models)[:5])
                checks.append(Check("FAIL", f"model {model}", f"not offered by the endpoint (it has e.g. {sample});"
                                                              " set DM_MODEL"))
    checks.append(moderation)
    return checks


async def moderation_check(client: LLMClient, timeout_s: float = 10.0) -> Check:
    """Does the endpoint offer a moderation API (one tiny call with a harmless sentence)? "ok" when
    it does, "warn" when it has none or the call failed: moderation is an optional server option, so
    this never fails the report. ``timeout_s``: seconds."""
    from bot.game.moderation import MODERATION_MODEL, PROBE_TEXT
    from bot.llm.errors import LLMError, ModerationUnavailable

    try:
        await client.moderate([PROBE_TEXT], model=MODERATION_MODEL, deadline_s=timeout_s)
    except ModerationUnavailable:
        return Check("warn", "moderation", "the endpoint has no moderation API: the `moderation` server option"
                                           " can't be turned on (OpenAI's endpoint has one)")
    except LLMError as exc:
        status = f" HTTP {exc.status}" if exc.status is not None else ""
        return Check("warn", "moderation", f"could not tell: the moderation call failed ({type(exc).__name__}"
                                           f"{status})")
    return Check("ok", "moderation", f"offered ({MODERATION_MODEL}): the `moderation` server option can be"
                                     " turned on")


async def collect_checks(settings: Settings, *, env_file: str | None = None, timeout_s: float = 10.0) -> list[Check]:
    """Run every check (see module docstring) and return them in report order.

    Args:
        settings: the loaded settings.
        env_file: the settings file the CLI was pointed at (only reported).
        timeout_s: how long the model endpoint may take to answer, seconds.
    """
    checks: list[Check] = []
    if env_file is not None:
        if Path(env_file).is_file():
            checks.append(Check("ok", "settings", f"read {env_file} and the environment; all values valid"))
        else:
            checks.append(Check("warn", "settings", f"no {env_file} file: using the environment and defaults"
                                                    " (copy .env.example to .env)"))
    token = settings.discord_token.get_secret_value() if settings.discord_token else None
    checks.append(discord_token_check(token))
    if settings.discord_api_base or settings.discord_gateway_url:
        checks.append(Check("ok", "Discord endpoints", f"REST {settings.discord_api_base or 'default'}, gateway"
                                                       f" {settings.discord_gateway_url or 'default'}"))
    if settings.discord_message_content_intent:
        checks.append(Check("ok", "message content intent", "requested: enable it in the Developer Portal"
                                                            " (Bot > Privileged Gateway Intents) or login fails"))
    else:
        checks.append(Check("warn", "message content intent", "off: players play through /act and by"
                                                              " mentioning the bot"))
    checks.extend(await endpoint_checks(settings, timeout_s=timeout_s))
    checks.extend(price_checks(settings))
    data = _writable_dir(settings.data_dir, "data folder")
    checks.append(data)
    if data.status == "ok":
        checks.append(await database_check(settings))
    checks.append(_writable_dir(settings.logs_path, "log folder"))
    checks.append(tokenizer_check(settings.dm_model))
    checks.append(await journal_check(settings, timeout_s=min(timeout_s, 5.0)))
    return checks


async def journal_check(settings: Settings, timeout_s: float = 5.0) -> Check:
    """Is the journal set up, and does ``JOURNAL_BASE_URL/healthz`` answer (through the reverse proxy,
    as players' browsers reach it)? "warn" when it does not (the bot may simply not be running)."""
    if not settings.journal_base_url and not settings.journal_listen:
        return Check("ok", "journal", "off (set JOURNAL_BASE_URL and JOURNAL_LISTEN to serve it)")
    if not settings.journal_enabled:
        missing = "JOURNAL_LISTEN" if settings.journal_base_url else "JOURNAL_BASE_URL"
        return Check("warn", "journal", f"off: {missing} is not set (both are needed)")
    import aiohttp

    url = f"{settings.journal_base_url}/healthz"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http, \
                http.get(url) as response:
            body = (await response.text())[:20]
            status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return Check("warn", "journal", f"{url} is not reachable ({type(exc).__name__}): is the bot running, and"
                                        f" does the proxy forward to JOURNAL_LISTEN={settings.journal_listen}?")
    if status != 200 or body.strip() != "ok":
        return Check("warn", "journal", f"{url} answered HTTP {status}, not the journal's health page")
    return Check("ok", "journal", f"reachable at {settings.journal_base_url} (listening on {settings.journal_listen})")


async def run_checks(settings: Settings, *, env_file: str | None = None, timeout_s: float = 10.0) -> int:
    """Print the report (one line per check, then a summary) and return the exit code: 0 when nothing
    failed (warnings allowed), 1 otherwise."""
    checks = await collect_checks(settings, env_file=env_file, timeout_s=timeout_s)
    for check in checks:
        print(check.line())
    failed = sum(c.status == "FAIL" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    if failed:
        print(f"{failed} check(s) failed, {warned} warning(s): fix the [FAIL] lines above.")
        return 1
    print(f"All checks passed ({warned} warning(s)).")
    return 0


def run_health(settings: Settings, max_age: float = HEARTBEAT_MAX_AGE_SECONDS) -> int:
    """Print the heartbeat check and return 0 (healthy) or 1 (stale or missing)."""
    check = check_heartbeat(settings.data_dir / "heartbeat", max_age)
    print(check.line())
    return 0 if check.status == "ok" else 1
