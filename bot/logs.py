"""Logging set-up: one format, console plus a rotating file, secrets redacted everywhere.

``setup_logging(settings)`` is called once by the CLI. The redaction filter sits on the handlers, so
it also covers records from discord.py, openai and httpx: the configured Discord token and API key are
replaced wherever they appear, and so is anything shaped like an OpenAI key (``sk-...``), a Discord
bot token or an ``Authorization: Bearer`` value.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
from collections.abc import Iterable

from bot.config import Settings

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
REDACTED = "[redacted]"

_SECRET_PATTERNS = [
    re.compile(r"sk-[A-Za-z0-9_\-]{8,}"),
    # Discord bot tokens: base64 user id . timestamp . hmac
    re.compile(r"[MNO][A-Za-z\d_\-]{20,30}\.[A-Za-z\d_\-]{5,7}\.[A-Za-z\d_\-]{25,45}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}"),
]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with every value in ``secrets`` and every secret-shaped string replaced."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.re.groups else "") + REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """A handler filter that redacts the formatted message and exception text of every record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; never drops it."""
        message = record.getMessage()
        cleaned = redact(message, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        return True


def dm_handlers() -> list[logging.Handler]:
    """The root logger's handlers that ``setup_logging`` installed (they carry its ``RedactingFilter``)."""
    return [h for h in logging.getLogger().handlers if any(isinstance(f, RedactingFilter) for f in h.filters)]


def setup_logging(settings: Settings, *, console: bool = True) -> None:
    """Configure the root logger: rotating file in ``settings.logs_path`` and (optionally) stderr.

    Files rotate at ``LOG_MAX_BYTES`` bytes, keeping ``LOG_BACKUP_COUNT`` old files. Calling it again
    replaces the handlers it installed before.
    """
    secrets = [s.get_secret_value() for s in (settings.discord_token, settings.openai_api_key) if s]
    redactor = RedactingFilter(secrets)
    formatter = logging.Formatter(LOG_FORMAT)
    root = logging.getLogger()
    for handler in dm_handlers():
        root.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = []
    settings.logs_path.mkdir(parents=True, exist_ok=True)
    handlers.append(logging.handlers.RotatingFileHandler(
        settings.logs_path / "dungeon_master.log", maxBytes=settings.log_max_bytes,
        backupCount=settings.log_backup_count, encoding="utf-8"))
    if console:
        handlers.append(logging.StreamHandler())
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(redactor)
        root.addHandler(handler)
    root.setLevel(settings.log_level)
    # Chatty libraries: their INFO lines would log request URLs on every call.
    for name in ("httpx", "httpx2", "openai", "discord.gateway", "aiosqlite"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
