"""Process-wide settings, read once at start-up from the environment and an optional ``.env`` file.

python-dotenv reads the ``.env`` file (without overriding variables already set in the environment);
pydantic validates every value, so a bad setting stops start-up with a message that names the
setting (``SettingsError``) instead of failing later in the middle of a game.

Per-server options that admins change with ``/config set`` live in the database; the values here are
the defaults those options start from. Every field below is documented in ``.env.example``; a test
checks that the two lists agree.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.models import ContentRating, PaceSetting, TurnMode

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"


class SettingsError(ValueError):
    """A setting is missing or malformed. ``str(err)`` names each bad setting and why, one a line."""


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def validate_http_url(value: str, setting: str) -> str:
    """Return ``value`` without a trailing slash if it is an absolute http(s) or ws(s) URL with a host.

    Raises:
        ValueError: naming ``setting`` when the URL has another scheme or no host.
    """
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https", "ws", "wss") or not parsed.hostname:
        raise ValueError(f"{setting} must be an absolute http(s):// URL with a host, got {value!r}")
    return value.rstrip("/")


class Settings(BaseSettings):
    """All settings of the bot process. Field names are the environment variable names, lower-cased.

    Units are in the field names or descriptions: ``*_seconds`` are seconds, ``*_tokens`` are tokens
    counted with tiktoken, budgets are tokens per UTC day. ``0`` disables a limit where the description
    says so.
    """

    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", case_sensitive=False, validate_default=True
    )

    # --- Discord ---------------------------------------------------------------------------------
    discord_token: SecretStr | None = Field(None, description="Bot token from the Developer Portal")
    discord_api_base: str | None = Field(None, description="REST base URL override (REST proxy)")
    discord_gateway_url: str | None = Field(None, description="Gateway URL override (gateway proxy)")
    discord_dev_guild_id: int | None = Field(None, description="Guild that gets commands synced on start")
    discord_owner_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    discord_shard_count: int | None = Field(None, ge=1)
    discord_shard_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    discord_message_content_intent: bool = True

    # --- Model endpoint --------------------------------------------------------------------------
    openai_api_key: SecretStr | None = None
    openai_base_url: str = OPENAI_DEFAULT_BASE_URL
    dm_model: str = "gpt-4o-mini"
    summary_model: str | None = None
    llm_timeout_seconds: float = Field(60.0, gt=0)
    llm_deadline_seconds: float = Field(180.0, gt=0)
    llm_max_attempts: int = Field(5, ge=1, le=20)
    llm_max_concurrency: int = Field(8, ge=1, le=256)
    llm_requests_per_minute: int = Field(0, ge=0)
    llm_tokens_per_minute: int = Field(0, ge=0)
    llm_prices_json: str | None = None

    # --- Storage and logs ------------------------------------------------------------------------
    data_dir: Path = Path("./data")
    database_url: SecretStr | None = None
    journal_base_url: str | None = Field(None, description="Public base URL of the campaign journal (its links)")
    journal_listen: str | None = Field(None, description="host:port the journal's web server listens on")
    database_pool_size: int = Field(10, ge=1, le=500)
    log_dir: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_max_bytes: int = Field(5_000_000, ge=10_000)
    log_backup_count: int = Field(5, ge=0, le=100)

    # --- Game defaults (admins override per server with /config set) ------------------------------
    turn_mode: TurnMode = "batch"
    turn_window_seconds: float = Field(6.0, ge=0, le=120)
    turn_extend_seconds: float = Field(2.0, ge=0, le=60)
    turn_max_window_seconds: float = Field(20.0, ge=0, le=300)
    dm_temperature: float = Field(0.8, ge=0, le=2)
    dm_max_tokens: int = Field(700, ge=50, le=8000)
    history_token_budget: int = Field(3000, ge=200, le=200_000)
    summary_trigger_tokens: int = Field(4000, ge=200, le=400_000)
    summary_token_cap: int = Field(800, ge=50, le=8000)
    chapter_token_cap: int = Field(400, ge=50, le=4000)
    lore_token_budget: int = Field(600, ge=0, le=20_000)
    recap_after_hours: float = Field(8.0, ge=0, le=24 * 365)
    max_input_chars: int = Field(1500, ge=20, le=4000)
    ignored_prefixes: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["!"])
    max_tool_rounds: int = Field(4, ge=0, le=16)
    content_rating: ContentRating = "teen"
    dm_style: str = Field("classic", max_length=300)
    stream_replies: bool = True
    pace: PaceSetting = "auto"
    session_idle_seconds: float = Field(1800.0, gt=0)
    channel_queue_limit: int = Field(50, ge=1, le=10_000)
    player_cooldown_seconds: float = Field(2.0, ge=0, le=600)
    guild_daily_token_budget: int = Field(0, ge=0)
    player_daily_token_budget: int = Field(0, ge=0)

    @field_validator("discord_owner_ids", "discord_shard_ids", "ignored_prefixes", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("journal_listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        host, _, port = value.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) < 65536:  # 0: any free port
            raise ValueError("JOURNAL_LISTEN is host:port, e.g. 127.0.0.1:8080 (0.0.0.0:8080 in a container)")
        return value.strip()

    @field_validator("discord_api_base", "discord_gateway_url", "openai_base_url", "journal_base_url")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if not value:
            return None if info.field_name != "openai_base_url" else OPENAI_DEFAULT_BASE_URL
        return validate_http_url(value, str(info.field_name).upper())

    @field_validator("openai_api_key", "discord_token", mode="before")
    @classmethod
    def _blank_secret(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        if self.turn_max_window_seconds < self.turn_window_seconds:
            raise ValueError(
                "TURN_MAX_WINDOW_SECONDS must be >= TURN_WINDOW_SECONDS "
                f"({self.turn_max_window_seconds} < {self.turn_window_seconds})"
            )
        if self.discord_shard_ids and self.discord_shard_count is None:
            raise ValueError("DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT")
        if self.discord_shard_count is not None and any(
            s >= self.discord_shard_count for s in self.discord_shard_ids
        ):
            raise ValueError("every DISCORD_SHARD_IDS entry must be < DISCORD_SHARD_COUNT")
        if self.summary_trigger_tokens <= self.summary_token_cap:
            raise ValueError("SUMMARY_TRIGGER_TOKENS must be larger than SUMMARY_TOKEN_CAP")
        return self

    @property
    def journal_enabled(self) -> bool:
        """The journal is served only when both ``JOURNAL_BASE_URL`` and ``JOURNAL_LISTEN`` are set."""
        return bool(self.journal_base_url and self.journal_listen)

    def owns_guild(self, guild_id: int | None) -> bool:
        """Whether this process's shards receive ``guild_id``'s events: always without
        ``DISCORD_SHARD_IDS`` (this process runs every shard); else by Discord's sharding formula,
        ``shard_id = (guild_id >> 22) % shard_count`` (Discord API docs, "Gateway: Sharding"). Direct
        messages and terminal play (no guild) belong to every process."""
        if guild_id is None or not self.discord_shard_ids or not self.discord_shard_count:
            return True
        return (guild_id >> 22) % self.discord_shard_count in self.discord_shard_ids

    # --- derived paths ---------------------------------------------------------------------------
    @property
    def database_target(self) -> str:
        """Where the database is: ``DATABASE_URL`` when set (a ``postgresql://`` URL, or
        ``sqlite:///path``), else the SQLite file in ``DATA_DIR`` (``database_path``)."""
        url = self.database_url.get_secret_value().strip() if self.database_url is not None else ""
        return url or str(self.database_path)

    @property
    def database_path(self) -> Path:
        """The SQLite file: ``DATA_DIR/dungeon_master.sqlite3``."""
        return self.data_dir / "dungeon_master.sqlite3"

    @property
    def logs_path(self) -> Path:
        """Folder for rotating log files: ``LOG_DIR``, default ``DATA_DIR/logs``."""
        return self.log_dir if self.log_dir is not None else self.data_dir / "logs"

    @property
    def uses_openai_endpoint(self) -> bool:
        """True when the model endpoint is OpenAI's own API (where keys have the ``sk-`` shape)."""
        host = urlparse(self.openai_base_url).hostname or ""
        return host == "api.openai.com" or host.endswith(".openai.com")


def load_settings(env_file: str | os.PathLike[str] | None = ".env", **overrides: Any) -> Settings:
    """Read settings from ``env_file`` (if it exists), then the process environment, then ``overrides``.

    Empty values in the file or environment count as unset, so the field's default applies.

    Environment variables win over the file, as with python-dotenv's ``override=False``; keyword
    ``overrides`` (field names) win over both and are meant for tests and the CLI.

    Raises:
        SettingsError: one line per bad setting, each naming the environment variable.
    """
    values: dict[str, Any] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update({k.lower(): v for k, v in dotenv_values(env_file).items() if v is not None})
    fields = set(Settings.model_fields)
    values.update({k.lower(): v for k, v in os.environ.items() if k.lower() in fields})
    # An empty value (``DISCORD_DEV_GUILD_ID=``) means "not set": the default applies.
    values = {k: v for k, v in values.items() if not (isinstance(v, str) and not v.strip())}
    values.update(overrides)
    try:
        return Settings(**{k: v for k, v in values.items() if k in fields})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(part) for part in err["loc"]) or "settings"
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{loc.upper()}: {msg}" if loc != "settings" else msg)
        raise SettingsError("\n".join(lines)) from None
