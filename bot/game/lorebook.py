"""The table's side of the lorebook: ``/lore show|list|add|edit|forget|pin|history|revert``, lore-name
autocomplete and the campaign search (``/campaign search``).

Permissions: anyone in the party (or the campaign's creator, or an admin) may add entries; a player
may edit and forget the entries they created and the facts (kind ``fact``) about their own character
(the character's name is a whole word of the entry's name or of an alias). Editing or forgetting
anyone else's entry, pinning, reverting and anything secret (creating, seeing, editing) needs the
campaign's creator or an admin (``require_manager``). Secret entries are invisible to everyone else:
show, list, history, autocomplete and search answer as if they did not exist. An answer shown to the
whole table (``for_table=True``, a public reply) hides secrets from managers too.

Names are matched against names and aliases case-insensitively; a name or alias may belong to one
live entry only, so a lookup is never ambiguous. Every change is stored with a revision (author kind
"player", or "admin" for the creator, an admin or the owner; the campaign's current turn) and the
session's lore cache is kept in step (``GameSession.put_lore``/``drop_lore``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, cast, get_args

from bot.errors import UserInputError
from bot.game import rules
from bot.game.api import Actor, LoreEdit
from bot.game.campaign import require_manager
from bot.game.errors import NotAllowed, NotInParty
from bot.game.options import text_option
from bot.game.ports import TokenCounter
from bot.game.registry import SessionRegistry
from bot.game.session import GameSession
from bot.models import LoreAuthor, LoreEntry, LoreKind, LoreRevision, QuestStatus, SearchHit
from bot.store import Store
from bot.store.errors import NameTaken, RecordMissing

LORE_KINDS: tuple[str, ...] = get_args(LoreKind)
QUEST_STATUSES: tuple[str, ...] = get_args(QuestStatus)
SEARCH_LIMIT = 10  # hits one search returns
AUTOCOMPLETE_MAX = 25  # Discord shows at most 25 choices
_ALIAS_SPLIT = re.compile(r"[,;\n]")

__all__ = ["LORE_KINDS", "QUEST_STATUSES", "LoreCommands", "LoreEdit", "find_entry", "split_aliases"]


def split_aliases(text: str) -> list[str]:
    """``"Vex, the Red Lord; Old Vex"`` -> ``["Vex", "the Red Lord", "Old Vex"]`` (commas, semicolons
    or new lines separate; blanks are dropped). ``"-"`` alone means "no aliases" (``[]``)."""
    if text.strip() == "-":
        return []
    return [part.strip() for part in _ALIAS_SPLIT.split(text) if part.strip()]


def names_of(entry: LoreEntry) -> tuple[str, ...]:
    """The entry's name and aliases."""
    return (entry.name, *entry.aliases)


def find_entry(entries: Iterable[LoreEntry], name: str) -> LoreEntry | None:
    """The entry called ``name`` (case-insensitive, surrounding spaces ignored): by name first, then
    by alias; None when none is."""
    wanted = " ".join(name.split()).casefold()
    if not wanted:
        return None
    pool = list(entries)
    return (next((e for e in pool if e.name.casefold() == wanted), None)
            or next((e for e in pool if any(a.casefold() == wanted for a in e.aliases)), None))


def is_manager(session: GameSession, actor: Actor) -> bool:
    """True for the campaign's creator, a server admin and the bot's owner."""
    return actor.is_admin or actor.is_owner or actor.user_id == session.campaign.created_by


def not_found(name: str) -> UserInputError:
    """The one sentence for an entry that does not exist or that the caller may not see."""
    shown = " ".join(name.split())[:rules.LORE_NAME_MAX]
    return UserInputError(f"The lorebook has no entry called “{shown}”. `/lore list` shows what it holds.")


def clean_name(value: str, what: str = "name") -> str:
    """A lore name or alias: one line of 1..``rules.LORE_NAME_MAX`` characters, inner spaces collapsed.
    Raises ``UserInputError`` naming ``what``."""
    return " ".join(text_option(value, what, rules.LORE_NAME_MAX).split())


