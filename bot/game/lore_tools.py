"""The lorebook tools the DM model may call (dispatched by ``bot.game.tools``):

- ``remember(name, kind?, description?, aliases?, secret?, status?)``: create an entry, or update the
  one whose name or alias is ``name`` (a new description replaces the old one, aliases are added,
  ``secret: false`` reveals a secret to the party).
- ``update_quest(quest, status, note?)``: a quest is open, done or failed; the note is added to it.
- ``recall(query)``: search the whole campaign (story, chapters, lore, secrets included) for the DM.

Arguments are validated and bounded by ``bot.game.rules`` (``LORE_*``, ``RECALL_*``); a problem
becomes ``{"error": ...}`` for the model to read, never an exception. Changes are made as the DM
(``author_kind="dm"``) in the turn being answered, so ``/undo`` of that turn takes them back, and each
one is put in the session's lorebook cache at once. An entry a player or an admin edited keeps their
words: the tools only change its quest status, and say so.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_args

from bot.game import rules
from bot.game.lore import name_key
from bot.models import LoreEntry, LoreKind, QuestStatus
from bot.store.errors import NameTaken

if TYPE_CHECKING:
    from bot.game.session import GameSession
    from bot.store import Store

KINDS: tuple[str, ...] = get_args(LoreKind)
STATUSES: tuple[str, ...] = get_args(QuestStatus)
PEOPLE_NOTE = "a player or an admin edited this entry, so it stays as they wrote it"
SNIPPET_MAX = 300  # characters of one recall snippet
_JUNK = re.compile(r"[\[\]<>\x00-\x1f\x7f]+")

LORE_TOOL_SCHEMAS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "remember",
        "description": "Record or update a lorebook entry: every named NPC, place, faction, item, quest or "
                       "fact that matters. Entries you remember come back to you whenever they are named "
                       "again. Calling it with an existing name or alias updates that entry.",
        "parameters": {"type": "object", "properties": {
            "name": {"type": "string", "description": f"The name, at most {rules.LORE_NAME_MAX} characters"},
            "kind": {"type": "string", "enum": list(KINDS), "description": "Needed for a new entry"},
            "description": {"type": "string",
                            "description": f"Who or what it is, in a sentence or two (at most "
                                           f"{rules.LORE_DESCRIPTION_MAX} characters); replaces the old one"},
            "aliases": {"type": "array", "items": {"type": "string"},
                        "description": f"Other names it goes by (at most {rules.LORE_ALIASES_MAX})"},
            "secret": {"type": "boolean",
                       "description": "True: only you know it. False on a secret entry reveals it to the party"},
            "status": {"type": "string", "enum": list(STATUSES), "description": "For quests (default open)"},
        }, "required": ["name"]}}},
    {"type": "function", "function": {
        "name": "update_quest",
        "description": "Mark a recorded quest open, done or failed, with an optional short note.",
        "parameters": {"type": "object", "properties": {
            "quest": {"type": "string", "description": "The quest's name or alias"},
            "status": {"type": "string", "enum": list(STATUSES)},
            "note": {"type": "string", "description": f"What happened, at most {rules.LORE_NOTE_MAX} characters"},
        }, "required": ["quest", "status"]}}},
    {"type": "function", "function": {
        "name": "recall",
        "description": "Search everything earlier in the campaign (story, chapters, lorebook) for a name, "
                       "place or event; returns turn numbers and short snippets.",
        "parameters": {"type": "object", "properties": {
            "query": {"type": "string", "description": "A few words, e.g. 'silver key' or 'Mira'"},
        }, "required": ["query"]}}},
]


class _Bad(Exception):
    """An argument the model got wrong; the message goes back to it."""


def _text(value: Any, what: str, limit: int, *, required: bool = False, one_line: bool = False) -> str | None:
    """A string argument stripped (and on one line, without brackets, with ``one_line``), at most
    ``limit`` characters; None when absent and not ``required``."""
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        if required:
            raise _Bad(f"{what} is required")
        return None
    if not isinstance(value, str):
        raise _Bad(f"{what} must be a string")
    text = " ".join(_JUNK.sub(" ", value).split()) if one_line else value.strip()
    if required and not text:
        raise _Bad(f"{what} must not be empty")
    if len(text) > limit:
        raise _Bad(f"{what} is {len(text)} characters; at most {limit} are allowed, shorten it")
    return text


def _flag(value: Any, what: str) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _Bad(f"{what} must be true or false")
    return value


def _choice(value: Any, what: str, options: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    if value not in options:
        raise _Bad(f"{what} must be one of: {', '.join(options)}")
    return str(value)


def entry_dict(entry: LoreEntry) -> dict[str, Any]:
    """An entry as the JSON the model reads."""
    out: dict[str, Any] = {"name": entry.name, "kind": entry.kind, "aliases": list(entry.aliases),
                           "description": entry.description, "secret": entry.secret}
    if entry.kind == "quest":
        out["status"] = entry.status
    return out


@dataclass
class LoreTools:
    """The lorebook as the model's tools see it during one turn (built by the turn pipeline).

    Attributes:
        store: the database (``lore`` and ``search``).
        session: the channel's session; its ``lore`` cache follows every change.
        turn: the turn being answered (the revisions' turn, so ``/undo`` finds them).
        count: ``text -> tokens`` for the session's model (descriptions are bounded in tokens).
        changes: how many lorebook changes the tools made this turn.
    """

    store: Store
    session: GameSession
    turn: int
    count: Callable[[str], int]
    changes: int = 0

    def find(self, name: str) -> LoreEntry | None:
        """The live entry called ``name``, else the one with that alias (case-insensitive)."""
        key = name_key(name)
        entries = self.session.lore
        return (next((e for e in entries if name_key(e.name) == key), None)
                or next((e for e in entries if any(name_key(a) == key for a in e.aliases)), None))

    async def call(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        """Perform ``remember``, ``update_quest`` or ``recall`` with the model's ``args`` (a JSON
        object); the result is JSON-ready, ``{"error": ...}`` on a bad argument."""
        try:
            if tool == "recall":
                return await self._recall(args)
            if self.changes >= rules.LORE_CHANGES_PER_TURN:
                return {"error": f"at most {rules.LORE_CHANGES_PER_TURN} lorebook changes per turn; "
                                 "record the rest next turn"}
            if tool == "remember":
                return await self._remember(args)
            if tool == "update_quest":
                return await self._update_quest(args)
        except _Bad as exc:
            return {"error": str(exc)}
        return {"error": f"unknown lore tool {tool!r}"}

    def _check_free(self, names: list[str], owner: int | None) -> None:
        """A name or alias belongs to one live entry only: raise when one of ``names`` is another's."""
        for name in names:
            other = self.find(name)
            if other is not None and other.id != owner:
                raise _Bad(f"{name!r} already names the entry {other.name!r}; leave it out or update that entry")

    def _description(self, value: Any) -> tuple[str, int] | None:
        text = _text(value, "description", rules.LORE_DESCRIPTION_MAX)
        if text is None:
            return None
        tokens = self.count(text)
        if tokens > rules.LORE_DESCRIPTION_TOKENS:
            raise _Bad(f"description is {tokens} tokens; at most {rules.LORE_DESCRIPTION_TOKENS}, shorten it")
        return text, tokens

    async def _save(self, entry: LoreEntry, changes: dict[str, Any]) -> LoreEntry:
        updated = await self.store.lore.update(entry.id, changes, author_kind="dm", author_id=None,
                                               author_name="DM", turn=self.turn)
        self.session.put_lore(updated)
        self.changes += 1
        return updated

    async def _remember(self, args: dict[str, Any]) -> dict[str, Any]:
        name = _text(args.get("name"), "name", rules.LORE_NAME_MAX, required=True, one_line=True) or ""
        kind = _choice(args.get("kind"), "kind", KINDS)
        described = self._description(args.get("description"))
        secret = _flag(args.get("secret"), "secret")
        status = _choice(args.get("status"), "status", STATUSES)
        raw_aliases = args.get("aliases")
        if isinstance(raw_aliases, str):
            raw_aliases = [raw_aliases]
        if raw_aliases is not None and not isinstance(raw_aliases, list):
            raise _Bad("aliases must be a list of strings")
        aliases = [a for a in (_text(v, "an alias", rules.LORE_NAME_MAX, one_line=True)
                               for v in raw_aliases or []) if a]
        existing = self.find(name)
        if existing is None:
            return await self._create(name, kind, described, aliases, secret, status)
        if existing.edited_by_people:
            if status is not None and existing.kind == "quest" and status != existing.status:
                entry = await self._save(existing, {"status": status})
                return {"ok": True, "note": PEOPLE_NOTE + "; only its quest status changed",
                        "entry": entry_dict(entry)}
            return {"ok": True, "unchanged": True, "note": PEOPLE_NOTE, "entry": entry_dict(existing)}
        changes: dict[str, Any] = {}
        new_kind = kind or existing.kind
        if new_kind != existing.kind:
            changes["kind"] = new_kind
        new_status: str | None = (status or existing.status or "open") if new_kind == "quest" else None
        if new_status != existing.status:
            changes["status"] = new_status
        if described is not None and described[0] != existing.description:
            changes["description"], changes["token_count"] = described
        known = {name_key(existing.name), *(name_key(a) for a in existing.aliases)}
        merged = list(existing.aliases)
        for alias in aliases:
            if name_key(alias) not in known:
                known.add(name_key(alias))
                merged.append(alias)
        if len(merged) > rules.LORE_ALIASES_MAX:
            raise _Bad(f"an entry has at most {rules.LORE_ALIASES_MAX} aliases ({existing.name} has "
                       f"{len(existing.aliases)})")
        self._check_free(merged[len(existing.aliases):], existing.id)
        if tuple(merged) != existing.aliases:
            changes["aliases"] = merged
        if secret is not None and secret != existing.secret:
            changes["secret"] = secret
        if not changes:
            return {"ok": True, "unchanged": True, "entry": entry_dict(existing)}
        entry = await self._save(existing, changes)
        result: dict[str, Any] = {"ok": True, "updated": entry_dict(entry)}
        if existing.secret and not entry.secret:
            result["revealed"] = True
        return result

    async def _create(self, name: str, kind: str | None, described: tuple[str, int] | None, aliases: list[str],
                      secret: bool | None, status: str | None) -> dict[str, Any]:
        if kind is None:
            raise _Bad(f"nothing is recorded as {name!r} yet; give a kind ({', '.join(KINDS)}) to record it")
        if len(self.session.lore) >= rules.LORE_ENTRIES_MAX:
            return {"error": f"the lorebook is full ({rules.LORE_ENTRIES_MAX} entries); update existing ones"}
        unique: list[str] = []
        keys = {name_key(name)}
        for alias in aliases:
            if name_key(alias) not in keys:
                keys.add(name_key(alias))
                unique.append(alias)
        if len(unique) > rules.LORE_ALIASES_MAX:
            raise _Bad(f"an entry has at most {rules.LORE_ALIASES_MAX} aliases")
        self._check_free(unique, None)
        description, tokens = described or ("", 0)
        try:
            entry = await self.store.lore.create(
                campaign_id=self.session.campaign.id, kind=kind,  # type: ignore[arg-type]  # checked: KINDS
                name=name, aliases=unique, description=description, token_count=tokens,
                status=(status or "open") if kind == "quest" else None,  # type: ignore[arg-type]  # STATUSES
                secret=bool(secret), author_kind="dm", author_id=None, author_name="DM", turn=self.turn)
        except NameTaken:
            return {"error": f"another entry is already called {name!r}"}
        self.session.put_lore(entry)
        self.changes += 1
        return {"ok": True, "created": entry_dict(entry)}

    async def _update_quest(self, args: dict[str, Any]) -> dict[str, Any]:
        name = _text(args.get("quest"), "quest", rules.LORE_NAME_MAX, required=True, one_line=True) or ""
        status = _choice(args.get("status"), "status", STATUSES)
        if status is None:
            raise _Bad(f"status is required: one of {', '.join(STATUSES)}")
        note = _text(args.get("note"), "note", rules.LORE_NOTE_MAX, one_line=True)
        quest = self.find(name)
        if quest is None or quest.kind != "quest":
            return {"error": f"no quest called {name!r} is recorded; record it with remember(kind='quest')"}
        changes: dict[str, Any] = {}
        notes: list[str] = []
        if status != quest.status:
            changes["status"] = status
        if note:
            description = f"{quest.description} {note}".strip()
            tokens = self.count(description)
            if quest.edited_by_people:
                notes.append(PEOPLE_NOTE + "; the note was not added")
            elif len(description) > rules.LORE_DESCRIPTION_MAX or tokens > rules.LORE_DESCRIPTION_TOKENS:
                notes.append("the note was not added: the description is full; rewrite it with remember")
            else:
                changes["description"], changes["token_count"] = description, tokens
        entry = await self._save(quest, changes) if changes else quest
        result: dict[str, Any] = {"ok": True, "quest": entry_dict(entry)}
        if not changes:
            result["unchanged"] = True
        if notes:
            result["note"] = "; ".join(notes)
        return result

    async def _recall(self, args: dict[str, Any]) -> dict[str, Any]:
        query = _text(args.get("query"), "query", rules.RECALL_QUERY_MAX, required=True, one_line=True) or ""
        hits = await self.store.search.search(self.session.campaign.id, query, include_secrets=True,
                                              limit=rules.RECALL_RESULTS_MAX)
        secrets = {e.id for e in self.session.lore if e.secret}
        results: list[dict[str, Any]] = []
        for hit in hits:
            item: dict[str, Any] = {"source": hit.source, "turn": hit.turn, "what": hit.label,
                                    "snippet": hit.snippet[:SNIPPET_MAX]}
            if hit.source == "lore" and hit.ref_id in secrets:
                item["secret"] = True
            results.append(item)
        if not results:
            return {"results": [], "note": f"nothing earlier in the campaign matches {query!r}"}
        return {"results": results}

    async def take_back(self) -> None:
        """Undo this turn's lorebook changes (the turn failed before its commit) and reload the
        session's cache; nothing when the tools changed nothing."""
        if not self.changes:
            return
        await self.store.lore.undo_turn(self.session.campaign.id, self.turn)
        self.session.set_lore(await self.store.lore.live(self.session.campaign.id))
        self.changes = 0
