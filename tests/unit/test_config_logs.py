"""Settings are validated at start-up with messages naming the setting; logs are one format, rotate,
and never hold a secret."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.config import OPENAI_DEFAULT_BASE_URL, SettingsError, load_settings
from bot.logs import REDACTED, dm_handlers, redact, setup_logging

KEY = "sk-proj-abcdefghijklmnop1234"
TOKEN = "MTA0NTgxNTEyNTkwNDQ3NDIyNA.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"


# only the values each test gives count, never the host's settings
pytestmark = pytest.mark.usefixtures("no_settings_in_environ")


@pytest.mark.parametrize(("line", "named", "words"), [
    ("TURN_WINDOW_SECONDS=-1", "TURN_WINDOW_SECONDS", "greater than or equal to 0"),
    ("TURN_MODE=chaos", "TURN_MODE", "'batch' or 'mention'"),
    ("OPENAI_BASE_URL=localhost:11434", "OPENAI_BASE_URL", "absolute http(s)://"),
    ("DISCORD_GATEWAY_URL=ftp://x", "DISCORD_GATEWAY_URL", "absolute http(s)://"),
    ("LLM_MAX_ATTEMPTS=0", "LLM_MAX_ATTEMPTS", "greater than or equal to 1"),
    ("DISCORD_SHARD_IDS=0,1", "DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT", ""),
    ("TURN_WINDOW_SECONDS=30\nTURN_MAX_WINDOW_SECONDS=10", "TURN_MAX_WINDOW_SECONDS must be >=", ""),
    ("DISCORD_DEV_GUILD_ID=my-server", "DISCORD_DEV_GUILD_ID", "integer"),
])
def test_bad_values_are_rejected_naming_the_setting(tmp_path: Path, line: str, named: str, words: str) -> None:
    env = tmp_path / ".env"
    env.write_text(line + "\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert named in str(caught.value) and words in str(caught.value)


def test_empty_values_mean_default_and_the_environment_beats_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text("OPENAI_BASE_URL=\nDISCORD_DEV_GUILD_ID=\nTURN_WINDOW_SECONDS=4\nDM_MODEL=gpt-4o\n"
                   "IGNORED_PREFIXES=!, ?, ;;\n")
    monkeypatch.setenv("DM_MODEL", "gpt-4.1-mini")
    settings = load_settings(env)
    assert settings.openai_base_url == OPENAI_DEFAULT_BASE_URL
    assert settings.discord_dev_guild_id is None
    assert settings.turn_window_seconds == 4.0
    assert settings.dm_model == "gpt-4.1-mini"
    assert settings.ignored_prefixes == ["!", "?", ";;"]


def test_secrets_are_not_shown_by_settings_repr(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(f"OPENAI_API_KEY={KEY}\nDISCORD_TOKEN={TOKEN}\n")
    settings = load_settings(env)
    assert KEY not in repr(settings) and TOKEN not in repr(settings)
    assert settings.openai_api_key is not None and settings.openai_api_key.get_secret_value() == KEY


@pytest.mark.parametrize("text", [
    f"calling with key {KEY}", f"token={TOKEN} failed", "Authorization: Bearer abcdef123456789",
    "sk-or-v1-0123456789abcdef in a URL",
])
def test_secret_shapes_are_redacted(text: str) -> None:
    out = redact(text)
    assert REDACTED in out
    assert not any(part in out for part in (KEY, TOKEN, "abcdef123456789", "0123456789abcdef"))


def test_configured_secrets_are_redacted_everywhere_in_file_logs(tmp_path: Path) -> None:
    odd_key = "local-key-without-shape"  # a key for Ollama: no sk- shape, redacted because configured
    settings = load_settings(None, data_dir=tmp_path, openai_api_key=odd_key, discord_token=TOKEN,
                             log_max_bytes=10_000, log_backup_count=2)
    setup_logging(settings, console=False)
    log = logging.getLogger("test.redaction")
    try:
        for i in range(400):  # past 10,000 bytes: the file rotates
            log.warning("filler line %d %s", i, "x" * 40)
        log.warning("key is %s", odd_key)
        try:
            raise RuntimeError(f"request failed with {odd_key} and {TOKEN}")
        except RuntimeError:
            log.exception("boom")
    finally:
        for handler in dm_handlers():
            handler.flush()
    files = sorted((tmp_path / "logs").glob("dungeon_master.log*"))
    assert [f.name for f in files] == ["dungeon_master.log", "dungeon_master.log.1", "dungeon_master.log.2"]
    text = "".join(f.read_text() for f in files)
    assert odd_key not in text and TOKEN not in text
    assert all(f.stat().st_size <= 10_000 for f in files)
    newest = files[0].read_text()
    assert " WARNING test.redaction: key is [redacted]" in newest
    assert "RuntimeError: request failed with [redacted] and [redacted]" in newest