def clean_aliases(values: Iterable[str], name: str) -> tuple[str, ...]:
    """Aliases checked like names, duplicates (and the name itself) dropped, case-insensitively; at
    most ``rules.LORE_ALIASES_MAX``. Raises ``UserInputError``."""
    seen = {name.casefold()}
    kept: list[str] = []
    for raw in values:
        alias = clean_name(raw, "alias")
        if alias.casefold() not in seen:
            seen.add(alias.casefold())
            kept.append(alias)
    if len(kept) > rules.LORE_ALIASES_MAX:
        raise UserInputError(f"An entry can have at most {rules.LORE_ALIASES_MAX} aliases.")
    return tuple(kept)


def check_kind(kind: str) -> LoreKind:
    """``kind`` if it is one of ``LORE_KINDS``. Raises ``UserInputError``."""
    if kind not in LORE_KINDS:
        raise UserInputError(f"`kind` must be one of: {', '.join(LORE_KINDS)}.")
    return cast(LoreKind, kind)


def check_status(status: str) -> QuestStatus:
    """``status`` if it is one of ``QUEST_STATUSES``. Raises ``UserInputError``."""
    if status not in QUEST_STATUSES:
        raise UserInputError(f"`status` must be one of: {', '.join(QUEST_STATUSES)}.")
    return cast(QuestStatus, status)


def _about(entry: LoreEntry, character_name: str) -> bool:
    """True when ``character_name`` is a whole word of the entry's name or of one of its aliases."""
    word = re.compile(rf"(?<!\w){re.escape(character_name.casefold())}(?!\w)")
    return any(word.search(n.casefold()) for n in names_of(entry))


