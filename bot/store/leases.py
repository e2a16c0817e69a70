"""Campaign leases: exactly one bot process answers a campaign, even when several share the database
(shards on several machines, or the old and new process of a rolling deploy).

A process takes a campaign's lease when it loads the campaign's session, renews it while the session
stays loaded, and gives it back when the session unloads or the process stops; a lease left by a
killed process expires after its time and may then be taken by any process. Taking and renewing are
one statement (an upsert that only overwrites the process's own or an expired lease), so two
processes racing for one campaign cannot both win, on SQLite or PostgreSQL.
"""

from __future__ import annotations

import time

from bot.store.db import Database


class LeaseStore:
    """Named queries on ``campaign_leases``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def acquire(self, campaign_id: int, holder: str, seconds: float, *, now: float | None = None) -> bool:
        """Take or renew the lease of ``campaign_id`` for ``holder`` until ``now + seconds`` (UNIX
        seconds). True when ``holder`` holds it afterwards; False while another process's lease runs."""
        at = time.time() if now is None else now
        row = await self.db.fetchone(
            "INSERT INTO campaign_leases (campaign_id, holder, expires_at) VALUES (?, ?, ?)"
            " ON CONFLICT (campaign_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at"
            " WHERE campaign_leases.holder = excluded.holder OR campaign_leases.expires_at < ?"
            " RETURNING holder", (campaign_id, holder, at + seconds, at))
        return row is not None and row[0] == holder

    async def take_over(self, campaign_id: int, old_holder: str, holder: str, seconds: float, *,
                        now: float | None = None) -> bool:
        """Take the lease from ``old_holder`` (a process known to be dead) for ``holder``. True when
        ``holder`` holds it afterwards (False: someone else renewed or took it meanwhile)."""
        at = time.time() if now is None else now
        changed = await self.db.execute(
            "UPDATE campaign_leases SET holder = ?, expires_at = ? WHERE campaign_id = ? AND holder = ?",
            (holder, at + seconds, campaign_id, old_holder))
        return changed == 1

    async def release(self, campaign_id: int, holder: str) -> None:
        """Give the lease back (only ``holder``'s own)."""
        await self.db.execute("DELETE FROM campaign_leases WHERE campaign_id = ? AND holder = ?",
                              (campaign_id, holder))

    async def holder(self, campaign_id: int, *, now: float | None = None) -> str | None:
        """Who holds the lease now (None: nobody, or it expired)."""
        at = time.time() if now is None else now
        row = await self.db.fetchone("SELECT holder FROM campaign_leases WHERE campaign_id = ? AND expires_at >= ?",
                                     (campaign_id, at))
        return str(row[0]) if row else None
