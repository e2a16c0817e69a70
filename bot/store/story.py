"""The story: player actions, DM narration and table events, in order.

A player's action is inserted as ``pending`` the moment it arrives, before any model call, so a crash
loses nothing; ``complete_turn`` then marks the turn's actions ``answered`` and stores the DM's reply,
the dice rolls and the new turn number in ONE transaction.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

from bot.models import MessageState, RollRecord, StoryMessage, StoryRole
from bot.store.db import Database
from bot.store.errors import RecordMissing

_COLUMNS = ("id, campaign_id, turn, role, author_id, author_name, character_name, content, token_count,"
            " state, created_at, platform_message_id")


_ROLES: dict[str, StoryRole] = {"player": "player", "dm": "dm", "system": "system"}
_STATES: dict[str, MessageState] = {"pending": "pending", "answered": "answered", "undone": "undone"}


def _shared(text: str | None) -> str | None:
    """One string object per distinct value: SQLite returns a new string for every row, and a loaded
    session holds a hundred or more messages repeating the same few roles, states and names
    (``python -m bench --only memory`` measured this at about a third of a session's memory)."""
    return None if text is None else sys.intern(text)


def _row(row: Any) -> StoryMessage:
    # Roles and states come from the schema's CHECK constraints; the maps give their one shared
    # string each and turn an unknown value into a KeyError instead of a mistyped record.
    return StoryMessage(
        id=row["id"], campaign_id=row["campaign_id"], turn=row["turn"], role=_ROLES[row["role"]],
        author_id=row["author_id"], author_name=sys.intern(row["author_name"]),
        character_name=_shared(row["character_name"]), content=row["content"],
        token_count=row["token_count"], state=_STATES[row["state"]], created_at=row["created_at"],
        platform_message_id=row["platform_message_id"])


class StoryStore:
    """Named queries on ``story_messages`` (and the writes that go with a finished turn)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_action(self, *, campaign_id: int, turn: int, author_id: int | None, author_name: str,
                         character_name: str | None, content: str, token_count: int,
                         platform_message_id: int | None = None, role: StoryRole = "player",
                         created_at: float | None = None) -> tuple[StoryMessage, bool]:
        """Store a player action as ``pending`` (committed before this returns).

        Idempotent on ``platform_message_id``: a message delivered twice is stored once. Returns the
        stored message and whether it was new.
        """
        now = created_at if created_at is not None else time.time()
        new_id = await self.db.insert(
            "INSERT INTO story_messages (campaign_id, turn, role, author_id, author_name,"
            " character_name, content, token_count, state, created_at, platform_message_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT DO NOTHING",
            (campaign_id, turn, role, author_id, author_name, character_name, content, token_count, now,
             platform_message_id))
        if new_id is None:  # stored before (delivered twice), or meanwhile by another process
            row = await self.db.fetchone(
                f"SELECT {_COLUMNS} FROM story_messages WHERE campaign_id = ? AND platform_message_id = ?",
                (campaign_id, platform_message_id))
            if row is not None:
                return _row(row), False
            raise RecordMissing(f"story message {platform_message_id} was neither stored nor found")
        return StoryMessage(new_id, campaign_id, turn, role, author_id, author_name,
                            character_name, content, token_count, "pending", now,
                            platform_message_id), True

    async def add_system(self, *, campaign_id: int, turn: int, content: str, token_count: int,
                         author_name: str = "table") -> StoryMessage:
        """Store a table event (a character joined, a roll outside a turn) as part of the story."""
        now = time.time()
        new_id = await self.db.insert(
            "INSERT INTO story_messages (campaign_id, turn, role, author_id, author_name, character_name,"
            " content, token_count, state, created_at) VALUES (?, ?, 'system', NULL, ?, NULL, ?, ?,"
            " 'answered', ?)", (campaign_id, turn, author_name, content, token_count, now))
        return StoryMessage(int(new_id or 0), campaign_id, turn, "system", None, author_name, None, content,
                            token_count, "answered", now)

    async def edit_pending(self, campaign_id: int, platform_message_id: int, content: str,
                           token_count: int) -> StoryMessage | None:
        """Replace the text of a still pending action (the message its player edited), keeping its
        first text in ``first_content``. Returns the action as it now is, or None when no pending
        action has that message id (answered, withdrawn or never an action): then nothing changes."""
        row = await self.db.fetchone(
            "UPDATE story_messages SET first_content = COALESCE(first_content, content), content = ?,"
            f" token_count = ? WHERE campaign_id = ? AND platform_message_id = ? AND state = 'pending'"
            f" RETURNING {_COLUMNS}", (content, token_count, campaign_id, platform_message_id))
        return _row(row) if row is not None else None

    async def withdraw_pending(self, campaign_id: int, platform_message_id: int) -> int | None:
        """Withdraw a still pending action (its message was deleted): it becomes ``undone`` and is
        never answered. Returns its id, or None when no pending action has that message id."""
        row = await self.db.fetchone(
            "UPDATE story_messages SET state = 'undone' WHERE campaign_id = ? AND platform_message_id = ?"
            " AND state = 'pending' RETURNING id", (campaign_id, platform_message_id))
        return int(row[0]) if row is not None else None

    async def first_text(self, message_id: int) -> str | None:
        """The first text of an action that was edited while pending (None if never edited)."""
        row = await self.db.fetchone("SELECT first_content FROM story_messages WHERE id = ?", (message_id,))
        return row[0] if row is not None else None

    async def pending(self, campaign_id: int) -> list[StoryMessage]:
        """Actions not yet answered, oldest first."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM story_messages WHERE campaign_id = ? AND state = 'pending'"
            " ORDER BY id", (campaign_id,))
        return [_row(r) for r in rows]

    async def complete_turn(self, *, campaign_id: int, turn: int, action_ids: Sequence[int],
                            dm_content: str, dm_token_count: int,
                            rolls: Sequence[RollRecord] = (),
                            notes: Sequence[tuple[str, int]] = (),
                            replaces_dm_message_id: int | None = None,
                            replaces_message_ids: Sequence[int] = ()
                            ) -> tuple[list[StoryMessage], StoryMessage]:
        """Finish a turn atomically: the actions become ``answered`` in ``turn``, the DM's reply and
        the rolls are stored, and the campaign's turn counter becomes ``turn``.

        ``notes`` are table notes ``(text, token_count)`` (e.g. the dice results) stored as ``system``
        story messages just before the reply, so the model remembers them in later turns.
        ``replaces_dm_message_id`` (for /retry) marks that earlier DM reply ``undone`` in the same
        transaction, as are ``replaces_message_ids`` (the replaced reply's table notes: dice and sheet
        changes that no longer hold). Returns ``(stored notes, stored DM message)``.
        """
        now = time.time()
        async with self.db.transaction() as conn:
            if action_ids:
                marks = ",".join("?" * len(action_ids))
                await conn.execute(
                    f"UPDATE story_messages SET state = 'answered', turn = ? WHERE id IN ({marks})"
                    " AND campaign_id = ?", (turn, *action_ids, campaign_id))
            if replaces_dm_message_id is not None:
                await conn.execute("UPDATE story_messages SET state = 'undone' WHERE id = ?",
                                   (replaces_dm_message_id,))
            if replaces_message_ids:
                marks = ",".join("?" * len(replaces_message_ids))
                await conn.execute(
                    f"UPDATE story_messages SET state = 'undone' WHERE id IN ({marks}) AND campaign_id = ?",
                    (*replaces_message_ids, campaign_id))
            stored_notes: list[StoryMessage] = []
            for text, tokens in notes:
                note_id = await conn.insert(
                    "INSERT INTO story_messages (campaign_id, turn, role, author_id, author_name,"
                    " character_name, content, token_count, state, created_at)"
                    " VALUES (?, ?, 'system', NULL, 'table', NULL, ?, ?, 'answered', ?)",
                    (campaign_id, turn, text, tokens, now))
                stored_notes.append(StoryMessage(int(note_id or 0), campaign_id, turn, "system",
                                                 None, "table", None, text, tokens, "answered", now))
            dm_id = await conn.insert(
                "INSERT INTO story_messages (campaign_id, turn, role, author_id, author_name,"
                " character_name, content, token_count, state, created_at)"
                " VALUES (?, ?, 'dm', NULL, 'DM', NULL, ?, ?, 'answered', ?)",
                (campaign_id, turn, dm_content, dm_token_count, now))
            for r in rolls:
                await conn.execute(
                    "INSERT INTO dice_rolls (campaign_id, turn, roller_id, roller_name, character_name,"
                    " expression, reason, total, breakdown, by_dm, created_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (campaign_id, turn, r.roller_id, r.roller_name, r.character_name, r.expression,
                     r.reason, r.total, r.breakdown, int(r.by_dm), r.created_at))
            await conn.execute("UPDATE campaigns SET turn = GREATEST(turn, ?) WHERE id = ?", (turn, campaign_id))
        return stored_notes, StoryMessage(int(dm_id or 0), campaign_id, turn, "dm", None, "DM", None,
                                          dm_content, dm_token_count, "answered", now)

    async def context_window(self, campaign_id: int, after_id: int = 0, limit: int = 400) -> list[StoryMessage]:
        """Story messages after ``after_id`` that are not undone (pending included), oldest first;
        at most the newest ``limit`` of them. Used to load a session's working memory."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM (SELECT {_COLUMNS} FROM story_messages WHERE campaign_id = ?"
            " AND id > ? AND state != 'undone' ORDER BY id DESC LIMIT ?) AS newest ORDER BY id",
            (campaign_id, after_id, limit))
        return [_row(r) for r in rows]

    async def undo_turn(self, campaign_id: int, turn: int) -> int:
        """Mark every message of ``turn`` as ``undone`` and step the campaign's turn counter back.
        Returns how many messages were undone."""
        async with self.db.transaction() as conn:
            count = await conn.execute(
                "UPDATE story_messages SET state = 'undone' WHERE campaign_id = ? AND turn = ?"
                " AND state = 'answered'", (campaign_id, turn))
            await conn.execute(
                "UPDATE campaigns SET turn = (SELECT COALESCE(MAX(turn), 0) FROM story_messages"
                " WHERE campaign_id = ? AND state = 'answered' AND role = 'dm') WHERE id = ?",
                (campaign_id, campaign_id))
        return int(count)

    async def transcript(self, campaign_id: int) -> list[StoryMessage]:
        """Every live (not undone) message, oldest first: for recap and export."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM story_messages WHERE campaign_id = ? AND state != 'undone'"
            " ORDER BY id", (campaign_id,))
        return [_row(r) for r in rows]

    async def count(self, campaign_id: int) -> int:
        """How many live (not undone) story messages the campaign has."""
        row = await self.db.fetchone(
            "SELECT COUNT(*) FROM story_messages WHERE campaign_id = ? AND state != 'undone'",
            (campaign_id,))
        return int(row[0]) if row else 0

    async def rolls(self, campaign_id: int, limit: int = 50) -> list[RollRecord]:
        """The newest dice rolls of a campaign, oldest first."""
        rows = await self.db.fetchall(
            "SELECT * FROM (SELECT * FROM dice_rolls WHERE campaign_id = ? ORDER BY id DESC LIMIT ?) AS newest"
            " ORDER BY id", (campaign_id, limit))
        return [RollRecord(r["id"], r["campaign_id"], r["turn"], r["roller_id"], r["roller_name"],
                           r["character_name"], r["expression"], r["reason"], r["total"],
                           r["breakdown"], r["created_at"], bool(r["by_dm"])) for r in rows]

    async def add_roll(self, roll: RollRecord) -> int:
        """Store a roll made outside a turn (``/roll``). Returns its id."""
        return int(await self.db.insert(
            "INSERT INTO dice_rolls (campaign_id, turn, roller_id, roller_name, character_name, expression,"
            " reason, total, breakdown, by_dm, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (roll.campaign_id, roll.turn, roll.roller_id, roll.roller_name, roll.character_name,
             roll.expression, roll.reason, roll.total, roll.breakdown, int(roll.by_dm), roll.created_at)) or 0)
