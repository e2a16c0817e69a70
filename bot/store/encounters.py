"""The campaign's encounter (combat), stored as the JSON of ``bot.game.combat.Encounter``, with the
tracker message that shows it and, per turn that changed it, the state before (for undo/retry)."""

from __future__ import annotations

import json
import time
from typing import Any

from bot.store.db import Database, Tx


async def _put(conn: Tx, campaign_id: int, state: dict[str, Any] | None, now: float) -> None:
    """Store ``state`` as the campaign's encounter, or end it (None), inside the caller's transaction."""
    if state is None:
        await conn.execute("DELETE FROM encounters WHERE campaign_id = ?", (campaign_id,))
        return
    await conn.execute(
        "INSERT INTO encounters (campaign_id, state, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (campaign_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
        (campaign_id, json.dumps(state), now))


class EncounterStore:
    """Named queries on ``encounters`` and ``encounter_snapshots``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, campaign_id: int) -> dict[str, Any] | None:
        """The running encounter's state, or None when there is no fight."""
        row = await self.db.fetchone("SELECT state FROM encounters WHERE campaign_id = ?", (campaign_id,))
        return json.loads(row["state"]) if row else None

    async def save(self, campaign_id: int, state: dict[str, Any] | None, *, turn: int,
                   before: dict[str, Any] | None) -> None:
        """Store the encounter (None ends it) in one transaction with, the first time ``turn``
        changes it, the state ``before`` that turn (kept for ``restore``)."""
        now = time.time()
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO encounter_snapshots (campaign_id, turn, state, created_at) VALUES (?,?,?,?)"
                " ON CONFLICT DO NOTHING",
                (campaign_id, turn, json.dumps(before) if before is not None else None, now))
            await _put(conn, campaign_id, state, now)

    async def restore(self, campaign_id: int, turn: int) -> tuple[bool, dict[str, Any] | None]:
        """Put the encounter back as it was before ``turn`` (undo/retry of that turn). Returns
        ``(changed, state)``: changed False when ``turn`` never touched the encounter."""
        async with self.db.transaction() as conn:
            row = await conn.fetchone(
                "SELECT state FROM encounter_snapshots WHERE campaign_id = ? AND turn = ?", (campaign_id, turn))
            if row is None:
                return False, None
            state = json.loads(row[0]) if row[0] is not None else None
            await conn.execute("DELETE FROM encounter_snapshots WHERE campaign_id = ? AND turn >= ?",
                               (campaign_id, turn))
            await _put(conn, campaign_id, state, time.time())
        return True, state

    async def tracker(self, campaign_id: int) -> tuple[int, int] | None:
        """The ``(channel id, message id)`` of the tracker message, or None."""
        row = await self.db.fetchone(
            "SELECT tracker_channel_id, tracker_message_id FROM encounters WHERE campaign_id = ?", (campaign_id,))
        if row is None or row[1] is None:
            return None
        return int(row[0]), int(row[1])

    async def set_tracker(self, campaign_id: int, channel_id: int, message_id: int) -> None:
        """Remember where the tracker message is (edited in place as the fight changes)."""
        await self.db.execute(
            "UPDATE encounters SET tracker_channel_id = ?, tracker_message_id = ? WHERE campaign_id = ?",
            (channel_id, message_id, campaign_id))