class LoreCommands:
    """The lorebook commands of the table and the campaign search.

    Args:
        store: where entries, revisions, chapters and the full-text indexes are kept.
        registry: the loaded sessions (each holds its live lorebook in ``GameSession.lore``).
        count: ``(text, model) -> tokens``, to bound descriptions in tokens of the campaign's model.
    """

    def __init__(self, *, store: Store, registry: SessionRegistry, count: TokenCounter) -> None:
        self.store = store
        self.registry = registry
        self.count = count

    # --- reading ---------------------------------------------------------------------------------
    @staticmethod
    def visible(session: GameSession, actor: Actor, *, for_table: bool = False) -> list[LoreEntry]:
        """The live entries ``actor`` may see (secrets only for a manager, and never ``for_table``)."""
        secrets = is_manager(session, actor) and not for_table
        return [e for e in session.lore if secrets or not e.secret]

    async def show(self, channel_id: int, actor: Actor, name: str, *, for_table: bool = False) -> LoreEntry:
        """The entry called ``name`` (or with that alias). Raises ``UserInputError`` when there is none
        the caller may see, and ``NoCampaign``."""
        session = (await self.registry.require(channel_id)).state
        entry = find_entry(self.visible(session, actor, for_table=for_table), name)
        if entry is None:
            raise not_found(name)
        return entry

    async def entries(self, channel_id: int, actor: Actor, *, kind: str | None = None,
                      status: str | None = None, for_table: bool = False) -> list[LoreEntry]:
        """The entries the caller may see, sorted by kind then name; only ``kind`` (one of
        ``LORE_KINDS``) and only quests with ``status`` when given. Raises ``UserInputError`` for an
        unknown kind or status, and ``NoCampaign``."""
        session = (await self.registry.require(channel_id)).state
        wanted_kind = check_kind(kind) if kind else None
        wanted_status = check_status(status) if status else None
        found = [e for e in self.visible(session, actor, for_table=for_table)
                 if (wanted_kind is None or e.kind == wanted_kind)
                 and (wanted_status is None or e.status == wanted_status)]
        return sorted(found, key=lambda e: (LORE_KINDS.index(e.kind), e.name.casefold()))

    async def names(self, channel_id: int, actor: Actor, prefix: str = "") -> list[str]:
        """For autocomplete: names of the entries the caller may see whose name or an alias starts
        with (or, after those, contains) ``prefix``, case-insensitive, at most ``AUTOCOMPLETE_MAX``;
        [] without a campaign."""
        live = await self.registry.get(channel_id)
        if live is None:
            return []
        wanted = " ".join(prefix.split()).casefold()
        pool = self.visible(live.state, actor)
        starts = [e.name for e in pool if any(n.casefold().startswith(wanted) for n in names_of(e))]
        inside = [e.name for e in pool if e.name not in starts and any(wanted in n.casefold() for n in names_of(e))]
        return sorted(starts, key=str.casefold)[:AUTOCOMPLETE_MAX] + sorted(inside, key=str.casefold)[
            :max(0, AUTOCOMPLETE_MAX - len(starts))]

    async def history(self, channel_id: int, actor: Actor, name: str) -> tuple[LoreEntry, list[LoreRevision]]:
        """The entry and every change of it, oldest first, with who made it and when. Callers who may
        not see secrets get no revision from a time the entry was secret. Raises ``UserInputError``
        and ``NoCampaign``."""
        session = (await self.registry.require(channel_id)).state
        entry = find_entry(self.visible(session, actor), name)
        if entry is None and is_manager(session, actor):  # a forgotten entry's history, to revert it
            entry = await self.store.lore.forgotten(session.campaign.id, name)
        if entry is None:
            raise not_found(name)
        revisions = await self.store.lore.revisions(entry.id)
        if not is_manager(session, actor):
            revisions = [r for r in revisions if not (r.snapshot or {}).get("secret")]
        return entry, revisions

    async def search(self, channel_id: int, actor: Actor, query: str, *, for_table: bool = False) -> list[SearchHit]:
        """The best ``SEARCH_LIMIT`` matches of ``query`` (words; each may be the start of a longer one)
        across the story, the chronicle's chapters and the lorebook, best first; lore secrets only for
        the creator or an admin, and never ``for_table``. Raises ``UserInputError`` for a query without
        a word or longer than ``rules.SEARCH_QUERY_MAX`` characters, and ``NoCampaign``."""
        session = (await self.registry.require(channel_id)).state
        text = " ".join((query or "").split())
        if len(text) > rules.SEARCH_QUERY_MAX:
            raise UserInputError(f"A search can be at most {rules.SEARCH_QUERY_MAX} characters long.")
        if not re.search(r"\w", text):
            raise UserInputError("Give a word or a name to search for.")
        secrets = is_manager(session, actor) and not for_table
        return await self.store.search.search(session.campaign.id, text, include_secrets=secrets,
                                              limit=SEARCH_LIMIT)

    # --- changing --------------------------------------------------------------------------------
    async def add(self, channel_id: int, actor: Actor, *, kind: str, name: str, aliases: Sequence[str] = (),
                  description: str = "", secret: bool = False, status: str | None = None) -> LoreEntry:
        """Add an entry (a quest starts "open" unless ``status`` says otherwise). Anyone with a
        character may add; a secret one needs the creator or an admin. Raises ``UserInputError`` (a
        bad field, a name or alias another entry has), ``NotInParty``, ``NotAllowed``, ``NoCampaign``."""
        live = await self.registry.require(channel_id)
        session = live.state
        manager = is_manager(session, actor)
        if secret:
            require_manager(session, actor, "add DM secrets to the lorebook")
        elif not manager and session.character_of(actor.user_id) is None:
            raise NotInParty("Join the party first (/join) to add to the lorebook.")
        clean_kind = check_kind(kind)
        clean = clean_name(name)
        clean_alias = clean_aliases(aliases, clean)
        text, tokens = self._description(session, description)
        quest_status: QuestStatus | None = None
        if clean_kind == "quest":
            quest_status = check_status(status) if status else "open"
        elif status:
            raise UserInputError("Only quests have a status.")
        async with session.lock:
            self._check_free(session, (clean, *clean_alias))
            try:
                entry = await self.store.lore.create(
                    campaign_id=session.campaign.id, kind=clean_kind, name=clean, aliases=clean_alias,
                    description=text, token_count=tokens, status=quest_status, secret=secret,
                    author_kind=self._author(session, actor), author_id=actor.user_id,
                    author_name=actor.name[:rules.PLAYER_NAME_MAX], turn=session.campaign.turn)
            except NameTaken as exc:
                raise self._taken(clean) from exc
            session.put_lore(entry)
        return entry

    async def edit(self, channel_id: int, actor: Actor, name: str, edit: LoreEdit) -> LoreEntry:
        """Change the fields ``edit`` gives of the entry called ``name`` (see the module docstring for
        who may). Raises ``UserInputError`` (nothing to change, a bad field, a taken name, no such
        entry), ``NotAllowed``, ``NoCampaign``."""
        if edit.is_empty():
            raise UserInputError("Give at least one thing to change, e.g. `description`.")
        live = await self.registry.require(channel_id)
        session = live.state
        async with session.lock:
            entry = self._changeable(session, actor, name, "edit lore entries someone else made")
            if edit.secret is not None and edit.secret != entry.secret:
                require_manager(session, actor, "make lore entries secret or reveal them")
            changes: dict[str, Any] = {}
            new_name = clean_name(edit.name) if edit.name is not None else entry.name
            if new_name != entry.name:
                changes["name"] = new_name
            aliases = clean_aliases(edit.aliases if edit.aliases is not None else entry.aliases, new_name)
            if aliases != entry.aliases:
                changes["aliases"] = list(aliases)
            kind = check_kind(edit.kind) if edit.kind is not None else entry.kind
            if kind != entry.kind:
                changes["kind"] = kind
            status: QuestStatus | None = entry.status if kind == "quest" else None
            if kind == "quest" and status is None:
                status = "open"
            if edit.status is not None:
                if kind != "quest":
                    raise UserInputError("Only quests have a status.")
                status = check_status(edit.status)
            if status != entry.status:
                changes["status"] = status
            if edit.description is not None:
                text, tokens = self._description(session, edit.description)
                if text != entry.description:
                    changes["description"], changes["token_count"] = text, tokens
            if edit.secret is not None and edit.secret != entry.secret:
                changes["secret"] = edit.secret
            if not changes:
                return entry
            if "name" in changes or "aliases" in changes:
                self._check_free(session, (new_name, *aliases), but=entry.id)
            try:
                updated = await self.store.lore.update(
                    entry.id, changes, author_kind=self._author(session, actor), author_id=actor.user_id,
                    author_name=actor.name[:rules.PLAYER_NAME_MAX], turn=session.campaign.turn)
            except NameTaken as exc:
                raise self._taken(new_name) from exc
            session.put_lore(updated)
        return updated

    async def forget(self, channel_id: int, actor: Actor, name: str) -> LoreEntry:
        """Take the entry called ``name`` out of the lorebook (kept with its revisions). Same rights as
        ``edit``. Raises ``UserInputError``, ``NotAllowed``, ``NoCampaign``."""
        live = await self.registry.require(channel_id)
        session = live.state
        async with session.lock:
            entry = self._changeable(session, actor, name, "forget lore entries someone else made")
            gone = await self.store.lore.forget(entry.id, author_kind=self._author(session, actor),
                                                author_id=actor.user_id,
                                                author_name=actor.name[:rules.PLAYER_NAME_MAX],
                                                turn=session.campaign.turn)
            session.drop_lore(entry.id)
        return gone

    async def pin(self, channel_id: int, actor: Actor, name: str, pinned: bool = True) -> LoreEntry:
        """Pin (always in the DM's prompt) or unpin the entry called ``name``; creator or admin only.
        Raises ``NotAllowed``, ``UserInputError``, ``NoCampaign``."""
        live = await self.registry.require(channel_id)
        session = live.state
        require_manager(session, actor, "pin or unpin lore entries")
        async with session.lock:
            entry = find_entry(session.lore, name)
            if entry is None:
                raise not_found(name)
            if entry.pinned == pinned:
                return entry
            updated = await self.store.lore.update(
                entry.id, {"pinned": pinned}, author_kind="admin", author_id=actor.user_id,
                author_name=actor.name[:rules.PLAYER_NAME_MAX], turn=session.campaign.turn)
            session.put_lore(updated)
        return updated

    async def revert(self, channel_id: int, actor: Actor, name: str, revision_id: int) -> LoreEntry:
        """Put the entry called ``name`` back as it was after its revision ``revision_id`` (the ids
        ``history`` lists); creator or admin only. The revert is itself a revision. Raises
        ``NotAllowed``, ``UserInputError`` (no such entry or revision, a name taken meanwhile),
        ``NoCampaign``."""
        live = await self.registry.require(channel_id)
        session = live.state
        require_manager(session, actor, "revert lore entries")
        async with session.lock:
            entry = find_entry(session.lore, name) or await self.store.lore.forgotten(session.campaign.id, name)
            if entry is None:
                raise not_found(name)
            revisions = await self.store.lore.revisions(entry.id)
            target = next((r for r in revisions if r.id == revision_id and r.snapshot is not None), None)
            if target is None or target.snapshot is None:
                raise UserInputError(f"“{entry.name}” has no change #{revision_id} to go back to. "
                                     f"`/lore history name:{entry.name}` lists them.")
            old_name = str(target.snapshot.get("name", entry.name))
            self._check_free(session, (old_name, *(str(a) for a in target.snapshot.get("aliases") or ())),
                             but=entry.id)
            try:
                reverted = await self.store.lore.revert(
                    entry.id, revision_id, author_kind="admin", author_id=actor.user_id,
                    author_name=actor.name[:rules.PLAYER_NAME_MAX], turn=session.campaign.turn)
            except NameTaken as exc:
                raise self._taken(old_name) from exc
            except RecordMissing as exc:
                raise UserInputError(f"“{entry.name}” has no change #{revision_id} to go back to.") from exc
            session.put_lore(reverted)
        return reverted

    # --- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _author(session: GameSession, actor: Actor) -> LoreAuthor:
        return "admin" if is_manager(session, actor) else "player"

    def _description(self, session: GameSession, description: str) -> tuple[str, int]:
        """The cleaned description and its tokens. Raises ``UserInputError`` past the limits."""
        text = text_option(description, "description", rules.LORE_DESCRIPTION_MAX, allow_empty=True,
                           multiline=True)
        tokens = self.count(text, session.config.model) if text else 0
        if tokens > rules.LORE_DESCRIPTION_TOKENS:
            raise UserInputError(f"That description is too long for the DM to keep in mind: at most "
                                 f"{rules.LORE_DESCRIPTION_TOKENS} tokens (about "
                                 f"{rules.LORE_DESCRIPTION_TOKENS * 3 // 4} words), it has {tokens}.")
        return text, tokens

    def _changeable(self, session: GameSession, actor: Actor, name: str, what: str) -> LoreEntry:
        """The entry called ``name`` if ``actor`` may edit or forget it (``what`` completes the
        refusal). Raises ``UserInputError`` (none the caller may see) or ``NotAllowed``."""
        entry = find_entry(self.visible(session, actor), name)
        if entry is None:
            raise not_found(name)
        if is_manager(session, actor):
            return entry
        own = entry.created_by == actor.user_id and entry.created_by_kind in ("player", "admin")
        mine = session.character_of(actor.user_id)
        about_me = entry.kind == "fact" and mine is not None and _about(entry, mine.name)
        if not (own or about_me):
            raise NotAllowed(player_message=f"Only the campaign's creator or a server admin can {what}. "
                                            "You can change the entries you added and the facts about your "
                                            "own character.")
        return entry

    @staticmethod
    def _check_free(session: GameSession, wanted: Iterable[str], but: int | None = None) -> None:
        """Raise ``UserInputError`` when another live entry already has one of ``wanted`` as its name
        or an alias."""
        taken = {n.casefold(): e for e in session.lore if e.id != but for n in names_of(e)}
        for name in wanted:
            if name.casefold() in taken:
                raise LoreCommands._taken(name)

    @staticmethod
    def _taken(name: str) -> UserInputError:
        return UserInputError(f"The lorebook already has an entry called (or also known as) “{name}”. "
                              "Pick another name, or change that entry with `/lore edit`.")

