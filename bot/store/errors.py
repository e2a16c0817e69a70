"""Domain errors the store raises when a write breaks a rule the schema enforces.

They say what is wrong in the game's terms and carry the values involved; they never name slash
commands, because the store does not know how it is called. The game core turns them into the
sentences players read (``bot.game.party``, ``bot.game.campaign``).
"""

from __future__ import annotations

from bot.errors import BotError

TRY_AGAIN = "Something changed at the table while that happened. Please try again."


class StoreConflict(BotError):
    """A write conflicts with a row that already exists (a unique rule of the schema). The core
    turns each into its own sentence; one that escapes it shows players only ``TRY_AGAIN``."""

    player_message_default = TRY_AGAIN

    @property
    def player_message(self) -> str:
        """Never the internal text: ``TRY_AGAIN``."""
        return TRY_AGAIN


class CampaignExists(StoreConflict):
    """The channel already has a live (active or paused) campaign."""

    def __init__(self, channel_id: int) -> None:
        super().__init__(f"channel {channel_id} already has a live campaign")
        self.channel_id = channel_id


class AlreadyInParty(StoreConflict):
    """The player already has an active character in the campaign.

    Attributes:
        character_name: the name of that character.
    """

    def __init__(self, character_name: str) -> None:
        super().__init__(f"the player already plays {character_name}")
        self.character_name = character_name


class NameTaken(StoreConflict):
    """Another active character of the campaign has this name (compared case-insensitively)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"another party member is called {name}")
        self.name = name


class RecordMissing(BotError):
    """A row the caller named by id does not exist (deleted meanwhile, or a wrong id). Players see
    only ``TRY_AGAIN``."""

    @property
    def player_message(self) -> str:
        """Never the internal text: ``TRY_AGAIN``."""
        return TRY_AGAIN
