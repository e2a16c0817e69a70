"""Expected game errors. Each carries a kind ``player_message`` the adapters show as-is."""

from __future__ import annotations

from bot.errors import BotError, UserInputError


class NoCampaign(UserInputError):
    """The channel has no active or paused campaign."""

    def __init__(self) -> None:
        super().__init__("There's no campaign in this channel yet. Start one with /campaign start.")


class CampaignNotActive(UserInputError):
    """The campaign is paused (or ended) and cannot take this action."""


class NotInParty(UserInputError):
    """The caller has no character in this campaign."""

    def __init__(self) -> None:
        super().__init__("You don't have a character in this campaign. Use /join first.")


class NotAllowed(BotError):
    """The caller lacks the right (campaign creator or server admin) for this command."""


class QueueFull(UserInputError):
    """Too many actions are waiting in this channel."""


class OnCooldown(UserInputError):
    """The player acted too recently."""


class BudgetExhausted(BotError):
    """The server's or the player's daily token budget is spent."""


class InputTooLong(UserInputError):
    """A player message is longer than MAX_INPUT_CHARS; refused, never cut."""


class NothingToUndo(UserInputError):
    """No finished turn to undo or retry."""
