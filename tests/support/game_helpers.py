"""Helpers for driving the game core in integration tests: a Game factory wired to the real model client
and a scripted OpenAI-compatible server (the recording narrator is ``tests.support.doubles``'s)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bot.config import Settings, load_settings
from bot.game.core import Game
from bot.store import Database, Store
from tests.support.doubles import RecordingNarrator

DATABASE_URL: str | None = None  # set by the ``use_backend`` fixture: PostgreSQL for this test, else SQLite


def fast_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for fast tests: short windows, no cooldown, data in ``tmp_path``; the database on the
    backend the ``use_backend`` fixture chose (SQLite in ``tmp_path`` when none did)."""
    base: dict[str, Any] = dict(data_dir=str(tmp_path), turn_window_seconds=0.05, turn_extend_seconds=0.02,
                                turn_max_window_seconds=0.3, player_cooldown_seconds=0,
                                openai_api_key="sk-test", llm_timeout_seconds=5, llm_deadline_seconds=10,
                                llm_max_attempts=2)
    if DATABASE_URL is not None:
        base["database_url"] = DATABASE_URL
    base.update(overrides)
    return load_settings(None, **base)


@contextlib.asynccontextmanager
async def running_game(settings: Settings, base_url: str, *, narrator: RecordingNarrator | None = None
                       ) -> AsyncIterator[tuple[Game, RecordingNarrator, Store]]:
    """A started Game on a real database and the real LLMClient pointed at ``base_url``."""
    from bot.llm import LLMClient

    narrator = narrator or RecordingNarrator()
    async with Database.open(settings.database_target, migrate=True) as db:
        llm = LLMClient(api_key="sk-test", base_url=base_url, default_model=settings.dm_model,
                        timeout_s=settings.llm_timeout_seconds, deadline_s=settings.llm_deadline_seconds,
                        max_attempts=settings.llm_max_attempts)
        store = Store(db)
        game = Game(store=store, llm=llm, settings=settings, narrator=narrator)
        await game.start()
        try:
            yield game, narrator, store
        finally:
            await game.close()
            await llm.aclose()
