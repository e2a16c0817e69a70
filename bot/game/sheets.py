"""The sheet journal: every sheet change of a session goes through here, so undo and retry can put
the party back as it was before a turn.

``SheetJournal.update`` stores a change and applies it to the session's party. A turn takes a
snapshot of the party before it runs (``snapshot``); when it is committed, the journal keeps the sheets
it changed as they were before (``record``), for the newest ``KEEP_TURNS`` turns. ``/undo`` and
``/retry`` of the newest turn ``take`` that entry and ``restore`` it; a failed turn restores its own
snapshot. While a turn runs (``begin_turn``), its tools' changes stay in memory and are written once,
in one transaction, just before the turn commits (``flush``). Only hit points, conditions and
inventory are restored: the things the model's tools change (names, classes and numbers are the
players' own, changed by ``/character edit``). The
journal lives in memory: after a restart or an eviction older turns keep their sheets as they are.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bot.game.session import GameSession
from bot.models import Character
from bot.store import Store

KEEP_TURNS = 20  # turns whose sheet changes undo/retry can revert
DEFERRABLE = frozenset({"hp", "conditions", "inventory"})  # what a turn's tools change

Snapshot = dict[int, Character]
"""Character id -> sheet as it was."""


class SheetJournal:
    """Sheet changes of one session, and their undo.

    Args:
        session: the channel's state (its party is kept current).
        store: where sheets are stored.
    """

    def __init__(self, session: GameSession, store: Store) -> None:
        self.session = session
        self.store = store
        self._before: dict[int, Snapshot] = {}  # turn -> sheets it changed, as they were before it
        self._deferred: dict[int, dict[str, Any]] | None = None  # a running turn's writes, by character

    def snapshot(self) -> Snapshot:
        """The party's sheets now."""
        return {c.id: c for c in self.session.party}

    async def update(self, character_id: int, **changes: Any) -> Character:
        """Store a sheet change and put the new sheet in the party. During a turn (``begin_turn``)
        hit points, conditions and inventory are only kept in memory and written by ``flush`` in
        one transaction, so a fight's many hits cost one write a turn. Raises the store's
        ``NameTaken``/``RecordMissing``."""
        current = next((c for c in self.session.party if c.id == character_id), None)
        if self._deferred is not None and current is not None and set(changes) <= DEFERRABLE:
            updated = replace(current, hp=int(changes.get("hp", current.hp)),
                              conditions=tuple(changes.get("conditions", current.conditions)),
                              inventory=tuple(changes.get("inventory", current.inventory)))
            self._deferred.setdefault(character_id, {}).update(changes)
            self.session.replace_character(updated)
            return updated
        updated = await self.store.characters.update(character_id, **changes)
        self.session.replace_character(updated)
        return updated

    def begin_turn(self) -> None:
        """From now until ``flush`` or ``discard``, keep the turn's sheet writes in memory."""
        self._deferred = {}

    async def flush(self) -> None:
        """Write what the turn changed (one transaction) and stop deferring."""
        deferred, self._deferred = self._deferred, None
        if deferred:
            await self.store.characters.write_many(deferred)

    def discard(self) -> None:
        """Forget the turn's unwritten changes (it failed; ``restore`` puts the party back)."""
        self._deferred = None

    async def restore(self, before: Snapshot) -> None:
        """Put back the hit points, conditions and inventory of party sheets that differ from
        ``before``."""
        for c in list(self.session.party):
            old = before.get(c.id)
            if old is not None and (old.hp, old.conditions, old.inventory) != (c.hp, c.conditions, c.inventory):
                await self.update(c.id, hp=old.hp, conditions=list(old.conditions), inventory=list(old.inventory))

    def record(self, turn: int, before: Snapshot) -> None:
        """Keep the sheets ``turn`` changed as they were ``before`` it (the newest ``KEEP_TURNS``)."""
        now = self.snapshot()
        changed = {cid: c for cid, c in before.items() if cid in now and now[cid] != c}
        self._before.pop(turn, None)
        if changed:
            self._before[turn] = changed
            while len(self._before) > KEEP_TURNS:
                del self._before[min(self._before)]

    def take(self, turn: int) -> Snapshot | None:
        """Remove and return what ``turn`` changed (None: nothing known)."""
        return self._before.pop(turn, None)

    def put_back(self, turn: int, before: Snapshot | None) -> None:
        """Undo a ``take`` (a retry that failed keeps the old reply and its sheet changes)."""
        if before:
            self._before[turn] = before
