"""The party: joining, reading, editing and leaving player characters.

Every number and text is checked by ``bot.game.rules`` (the one source of the sheet's limits); the
store's conflicts (a second character, a taken name) become sentences that say which command helps.
Each change is noted in the story, so the DM knows who joined, left or was renamed.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.errors import UserInputError
from bot.game import rules
from bot.game.api import Actor, CharacterSheetInput
from bot.game.errors import NotInParty
from bot.game.notes import TableNotes
from bot.game.options import sheet_defaults
from bot.game.registry import SessionRegistry
from bot.game.session import LiveSession
from bot.models import Character
from bot.store import Store
from bot.store.errors import AlreadyInParty, NameTaken


def already_playing(exc: AlreadyInParty) -> UserInputError:
    """The sentence for a player who tries to join twice."""
    return UserInputError(f"You already play {exc.character_name} in this campaign. Use /character edit, "
                          "or /character leave first.")


def name_taken(exc: NameTaken) -> UserInputError:
    """The sentence for a name another party member has."""
    return UserInputError(f"There is already a {exc.name} in the party. Pick another name.")


class PartyCommands:
    """``/join``, ``/character show|edit|leave``, ``/party`` and character-name autocomplete.

    Args:
        store: where sheets are kept.
        registry: the loaded sessions.
        notes: stores table notes ("X joins the party").
    """

    def __init__(self, *, store: Store, registry: SessionRegistry, notes: TableNotes) -> None:
        self.store = store
        self.registry = registry
        self.notes = notes

    async def join(self, channel_id: int, actor: Actor, sheet: CharacterSheetInput) -> Character:
        """Add the caller's character (limits in ``bot.game.rules``; hit points and AC default by
        class). Raises ``UserInputError`` for a second character, a taken name or a bad field, and
        ``NoCampaign``."""
        live = await self.registry.require(channel_id)
        session = live.state
        hp_default, ac_default = sheet_defaults(sheet.char_class)
        name = rules.clean_text_field("name", sheet.name)
        char_class = rules.clean_text_field("char_class", sheet.char_class)
        ancestry = rules.clean_text_field("ancestry", sheet.ancestry)
        backstory = rules.clean_text_field("backstory", sheet.backstory)
        max_hp = sheet.max_hp if sheet.max_hp is not None else hp_default
        ac = sheet.ac if sheet.ac is not None else ac_default
        rules.check_numbers(max_hp=max_hp, ac=ac, level=sheet.level)
        async with session.lock:
            try:
                character = await self.store.characters.create(
                    campaign_id=session.campaign.id, player_id=actor.user_id,
                    player_name=actor.name[:rules.PLAYER_NAME_MAX], name=name, char_class=char_class,
                    ancestry=ancestry, backstory=backstory, level=sheet.level, hp=max_hp, max_hp=max_hp, ac=ac)
            except AlreadyInParty as exc:
                raise already_playing(exc) from exc
            except NameTaken as exc:
                raise name_taken(exc) from exc
            session.set_party([*session.party, character])
            await self.notes.add(session, f"{character.name} ({character.ancestry} {character.char_class}, "
                                 f"played by {character.player_name}) joins the party.")
        return character

    async def character(self, channel_id: int, *, user_id: int | None = None, name: str | None = None) -> Character:
        """A sheet by character name, or by player. Raises ``UserInputError``/``NotInParty``."""
        session = (await self.registry.require(channel_id)).state
        if name:
            found = session.find_character(name)
            if found is None:
                raise UserInputError(f"Nobody named {name.strip()[:rules.NAME_MAX]!r} is in the party.")
            return found
        found = session.character_of(user_id) if user_id is not None else None
        if found is None:
            raise NotInParty()
        return found

    async def edit(self, channel_id: int, actor: Actor, changes: dict[str, object]) -> Character:
        """Change the caller's own sheet (fields and limits: ``rules.check_sheet_edit``). Raises
        ``NotInParty`` or ``UserInputError``."""
        live = await self.registry.require(channel_id)
        session = live.state
        mine = self._own(live, actor)
        clean = rules.check_sheet_edit(changes, hp=mine.hp, max_hp=mine.max_hp)
        async with session.lock:
            try:
                updated = await live.sheets.update(mine.id, **clean)
            except NameTaken as exc:
                raise name_taken(exc) from exc
            if "name" in clean and clean["name"] != mine.name:
                await self.notes.add(session, f"{mine.name} is now called {updated.name}.")
        return updated

    async def leave(self, channel_id: int, actor: Actor) -> Character:
        """Retire the caller's character (kept in the story). Raises ``NotInParty``."""
        live = await self.registry.require(channel_id)
        session = live.state
        mine = self._own(live, actor)
        async with session.lock:
            await self.store.characters.retire(mine.id)
            session.set_party([c for c in session.party if c.id != mine.id])
            await self.notes.add(session, f"{mine.name} leaves the party.")
        live.worker.wake.set()  # the party shrank: the window may close early now
        return mine

    async def members(self, channel_id: int) -> Sequence[Character]:
        """The active characters in joining order. Raises ``NoCampaign``."""
        return tuple((await self.registry.require(channel_id)).state.party)

    async def names(self, channel_id: int, prefix: str = "") -> list[str]:
        """Active character names starting with ``prefix`` (case-insensitive); [] without a campaign."""
        live = await self.registry.get(channel_id)
        if live is None:
            return []
        wanted = prefix.strip().casefold()
        return [c.name for c in live.state.party if c.name.casefold().startswith(wanted)]

    @staticmethod
    def _own(live: LiveSession, actor: Actor) -> Character:
        mine = live.state.character_of(actor.user_id)
        if mine is None:
            raise NotInParty()
        return mine
