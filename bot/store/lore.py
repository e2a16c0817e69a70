"""The lorebook: entries the DM must not forget, and every change made to them.

Each write stores the entry and a revision (who, when, in which turn, the entry as it was after the
change) in ONE transaction, so any edit can be reverted and ``/undo`` can take back what the DM's
tools recorded in the undone turn. Entries are never deleted: forgetting one clears ``live``.
Values are validated by the caller (the game core); names are unique among live entries.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, replace
from typing import Any

from bot.models import LoreAction, LoreAuthor, LoreEntry, LoreKind, LoreRevision, QuestStatus
from bot.store.db import Database, IntegrityError, Tx
from bot.store.errors import NameTaken, RecordMissing

_COLUMNS = ("id, campaign_id, kind, name, aliases, description, token_count, status, secret, pinned,"
            " created_by_kind, created_by, created_turn, last_named_turn, edited_by_people, created_at, updated_at")
EDITABLE = ("kind", "name", "aliases", "description", "token_count", "status", "secret", "pinned")
_SNAPSHOT_FIELDS = EDITABLE


def _row(row: Any) -> LoreEntry:
    return LoreEntry(
        id=row["id"], campaign_id=row["campaign_id"], kind=row["kind"], name=row["name"],
        aliases=tuple(json.loads(row["aliases"])), description=row["description"], token_count=row["token_count"],
        status=row["status"], secret=bool(row["secret"]), pinned=bool(row["pinned"]),
        created_by_kind=row["created_by_kind"], created_by=row["created_by"], created_turn=row["created_turn"],
        last_named_turn=row["last_named_turn"], edited_by_people=bool(row["edited_by_people"]),
        created_at=row["created_at"], updated_at=row["updated_at"])


def _snapshot(entry: LoreEntry) -> str:
    data = asdict(entry)
    data["aliases"] = list(entry.aliases)
    return json.dumps(data, ensure_ascii=False)


def _column_value(key: str, value: Any) -> Any:
    if key == "aliases":
        return json.dumps(list(value), ensure_ascii=False)
    if key in ("secret", "pinned"):
        return int(bool(value))
    return value


class LoreStore:
    """Named queries on ``lore_entries`` and ``lore_revisions``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def live(self, campaign_id: int) -> list[LoreEntry]:
        """Every live entry of the campaign, oldest first (secrets included: the caller filters)."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM lore_entries WHERE campaign_id = ? AND live = 1 ORDER BY id", (campaign_id,))
        return [_row(r) for r in rows]

    async def forgotten(self, campaign_id: int, name: str) -> LoreEntry | None:
        """The most recently changed entry called ``name`` (case-insensitive) that is no longer live
        (forgotten or undone), for bringing it back; None if there is none."""
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM lore_entries WHERE campaign_id = ? AND live = 0 AND lower(name) = lower(?)"
            " ORDER BY updated_at DESC, id DESC LIMIT 1", (campaign_id, name.strip()))
        return _row(row) if row else None

    async def get(self, entry_id: int) -> LoreEntry | None:
        """An entry by id (live or not), or None."""
        row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM lore_entries WHERE id = ?", (entry_id,))
        return _row(row) if row else None

    async def create(self, *, campaign_id: int, kind: LoreKind, name: str, aliases: Iterable[str] = (),
                     description: str = "", token_count: int = 0, status: QuestStatus | None = None,
                     secret: bool = False, pinned: bool = False, author_kind: LoreAuthor, author_id: int | None,
                     author_name: str, turn: int) -> LoreEntry:
        """Add an entry and its "create" revision. Raises ``NameTaken`` when a live entry has the name."""
        now = time.time()
        try:
            async with self.db.transaction() as conn:
                inserted = await conn.insert(
                    "INSERT INTO lore_entries (campaign_id, kind, name, aliases, description, token_count, status,"
                    " secret, pinned, created_by_kind, created_by, created_turn, last_named_turn,"
                    " edited_by_people, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (campaign_id, kind, name, json.dumps(list(aliases), ensure_ascii=False), description,
                     token_count, status, int(secret), int(pinned), author_kind, author_id, turn, turn,
                     int(author_kind in ("player", "admin")), now, now))
                entry = LoreEntry(int(inserted or 0), campaign_id, kind, name, tuple(aliases),
                                  description, token_count, status, secret, pinned, author_kind, author_id, turn,
                                  turn, author_kind in ("player", "admin"), now, now)
                await self._revise(conn, entry, "create", author_kind, author_id, author_name, turn, now)
        except IntegrityError:
            raise NameTaken(name) from None
        return entry

    async def update(self, entry_id: int, changes: Mapping[str, Any], *, author_kind: LoreAuthor,
                     author_id: int | None, author_name: str, turn: int,
                     action: LoreAction = "update") -> LoreEntry:
        """Change fields in ``EDITABLE`` and record the revision. A player's or admin's change marks
        the entry ``edited_by_people``. Raises ``KeyError`` (a field not in ``EDITABLE``: a caller's
        bug), ``NameTaken`` or ``RecordMissing``."""
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise KeyError(f"not editable lore fields: {', '.join(sorted(unknown))}")
        now = time.time()
        people = author_kind in ("player", "admin")
        try:
            async with self.db.transaction() as conn:
                sets = [f"{k} = ?" for k in changes] + ["updated_at = ?", "live = 1"]
                values = [_column_value(k, v) for k, v in changes.items()] + [now]
                if people:
                    sets.append("edited_by_people = 1")
                await conn.execute(f"UPDATE lore_entries SET {', '.join(sets)} WHERE id = ?", (*values, entry_id))
                entry = await self._get_in(conn, entry_id)
                await self._revise(conn, entry, action, author_kind, author_id, author_name, turn, now)
        except IntegrityError:
            raise NameTaken(str(changes.get("name", ""))) from None
        return entry

    async def forget(self, entry_id: int, *, author_kind: LoreAuthor, author_id: int | None, author_name: str,
                     turn: int) -> LoreEntry:
        """Take an entry out of the lorebook (kept with its revisions; ``revert`` brings it back)."""
        now = time.time()
        async with self.db.transaction() as conn:
            await conn.execute("UPDATE lore_entries SET live = 0, updated_at = ? WHERE id = ?", (now, entry_id))
            entry = await self._get_in(conn, entry_id)
            await conn.execute(
                "INSERT INTO lore_revisions (entry_id, campaign_id, turn, action, author_kind, author_id,"
                " author_name, snapshot, created_at) VALUES (?,?,?,?,?,?,?,NULL,?)",
                (entry_id, entry.campaign_id, turn, "forget", author_kind, author_id, author_name, now))
        return entry

    async def revisions(self, entry_id: int) -> list[LoreRevision]:
        """Every change of an entry, oldest first (undone ones included, marked by the store only)."""
        rows = await self.db.fetchall(
            "SELECT id, entry_id, campaign_id, turn, action, author_kind, author_id, author_name, snapshot,"
            " created_at FROM lore_revisions WHERE entry_id = ? AND undone = 0 ORDER BY id", (entry_id,))
        return [LoreRevision(r["id"], r["entry_id"], r["campaign_id"], r["turn"], r["action"], r["author_kind"],
                             r["author_id"], r["author_name"],
                             json.loads(r["snapshot"]) if r["snapshot"] is not None else None, r["created_at"])
                for r in rows]

    async def revert(self, entry_id: int, revision_id: int, *, author_kind: LoreAuthor, author_id: int | None,
                     author_name: str, turn: int) -> LoreEntry:
        """Put the entry back as it was after ``revision_id`` (a "revert" revision records it).
        Raises ``RecordMissing`` for a revision of another entry or one that forgot it."""
        target = next((r for r in await self.revisions(entry_id) if r.id == revision_id), None)
        if target is None or target.snapshot is None:
            raise RecordMissing(f"no revision {revision_id} with a snapshot for lore entry {entry_id}")
        fields = {k: target.snapshot[k] for k in _SNAPSHOT_FIELDS}
        return await self.update(entry_id, fields, author_kind=author_kind, author_id=author_id,
                                 author_name=author_name, turn=turn, action="revert")

    async def undo_turn(self, campaign_id: int, turn: int) -> int:
        """Take back what the DM's tools recorded in ``turn`` (for ``/undo``): entries created then
        leave the lorebook, entries changed then return to their previous revision. Changes by
        players, admins and memory folds stay. Returns how many revisions were taken back."""
        async with self.db.transaction() as conn:
            rows = await conn.fetchall(
                "SELECT id, entry_id, action FROM lore_revisions WHERE campaign_id = ? AND turn = ?"
                " AND author_kind = 'dm' AND undone = 0 ORDER BY id DESC", (campaign_id, turn))
            for rev_id, entry_id, action in rows:
                await conn.execute("UPDATE lore_revisions SET undone = 1 WHERE id = ?", (rev_id,))
                if action == "create":
                    await conn.execute("UPDATE lore_entries SET live = 0 WHERE id = ?", (entry_id,))
                    continue
                previous = await conn.fetchone(
                    "SELECT snapshot FROM lore_revisions WHERE entry_id = ? AND undone = 0 AND id < ?"
                    " ORDER BY id DESC LIMIT 1", (entry_id, rev_id))
                if previous is None or previous[0] is None:
                    await conn.execute("UPDATE lore_entries SET live = 0 WHERE id = ?", (entry_id,))
                    continue
                snap = json.loads(previous[0])
                sets = ", ".join(f"{k} = ?" for k in _SNAPSHOT_FIELDS)
                await conn.execute(f"UPDATE lore_entries SET {sets}, live = 1 WHERE id = ?",
                                   (*(_column_value(k, snap[k]) for k in _SNAPSHOT_FIELDS), entry_id))
        return len(rows)

    async def mark_named(self, entry_ids: Iterable[int], turn: int) -> None:
        """Record that these entries were named in ``turn`` (the lore block ranks by it)."""
        ids = list(dict.fromkeys(entry_ids))
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        await self.db.execute(f"UPDATE lore_entries SET last_named_turn = GREATEST(last_named_turn, ?) WHERE id IN"
                              f" ({marks})", (turn, *ids))

    # --- helpers -----------------------------------------------------------------------------------
    @staticmethod
    async def _get_in(conn: Tx, entry_id: int) -> LoreEntry:
        row = await conn.fetchone(f"SELECT {_COLUMNS} FROM lore_entries WHERE id = ?", (entry_id,))
        if row is None:
            raise RecordMissing(f"no lore entry {entry_id}")
        return _row(row)

    @staticmethod
    async def _revise(conn: Tx, entry: LoreEntry, action: LoreAction, author_kind: LoreAuthor,
                      author_id: int | None, author_name: str, turn: int, now: float) -> None:
        await conn.execute(
            "INSERT INTO lore_revisions (entry_id, campaign_id, turn, action, author_kind, author_id, author_name,"
            " snapshot, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (entry.id, entry.campaign_id, turn, action, author_kind, author_id, author_name,
             _snapshot(replace(entry)), now))
