"""The chronicle: one permanent chapter per memory fold, never overwritten.

Chapters are written by ``SummaryStore.fold`` in the same transaction as the running summary they
feed, so a fold either leaves both or neither. This module reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.models import Chapter
from bot.store.db import Database, Tx

_COLUMNS = ("id, campaign_id, number, first_turn, last_turn, through_message_id, started_at, ended_at, content,"
            " token_count, created_at")


@dataclass(frozen=True, slots=True)
class ChapterDraft:
    """A chapter to write with a fold: the span it covers and its text (``token_count`` tokens)."""

    first_turn: int
    last_turn: int
    through_message_id: int
    started_at: float
    ended_at: float
    content: str
    token_count: int


def _row(row: Any) -> Chapter:
    return Chapter(id=row["id"], campaign_id=row["campaign_id"], number=row["number"],
                   first_turn=row["first_turn"], last_turn=row["last_turn"],
                   through_message_id=row["through_message_id"], started_at=row["started_at"],
                   ended_at=row["ended_at"], content=row["content"], token_count=row["token_count"],
                   created_at=row["created_at"])


async def insert_chapter(conn: Tx, campaign_id: int, draft: ChapterDraft, now: float) -> Chapter:
    """Write ``draft`` as the campaign's next chapter inside the caller's open transaction."""
    row = await conn.fetchone("SELECT COALESCE(MAX(number), 0) + 1 FROM chapters WHERE campaign_id = ?",
                              (campaign_id,))
    number = int(row[0]) if row else 1
    inserted = await conn.insert(
        "INSERT INTO chapters (campaign_id, number, first_turn, last_turn, through_message_id, started_at,"
        " ended_at, content, token_count, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (campaign_id, number, draft.first_turn, draft.last_turn, draft.through_message_id, draft.started_at,
         draft.ended_at, draft.content, draft.token_count, now))
    new_id = int(inserted or 0)
    return Chapter(new_id, campaign_id, number, draft.first_turn, draft.last_turn, draft.through_message_id,
                   draft.started_at, draft.ended_at, draft.content, draft.token_count, now)


class ChapterStore:
    """Named queries on ``chapters``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def all(self, campaign_id: int) -> list[Chapter]:
        """Every chapter of the campaign, in story order."""
        rows = await self.db.fetchall(f"SELECT {_COLUMNS} FROM chapters WHERE campaign_id = ? ORDER BY number",
                                      (campaign_id,))
        return [_row(r) for r in rows]

    async def get(self, campaign_id: int, number: int) -> Chapter | None:
        """Chapter ``number`` (1, 2, ...), or None."""
        row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM chapters WHERE campaign_id = ? AND number = ?",
                                     (campaign_id, number))
        return _row(row) if row else None

    async def latest(self, campaign_id: int, count: int = 1) -> list[Chapter]:
        """The newest ``count`` chapters, in story order."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM (SELECT {_COLUMNS} FROM chapters WHERE campaign_id = ?"
            " ORDER BY number DESC LIMIT ?) AS newest ORDER BY number", (campaign_id, count))
        return [_row(r) for r in rows]
