"""Table pace: a campaign's pace settings and open round (``campaign_pace``) and its players' pace
choices (``pace_players``). Times are UNIX seconds."""

from __future__ import annotations

import time
from typing import Any

from bot.models import PaceSettings, PlayerPace, Round
from bot.store.db import Database


class PaceStore:
    """Named queries on ``campaign_pace`` and ``pace_players``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self, campaign_id: int) -> tuple[PaceSettings, Round | None, dict[int, PlayerPace]]:
        """The campaign's settings, open round (None: none) and players' choices, with each player's
        last answered turn filled in from the story."""
        row = await self.db.fetchone(
            "SELECT pace, round_deadline_seconds, reminder_share, round_opened_at, round_deadline_at, reminded_at"
            " FROM campaign_pace WHERE campaign_id = ?", (campaign_id,))
        settings, open_round = PaceSettings(), None
        if row is not None:
            settings = PaceSettings(row["pace"], row["round_deadline_seconds"], row["reminder_share"])
            if row["round_opened_at"] is not None and row["round_deadline_at"] is not None:
                open_round = Round(float(row["round_opened_at"]), float(row["round_deadline_at"]),
                                   row["reminded_at"] is not None)
        players: dict[int, PlayerPace] = {}
        for p in await self.db.fetchall("SELECT player_id, away, ping, joined_turn FROM pace_players"
                                        " WHERE campaign_id = ?", (campaign_id,)):
            players[int(p["player_id"])] = PlayerPace(bool(p["away"]), bool(p["ping"]), int(p["joined_turn"]))
        for t in await self.db.fetchall(
                "SELECT author_id, MAX(turn) AS last_turn FROM story_messages WHERE campaign_id = ?"
                " AND role = 'player' AND state = 'answered' AND author_id IS NOT NULL GROUP BY author_id",
                (campaign_id,)):
            players.setdefault(int(t["author_id"]), PlayerPace()).last_turn = int(t["last_turn"])
        return settings, open_round, players

    async def recent_messages(self, campaign_id: int, limit: int) -> list[tuple[float, int]]:
        """(UNIX seconds, player id) of the campaign's latest ``limit`` player messages, oldest first."""
        rows = await self.db.fetchall(
            "SELECT created_at, author_id FROM story_messages WHERE campaign_id = ? AND role = 'player'"
            " AND author_id IS NOT NULL AND state != 'undone' ORDER BY id DESC LIMIT ?", (campaign_id, limit))
        return [(float(r["created_at"]), int(r["author_id"])) for r in reversed(rows)]

    async def set_settings(self, campaign_id: int, settings: PaceSettings) -> None:
        """Replace the campaign's own settings (the open round is kept)."""
        await self.db.execute(
            "INSERT INTO campaign_pace (campaign_id, pace, round_deadline_seconds, reminder_share, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (campaign_id) DO UPDATE SET pace = excluded.pace,"
            " round_deadline_seconds = excluded.round_deadline_seconds, reminder_share = excluded.reminder_share,"
            " updated_at = excluded.updated_at",
            (campaign_id, settings.pace, settings.round_deadline_s, settings.reminder_share, time.time()))

    async def open_round(self, campaign_id: int, opened: Round) -> None:
        """Store the round that just opened."""
        await self.db.execute(
            "INSERT INTO campaign_pace (campaign_id, round_opened_at, round_deadline_at, reminded_at, updated_at)"
            " VALUES (?, ?, ?, NULL, ?) ON CONFLICT (campaign_id) DO UPDATE SET"
            " round_opened_at = excluded.round_opened_at, round_deadline_at = excluded.round_deadline_at,"
            " reminded_at = NULL, updated_at = excluded.updated_at",
            (campaign_id, opened.opened_at, opened.deadline_at, time.time()))

    async def reminded(self, campaign_id: int, at: float) -> None:
        """The open round's reminder was posted at ``at``."""
        await self.db.execute("UPDATE campaign_pace SET reminded_at = ?, updated_at = ? WHERE campaign_id = ?",
                              (at, time.time(), campaign_id))

    async def close_round(self, campaign_id: int, opened_at: float) -> None:
        """The round that opened at ``opened_at`` is over (the DM answers it). A newer round (its
        write may overtake this one on another connection) is left alone."""
        await self.db.execute(
            "UPDATE campaign_pace SET round_opened_at = NULL, round_deadline_at = NULL, reminded_at = NULL,"
            " updated_at = ? WHERE campaign_id = ? AND round_opened_at = ?", (time.time(), campaign_id, opened_at))

    async def set_deadline(self, campaign_id: int, deadline_at: float) -> None:
        """Move the open round's deadline (its reminder state is kept)."""
        await self.db.execute("UPDATE campaign_pace SET round_deadline_at = ?, updated_at = ? WHERE campaign_id = ?"
                              " AND round_opened_at IS NOT NULL", (deadline_at, time.time(), campaign_id))

    async def set_player(self, campaign_id: int, player_id: int, **changes: Any) -> None:
        """Set a player's ``away`` / ``ping`` (bools) or ``joined_turn`` (int), creating the row."""
        allowed = {"away", "ping", "joined_turn"}
        if not changes or set(changes) - allowed:
            raise KeyError(f"pace_players has no column among {sorted(set(changes) - allowed)}")
        values = {k: int(v) for k, v in changes.items()}
        columns = ", ".join(values)
        updates = ", ".join(f"{k} = excluded.{k}" for k in values)
        await self.db.execute(
            f"INSERT INTO pace_players (campaign_id, player_id, {columns}, updated_at)"
            f" VALUES (?, ?, {', '.join('?' for _ in values)}, ?)"
            f" ON CONFLICT (campaign_id, player_id) DO UPDATE SET {updates}, updated_at = excluded.updated_at",
            (campaign_id, player_id, *values.values(), time.time()))
