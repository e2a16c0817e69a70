"""Player characters (the party's sheets)."""

from __future__ import annotations

import json
import time
from typing import Any

from bot.models import Character
from bot.store.db import Database, IntegrityError
from bot.store.errors import AlreadyInParty, NameTaken, RecordMissing

_COLUMNS = ("id, campaign_id, player_id, player_name, name, char_class, ancestry, backstory, level, hp,"
            " max_hp, ac, conditions, inventory, notes, active")
EDITABLE = ("name", "char_class", "ancestry", "backstory", "level", "hp", "max_hp", "ac",
            "conditions", "inventory", "notes", "player_name")


def _row(row: Any) -> Character:
    return Character(
        id=row["id"], campaign_id=row["campaign_id"], player_id=row["player_id"],
        player_name=row["player_name"], name=row["name"], char_class=row["char_class"],
        ancestry=row["ancestry"], backstory=row["backstory"], level=row["level"], hp=row["hp"],
        max_hp=row["max_hp"], ac=row["ac"], conditions=tuple(json.loads(row["conditions"])),
        inventory=tuple(json.loads(row["inventory"])), notes=row["notes"], active=bool(row["active"]))


class CharacterStore:
    """Named queries on the ``characters`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, *, campaign_id: int, player_id: int, player_name: str, name: str,
                     char_class: str, ancestry: str, backstory: str = "", level: int = 1,
                     hp: int = 10, max_hp: int = 10, ac: int = 10) -> Character:
        """Add a character to the party.

        Raises:
            AlreadyInParty: the player already has an active character here.
            NameTaken: another active character has this name.
        """
        existing = await self.for_player(campaign_id, player_id)
        if existing is not None:
            raise AlreadyInParty(existing.name)
        try:
            new_id = await self.db.insert(
                "INSERT INTO characters (campaign_id, player_id, player_name, name, char_class, ancestry,"
                " backstory, level, hp, max_hp, ac, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (campaign_id, player_id, player_name, name, char_class, ancestry, backstory, level, hp,
                 max_hp, ac, time.time()))
        except IntegrityError:
            raise NameTaken(name) from None
        got = await self.get(int(new_id or 0))
        if got is None:
            raise RecordMissing(f"character {new_id} vanished right after it was created")
        return got

    async def get(self, character_id: int) -> Character | None:
        """A character by id (active or retired), or None."""
        row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM characters WHERE id = ?", (character_id,))
        return _row(row) if row else None

    async def for_player(self, campaign_id: int, player_id: int) -> Character | None:
        """The player's active character in a campaign, or None."""
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM characters WHERE campaign_id = ? AND player_id = ? AND active = 1",
            (campaign_id, player_id))
        return _row(row) if row else None

    async def party(self, campaign_id: int) -> list[Character]:
        """Active characters in joining order."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM characters WHERE campaign_id = ? AND active = 1 ORDER BY id",
            (campaign_id,))
        return [_row(r) for r in rows]

    async def update(self, character_id: int, **changes: Any) -> Character:
        """Change sheet fields (names in ``EDITABLE``; lists for conditions/inventory).

        Raises:
            KeyError: a field name not in ``EDITABLE`` (a bug in the caller, never player input).
            NameTaken: the new name is used by another active party member.
            RecordMissing: no such character.
        """
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise KeyError(f"not editable character fields: {', '.join(sorted(unknown))}")
        if changes:
            values = [json.dumps(list(v)) if k in ("conditions", "inventory") else v
                      for k, v in changes.items()]
            sets = ", ".join(f"{k} = ?" for k in changes)
            try:
                await self.db.execute(f"UPDATE characters SET {sets} WHERE id = ?", (*values, character_id))
            except IntegrityError:
                raise NameTaken(str(changes.get("name", ""))) from None
        got = await self.get(character_id)
        if got is None:
            raise RecordMissing(f"no character {character_id}")
        return got

    async def write_many(self, changes: dict[int, dict[str, Any]]) -> None:
        """Write several sheets' hit points, conditions and inventory (character id -> fields) in ONE
        transaction: what a turn's tools changed, written once at the turn's end. Raises
        ``KeyError`` for any other field (a caller's bug)."""
        allowed = {"hp", "conditions", "inventory"}
        async with self.db.transaction() as conn:
            for character_id, fields in changes.items():
                if set(fields) - allowed:
                    raise KeyError(f"write_many takes only {sorted(allowed)}")
                if not fields:
                    continue
                values = [json.dumps(list(v)) if k in ("conditions", "inventory") else v for k, v in fields.items()]
                sets = ", ".join(f"{k} = ?" for k in fields)
                await conn.execute(f"UPDATE characters SET {sets} WHERE id = ?", (*values, character_id))

    async def retire(self, character_id: int) -> None:
        """Mark a character as having left the party (kept for the story's record)."""
        await self.db.execute("UPDATE characters SET active = 0 WHERE id = ?", (character_id,))
