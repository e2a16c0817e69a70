"""The command line as an admin runs it: ``python -m bot check|migrate|health`` in a fresh folder, with
and without a ``.env``, against a scripted model endpoint on 127.0.0.1. Real subprocesses, real exit
codes, real output; no secret may appear in it."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.support.fake_openai import FakeOpenAI

KEY = "sk-cli-test-secret-4242"


@pytest.fixture
def cli(subprocess_environ: dict[str, str], repo_root: Path) -> Callable[..., Awaitable[tuple[int, str]]]:
    """``await cli(cwd, *args, env=...)``: run ``python -m bot ARGS`` in ``cwd`` with no bot settings
    but ``env``; returns the exit code and the combined output."""
    async def run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", *args, cwd=cwd,
            env={**subprocess_environ, "PYTHONPATH": str(repo_root), **(env or {})},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode is not None
        return proc.returncode, out.decode()

    return run


def tagged(output: str, tag: str, name: str) -> str:
    """The report line for ``name`` if it carries ``tag``, else fail showing the report."""
    for line in output.splitlines():
        if line.startswith(tag) and line[len(tag):].strip().startswith(name):
            return line
    raise AssertionError(f"no {tag} line for {name!r} in:\n{output}")


async def test_check_without_env_file_reports_what_is_missing(tmp_path: Path, cli) -> None:
    code, out = await cli(tmp_path, "check")
    assert code == 1
    assert "no .env file" in tagged(out, "[warn]", "settings")
    assert "DISCORD_TOKEN is not set" in tagged(out, "[FAIL]", "Discord token")
    assert "OPENAI_API_KEY is empty" in tagged(out, "[FAIL]", "model endpoint")
    tagged(out, "[ ok ]", "tokenizer")  # offline: the encoding ships in the package
    tagged(out, "[ ok ]", "data folder")
    assert "Traceback" not in out
    assert out.strip().splitlines()[-1].startswith("2 check(s) failed")


async def test_check_with_configured_env_file_passes_and_never_prints_secrets(
        tmp_path: Path, cli, bot_token: str, bot_user_id: int) -> None:
    async with FakeOpenAI(models=["gpt-4o-mini", "llama3"], require_key=KEY) as model:
        (tmp_path / ".env").write_text(f"DISCORD_TOKEN={bot_token}\nOPENAI_API_KEY={KEY}\n"
                                       f"OPENAI_BASE_URL={model.url}\nDM_MODEL=gpt-4o-mini\n")
        code, out = await cli(tmp_path, "migrate")
        assert code == 0 and "schema version 14" in out
        code, out = await cli(tmp_path, "check")
    assert code == 0, out
    tagged(out, "[ ok ]", "settings")
    assert f"user id {bot_user_id}" in tagged(out, "[ ok ]", "Discord token")
    assert "accepts the key (2 models)" in tagged(out, "[ ok ]", "model endpoint")
    tagged(out, "[ ok ]", "model gpt-4o-mini")
    assert "$0.15 in" in tagged(out, "[ ok ]", "price of gpt-4o-mini")
    assert "up to date" in tagged(out, "[ ok ]", "database")
    assert tagged(out, "[ ok ]", "moderation") == ("[ ok ] moderation: offered (omni-moderation-latest): the "
                                                   "`moderation` server option can be turned on")
    assert [r.body for r in model.moderation_requests] == [
        {"input": ["The party enters the tavern."], "model": "omni-moderation-latest"}]
    assert bot_token not in out and KEY not in out and "GaBcDe" not in out
    logs = "".join(p.read_text() for p in (tmp_path / "data" / "logs").glob("*.log*"))
    assert KEY not in logs and bot_token not in logs


async def test_check_reports_refused_key_unknown_model_and_unpriced_model(tmp_path: Path, cli, bot_token: str) -> None:
    async with FakeOpenAI(models=["llama3"], require_key="right-key") as model:
        env = {"DISCORD_TOKEN": bot_token, "OPENAI_API_KEY": "wrong-key", "OPENAI_BASE_URL": model.url,
               "DM_MODEL": "mystery-model"}
        code, out = await cli(tmp_path, "check", env=env)
        assert code == 1
        assert "key refused (401)" in tagged(out, "[FAIL]", "model endpoint")
        assert "LLM_PRICES_JSON" in tagged(out, "[warn]", "price of mystery-model")

        env["OPENAI_API_KEY"] = "right-key"
        code, out = await cli(tmp_path, "check", env=env)
        assert code == 1
        tagged(out, "[ ok ]", "model endpoint")
        assert "llama3" in tagged(out, "[FAIL]", "model mystery-model")


async def test_check_says_in_one_line_when_the_endpoint_has_no_moderation(
        tmp_path: Path, cli, bot_token: str) -> None:
    async with FakeOpenAI(models=["gpt-4o-mini"], require_key=KEY, moderation=None) as model:
        env = {"DISCORD_TOKEN": bot_token, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": model.url,
               "DM_MODEL": "gpt-4o-mini"}
        code, out = await cli(tmp_path, "check", env=env)
    assert code == 0, out  # optional: a warning, never a failure
    lines = [line for line in out.splitlines() if "moderation" in line]
    assert lines == ["[warn] moderation: the endpoint has no moderation API: the `moderation` server option "
                     "can't be turned on (OpenAI's endpoint has one)"]
    assert len(model.moderation_requests) == 1  # a 404 is not retried
    assert KEY not in out


async def test_check_reports_an_endpoint_that_is_down(tmp_path: Path, cli, closed_port_url: str) -> None:
    code, out = await cli(tmp_path, "check", env={"OPENAI_API_KEY": "x", "OPENAI_BASE_URL": closed_port_url})
    assert code == 1
    assert "refused" in tagged(out, "[FAIL]", "model endpoint")


async def test_bad_setting_stops_every_command_with_its_name(tmp_path: Path, cli) -> None:
    (tmp_path / ".env").write_text("TURN_WINDOW_SECONDS=-3\nOPENAI_BASE_URL=ftp://example\nTURN_MODE=chaos\n")
    for command in ("check", "migrate", "run"):
        code, out = await cli(tmp_path, command)
        assert code == 2
        for name in ("TURN_WINDOW_SECONDS", "OPENAI_BASE_URL", "TURN_MODE"):
            assert name in out, (command, out)
        assert "Traceback" not in out


async def test_health_follows_the_heartbeat_file(tmp_path: Path, cli) -> None:
    data = tmp_path / "data"
    env = {"DATA_DIR": str(data)}
    code, out = await cli(tmp_path, "health", env=env)
    assert code == 1 and "has not connected" in out
    data.mkdir()
    beat = data / "heartbeat"
    beat.write_text("")
    code, out = await cli(tmp_path, "health", env=env)
    assert code == 0 and out.startswith("[ ok ] heartbeat")
    old = time.time() - 600
    os.utime(beat, (old, old))
    code, out = await cli(tmp_path, "health", env=env)
    assert code == 1 and "hung or disconnected" in out
    code, _ = await cli(tmp_path, "health", "--max-age", "900", env=env)
    assert code == 0
