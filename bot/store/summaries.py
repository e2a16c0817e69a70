"""The running summary of each campaign (memory folding)."""

from __future__ import annotations

import time

from bot.models import Chapter, Summary
from bot.store.chapters import ChapterDraft, insert_chapter
from bot.store.db import Database


class SummaryStore:
    """Named queries on ``summaries``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, campaign_id: int) -> Summary | None:
        """The campaign's running summary, or None before the first fold."""
        row = await self.db.fetchone(
            "SELECT campaign_id, content, token_count, through_message_id, updated_at FROM summaries"
            " WHERE campaign_id = ?", (campaign_id,))
        return Summary(*row) if row else None

    async def fold(self, campaign_id: int, *, content: str, token_count: int, through_message_id: int,
                   chapter: ChapterDraft | None = None) -> tuple[Summary, Chapter | None]:
        """Replace the summary, which now covers every message up to ``through_message_id``, and
        write ``chapter`` (the folded span's permanent summary) in the same transaction. Nothing is
        deleted: the transcript keeps every message. Returns the summary and the stored chapter."""
        now = time.time()
        stored: Chapter | None = None
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO summaries (campaign_id, content, token_count, through_message_id, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (campaign_id) DO UPDATE SET content = excluded.content,"
                " token_count = excluded.token_count, through_message_id = excluded.through_message_id,"
                " updated_at = excluded.updated_at",
                (campaign_id, content, token_count, through_message_id, now))
            if chapter is not None:
                stored = await insert_chapter(conn, campaign_id, chapter, now)
        return Summary(campaign_id, content, token_count, through_message_id, now), stored
